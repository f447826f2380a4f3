"""What a study file may say: pydantic models, validated before a single participant arrives.

A study is data, never code. The study-level fields are here; each step type declares its own
parameters and the fields it records (which generate the export's columns and the codebook)
in its module under app/steps/, and the `Step` union below is built from them. A new kind of
screen is a new step type there, with its template and a test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from app.steps import STEP_TYPES, step_type
from app.steps.consent import Consent
from app.steps.plain import Completion
from app.steps.trials import Trials
from app.studies.base import StepSpec, Strict, slug
from app.studies.explanations import KINDS
from app.studies.explanations import NAMES as EXPLANATION_NAMES

# what `explanation:` may say: "none" or a kind of app/studies/explanations.py
if TYPE_CHECKING:
    Explanation = str
else:
    Explanation = Literal[EXPLANATION_NAMES]


class Condition(Strict):
    """What a participant sees with each item, between subjects."""

    id: str
    label: str = ""
    explanation: Explanation = "none"
    method: str | None = None  # the heatmap method (igospp, igos, gradcam, ...)
    show_prediction: bool = False
    show_confidence: bool = False
    # which class the explanation explains: the model's answer, or the species shown (on a model
    # error they differ; the loader checks the run has the explanations and the page says enough)
    explains: Literal["predicted_class", "true_class"] = "predicted_class"
    # examples: how many nearest training images of the predicted class every trial shows (always
    # this many: a count that varied with the model's correctness would give it away)
    neighbours: int = Field(default=3, ge=1, le=12)

    _id = field_validator("id")(slug)

    @model_validator(mode="after")
    def _coherent(self) -> Condition:
        kind = KINDS.get(self.explanation)
        names_method = kind is not None and kind.method is None  # the condition names the method (heatmaps)
        if names_method and not self.method:
            raise ValueError(f"a {self.explanation} condition needs `method` (e.g. igospp)")
        if not names_method and self.method:
            raise ValueError("`method` applies to heatmap conditions only")
        if self.show_confidence and not self.show_prediction:
            raise ValueError("show_confidence needs show_prediction: a confidence alone names no answer")
        if "neighbours" in self.model_fields_set and self.explanation != "examples":
            raise ValueError("`neighbours` applies to examples conditions only")
        if self.explains == "true_class" and (kind is None or not kind.true_class):
            able = [k.name for k in KINDS.values() if k.true_class]
            names = ", ".join(able[:-1]) + " and " + able[-1]
            raise ValueError(f"explains: true_class applies to {names} (nearest examples explain the prediction)")
        if self.explains == "true_class" and self.show_prediction:
            raise ValueError(
                "explains: true_class with show_prediction: on a model error the explanation would be of another class "
                "than the answer shown; show the prediction with explains: predicted_class"
            )
        return self


# -- steps: each step type declares its own parameters (app/steps/); the union is built from them --
if TYPE_CHECKING:
    Step = StepSpec
else:
    Step = Annotated[Union[tuple(kind.params for kind in STEP_TYPES.values())], Field(discriminator="type")]  # noqa: UP007


class AssignmentPolicy(Strict):
    timeout_minutes: float = Field(default=30, gt=0)  # active participants idle longer are not counted


class Prolific(Strict):
    """The completion codes a Prolific participant is sent back with (set them up in Prolific)."""

    completion_code: str  # finished the study
    screen_out_code: str | None = None  # screened out
    # Prolific's "no consent" convention: a code of its own (set it up on Prolific to ask for a
    # return); without one, the page asks the person to return the study on Prolific. A person
    # who declined is never sent the completion or screen-out code.
    no_consent_code: str | None = None
    return_code: str | None = None  # arrived while the study was paused, closed or full

    @model_validator(mode="after")
    def _distinct(self) -> Prolific:
        codes = [c for c in (self.completion_code, self.screen_out_code, self.no_consent_code, self.return_code) if c]
        if len(set(codes)) != len(codes):
            raise ValueError("completion_code, screen_out_code, no_consent_code and return_code must all differ")
        return self


class Recruitment(Strict):
    """Who may still start: a cap on participants and per-condition quotas (both adjustable on the
    dashboard, which keeps its own values from then on), and the Prolific codes.

    A participant counts towards a limit once they have completed, or while they are taking the
    study (seen within assignment.timeout_minutes): someone who leaves frees their place.
    """

    cap: int | None = Field(default=None, ge=1)  # participants in all, over every condition
    quotas: dict[str, int] = Field(default_factory=dict)  # condition id -> participants in it
    prolific: Prolific | None = None

    @field_validator("quotas")
    @classmethod
    def _positive(cls, v: dict[str, int]) -> dict[str, int]:
        bad = sorted(c for c, n in v.items() if n < 1)
        if bad:
            raise ValueError(f"a quota is at least 1 participant; check {', '.join(bad)}")
        return v


class DevicePolicy(Strict):
    """What a participant's browser needs; checked when they consent (a polite page otherwise)."""

    min_width: int | None = Field(default=None, ge=200, le=4000)  # CSS pixels of the browser window
    min_height: int | None = Field(default=None, ge=200, le=4000)
    desktop_only: bool = False  # no phones or tablets


