"""What a study file may say: pydantic models, validated before a single participant arrives.

A study is data, never code. Each step type declares its parameters here and the fields it
records in `RECORDED` (which generate the export's columns and codebook). A new kind of screen
is a new step model plus its template and its handler, with a test.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _slug(v: str) -> str:
    if not SLUG.match(v):
        raise ValueError("use lower-case letters, digits, '-' and '_' (at most 64), starting with a letter or digit")
    return v


Explanation = Literal["none", "heatmap", "concepts", "sag", "examples"]


class Condition(Strict):
    """What a participant sees with each item, between subjects."""

    id: str
    label: str = ""
    explanation: Explanation = "none"
    method: str | None = None  # the heatmap method (igospp, igos, gradcam, ...)
    show_prediction: bool = False
    show_confidence: bool = False

    _id = field_validator("id")(_slug)

    @model_validator(mode="after")
    def _coherent(self) -> Condition:
        if self.explanation == "heatmap" and not self.method:
            raise ValueError("a heatmap condition needs `method` (e.g. igospp)")
        if self.explanation != "heatmap" and self.method:
            raise ValueError("`method` applies to heatmap conditions only")
        if self.show_confidence and not self.show_prediction:
            raise ValueError("show_confidence needs show_prediction: a confidence alone names no answer")
        return self


# -- questions ------------------------------------------------------------------------------------
class _Question(Strict):
    id: str
    text: str
    required: bool = True

    _id = field_validator("id")(_slug)


class Likert(_Question):
    type: Literal["likert"]
    points: int = Field(default=7, ge=2, le=11)
    low: str = "Strongly disagree"
    high: str = "Strongly agree"


class Single(_Question):
    type: Literal["single"]
    options: list[str] = Field(min_length=2)


class Multiple(_Question):
    type: Literal["multiple"]
    options: list[str] = Field(min_length=2)
    required: bool = False


class Number(_Question):
    type: Literal["number"]
    min: float | None = None
    max: float | None = None
    integer: bool = True


class Text(_Question):
    type: Literal["text"]
    max_length: int = Field(default=1000, ge=1, le=5000)
    required: bool = False


Question = Annotated[Likert | Single | Multiple | Number | Text, Field(discriminator="type")]


class Rule(Strict):
    """Screen a participant out when an answer matches: `in` a set of options, `below` or `above` a number."""

    question: str
    in_: list[str] | None = Field(default=None, alias="in")
    below: float | None = None
    above: float | None = None
    reason: str = "did not meet the study's criteria"

    @model_validator(mode="after")
    def _one_test(self) -> Rule:
        if sum(x is not None for x in (self.in_, self.below, self.above)) != 1:
            raise ValueError("a rule needs exactly one of `in`, `below` or `above`")
        return self


# -- steps ----------------------------------------------------------------------------------------
class _Step(Strict):
    id: str

    _id = field_validator("id")(_slug)


class Consent(_Step):
    type: Literal["consent"]
    id: str = "consent"
    agree: str = "I agree to take part"
    decline: str = "I do not agree"


class Instructions(_Step):
    type: Literal["instructions"]
    title: str = "Instructions"
    markdown: str
    images: list[str] = []  # files of the study's asset run, e.g. guides/guide_062_Herring_Gull.png
    explain_method: bool = False  # also introduce the participant's explanation (needs a condition)


class Questionnaire(_Step):
    type: Literal["questionnaire"]
    title: str = "A few questions"
    questions: list[Question] = Field(min_length=1)
    screen_out: list[Rule] = []

    @model_validator(mode="after")
    def _rules_refer(self) -> Questionnaire:
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError("question ids must be unique within a questionnaire")
        for r in self.screen_out:
            if r.question not in ids:
                raise ValueError(f"screen_out rule refers to unknown question {r.question!r}")
        return self


class Items(Strict):
    """Which images a block shows: stratified by model correctness and by class."""

    split: Literal["test", "train", "any"] = "test"
    correct: int = Field(default=8, ge=0)  # items the model gets right
    incorrect: int = Field(default=0, ge=0)  # items the model gets wrong
    classes: list[int] | None = None  # CUB class ids; default: every class of the run
    sets: int = Field(default=1, ge=1)  # > 1: split into sets, rotated across participants of a condition
    hidden_answers_only: bool = True  # counterfactual: questions whose answer the diagram does not print

    @model_validator(mode="after")
    def _some(self) -> Items:
        if self.correct + self.incorrect == 0:
            raise ValueError("a block needs at least one item (correct + incorrect > 0)")
        return self


Task = Literal["classify", "verify", "simulate", "counterfactual"]


class Trials(_Step):
    type: Literal["trials"]
    phase: str = "test"  # learning, test, ...
    task: Task
    items: Items
    explanation: bool = True  # show the condition's explanation in this block
    feedback: bool = False  # after each answer, say whether it was right (and the right answer)
    confidence: bool = False  # ask how sure the participant is (1-5)
    time_limit_s: float | None = Field(default=None, gt=0)
    two_stage: bool = False  # answer, see the model's advice, answer again
    choices: list[int] | None = None  # classify / simulate: class ids offered (default: all)
    prompt: str | None = None

    @model_validator(mode="after")
    def _task_fits(self) -> Trials:
        if self.two_stage and self.task == "counterfactual":
            raise ValueError("two_stage applies to classify, verify and simulate")
        if self.two_stage and not self.explanation:
            raise ValueError("two_stage shows the model's advice in the second stage: set explanation: true")
        return self


class Attention(_Step):
    type: Literal["attention"]
    text: str
    options: list[str] = Field(min_length=2)
    answer: str
    on_fail: Literal["screen_out", "flag"] = "flag"

    @model_validator(mode="after")
    def _answer_offered(self) -> Attention:
        if self.answer not in self.options:
            raise ValueError("`answer` must be one of `options`")
        return self


class Break(_Step):
    type: Literal["break"]
    text: str = "Take a short break. Continue when you are ready."


class Completion(_Step):
    type: Literal["completion"]
    id: str = "completion"
    text: str = "Thank you for taking part."


Step = Annotated[
    Consent | Instructions | Questionnaire | Trials | Attention | Break | Completion, Field(discriminator="type")
]

# Fields each step type records (columns of the export; the codebook is generated from these).
RECORDED: dict[str, dict[str, str]] = {
    "consent": {"answer": "agree or decline"},
    "questionnaire": {"values": "one column per question: the answer given"},
    "attention": {"answer": "the option chosen", "correct": "whether it was the instructed option"},
    "trials": {
        "answer": "the participant's (final) answer",
        "correct": "whether the (final) answer was right for the task",
        "confidence": "how sure, 1-5 (blocks with confidence: true)",
        "first_answer": "two-stage blocks: the answer before seeing the model's advice",
        "first_correct": "two-stage blocks: whether the first answer was right",
        "onset_ms": "client performance.now() when the stimulus appeared",
        "response_ms": "client performance.now() at the answer",
        "rt_ms": "response_ms - onset_ms",
    },
    "instructions": {},
    "break": {},
    "completion": {},
}


class AssignmentPolicy(Strict):
    timeout_minutes: float = Field(default=30, gt=0)  # active participants idle longer are not counted


class Prolific(Strict):
    completion_code: str
    screen_out_code: str | None = None


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
    prolific: Prolific | None = None
    exclusions: Exclusions = Exclusions()
    steps: list[Step] = Field(min_length=2)

    _id = field_validator("id")(_slug)

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
        return self

    def condition(self, cid: str) -> Condition:
        return next(c for c in self.conditions if c.id == cid)

    @property
    def blocks(self) -> list[Trials]:
        return [s for s in self.steps if isinstance(s, Trials)]

    def needs_condition(self, step: Step) -> bool:
        return isinstance(step, Trials) or (isinstance(step, Instructions) and step.explain_method)