class Exclusions(Strict):
    """Rules fixed before data collection; participants are flagged, never deleted."""

    failed_attention: bool = True
    min_median_rt_ms: float | None = None  # too fast
    screened_out: bool = True


class StudySpec(Strict):
    id: str
    version: int = Field(ge=1)
    title: str
    description: str = ""
    consent: str
    assets: str  # the asset run under the assets folder
    seed: int = 0  # item selection
    preregistration: str | None = None
    conditions: list[Condition] = Field(min_length=1)
    assignment: AssignmentPolicy = AssignmentPolicy()
    recruitment: Recruitment = Recruitment()
    device: DevicePolicy = DevicePolicy()
    exclusions: Exclusions = Exclusions()
    # studies of the same run that show labelled some pictures this one tests (feedback, examples,
    # galleries): a deliberate choice, checked by `fieldmark study check` (app/studies/overlap.py)
    shares_stimuli_with: list[str] = Field(default_factory=list)
    # studies (loaded first, from the same studies folder) whose taught pictures this study never
    # tests, and whose tested pictures it never teaches: item selection leaves them out
    avoid_stimuli_of: list[str] = Field(default_factory=list)
    # the species reference (files of the run, e.g. field-mark guides), linked from every trial
    # of a block with `guides: true`: every condition gets the same one
    guides: list[str] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=2)

    _id = field_validator("id")(slug)

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "prolific" in data:
            raise ValueError("`prolific` now lives in the `recruitment` section: recruitment: {prolific: {...}}")
        return data

    @model_validator(mode="after")
    def _structure(self) -> StudySpec:
        ids = [c.id for c in self.conditions]
        if len(set(ids)) != len(ids):
            raise ValueError("condition ids must be unique")
        steps = [s.id for s in self.steps]
        dup = {s for s in steps if steps.count(s) > 1}
        if dup:
            raise ValueError(f"step ids must be unique; repeated: {sorted(dup)}")
        if not isinstance(self.steps[0], Consent):
            raise ValueError("the first step must be the consent step")
        if not isinstance(self.steps[-1], Completion):
            raise ValueError("the last step must be the completion step")
        if sum(isinstance(s, (Consent, Completion)) for s in self.steps) != 2:
            raise ValueError("a study has exactly one consent and one completion step")
        unknown = sorted(set(self.recruitment.quotas) - set(ids))
        if unknown:
            raise ValueError(f"recruitment.quotas names conditions the study lacks: {', '.join(unknown)}")
        return self

    @property
    def prolific(self) -> Prolific | None:
        return self.recruitment.prolific

    def condition(self, cid: str) -> Condition:
        return next(c for c in self.conditions if c.id == cid)

    @property
    def blocks(self) -> list[Trials]:
        return [s for s in self.steps if isinstance(s, Trials)]

    def needs_condition(self, step: Step) -> bool:
        return step_type(step).needs_condition(step)
