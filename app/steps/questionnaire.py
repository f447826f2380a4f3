"""`questionnaire`: questions of five kinds on one page, and rules that screen a participant out.

Each kind of question declares its parameters, how it reads its form field and its column of
participants.csv; a new kind is one class here, added to `Question`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from app.errors import Invalid, Refused
from app.steps.base import Answering, Recorded, StepType, Stored
from app.studies.base import StepSpec, Strict, slug


class _Question(Strict):
    id: str
    text: str
    required: bool = True

    _id = field_validator("id")(slug)

    @property
    def name(self) -> str:
        return f"q_{self.id}"

    def column(self, step_id: str) -> Recorded:
        raise NotImplementedError

    def read(self, raw: str, chosen: list[str]) -> Any:
        """The answer from its form field (`raw`, or the checked values `chosen`). Raises Refused
        for what the page could not have sent, Invalid for what the person can fix."""
        raise NotImplementedError


class Likert(_Question):
    type: Literal["likert"]
    points: int = Field(default=7, ge=2, le=11)
    low: str = "Strongly disagree"
    high: str = "Strongly agree"

    def column(self, step_id: str) -> Recorded:
        return Recorded(f"{step_id}.{self.id}", "integer", self.text, f"1 ({self.low}) to {self.points} ({self.high})")

    def read(self, raw: str, chosen: list[str]) -> Any:
        if not raw.isdigit() or not 1 <= int(raw) <= self.points:
            raise Refused(f"{self.name} must be a point of the {self.points}-point scale")
        return int(raw)


class Single(_Question):
    type: Literal["single"]
    options: list[str] = Field(min_length=2)

    def column(self, step_id: str) -> Recorded:
        return Recorded(f"{step_id}.{self.id}", "string", self.text, " | ".join(self.options))

    def read(self, raw: str, chosen: list[str]) -> Any:
        if not raw.isdigit() or int(raw) >= len(self.options):
            raise Refused(f"{self.name} is not one of the options offered")
        return self.options[int(raw)]


class Multiple(_Question):
    type: Literal["multiple"]
    options: list[str] = Field(min_length=2)
    required: bool = False

    def column(self, step_id: str) -> Recorded:
        return Recorded(
            f"{step_id}.{self.id}", "string", self.text + " (choices joined by '; ')", " | ".join(self.options)
        )

    def read(self, raw: str, chosen: list[str]) -> Any:
        idx = []
        for c in chosen:
            if not c.isdigit() or int(c) >= len(self.options):
                raise Refused(f"{self.name} has an option that was not offered")
            idx.append(int(c))
        return [self.options[i] for i in sorted(set(idx))]


class Number(_Question):
    type: Literal["number"]
    min: float | None = None
    max: float | None = None
    integer: bool = True

    def column(self, step_id: str) -> Recorded:
        return Recorded(f"{step_id}.{self.id}", "number", self.text, f"{self.min} to {self.max}")

    def read(self, raw: str, chosen: list[str]) -> Any:
        try:
            v = float(raw)
        except ValueError:
            raise Invalid({self.id: "Please enter a number."}) from None
        if not math.isfinite(v):  # "inf", "nan", 1e400: no number anyone means
            raise Invalid({self.id: "Please enter a number."})
        if (
            (self.integer and v != int(v))
            or (self.min is not None and v < self.min)
            or (self.max is not None and v > self.max)
        ):
            bounds = f" between {self.min:g} and {self.max:g}" if self.min is not None and self.max is not None else ""
            raise Invalid({self.id: f"Please enter a{'' if not self.integer else ' whole'} number{bounds}."})
        return int(v) if self.integer else v


class Text(_Question):
    type: Literal["text"]
    max_length: int = Field(default=1000, ge=1, le=5000)
    required: bool = False

    def column(self, step_id: str) -> Recorded:
        return Recorded(f"{step_id}.{self.id}", "string", self.text, f"free text, at most {self.max_length} characters")

    def read(self, raw: str, chosen: list[str]) -> Any:
        if len(raw) > self.max_length:
            raise Refused(f"{self.name} is longer than {self.max_length} characters")
        return raw


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

    def matches(self, v: Any) -> bool:
        if v is None:
            return False
        if self.in_ is not None and (v in self.in_ or (isinstance(v, list) and set(v) & set(self.in_))):
            return True
        return isinstance(v, (int, float)) and (
            (self.below is not None and v < self.below) or (self.above is not None and v > self.above)
        )


class Questionnaire(StepSpec):
    type: Literal["questionnaire"]
    title: str = "A few questions"
    questions: list[Question] = Field(min_length=1)
    screen_out: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules_refer(self) -> Questionnaire:
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError("question ids must be unique within a questionnaire")
        for r in self.screen_out:
            if r.question not in ids:
                raise ValueError(f"screen_out rule refers to unknown question {r.question!r}")
        return self


class QuestionnaireStep(StepType[Questionnaire]):
    name = "questionnaire"
    params = Questionnaire
    template = "questionnaire.html"
    summary = "questions: likert, single, multiple, number, text; screening rules"

    def columns(self, step: Questionnaire) -> list[Recorded]:
        return [q.column(step.id) for q in step.questions]

    def flatten(self, step_id: str, row: Any) -> dict[str, Any]:
        return {f"{step_id}.{k}": "; ".join(v) if isinstance(v, list) else v for k, v in (row.values or {}).items()}

    def repeatable(self, step: Questionnaire) -> set[str]:
        return {q.name for q in step.questions if isinstance(q, Multiple)}

    def parse(self, ctx: Answering, form: dict[str, str], multi: dict[str, list[str]]) -> dict[str, Any]:
        step = self.spec(ctx.page)
        known = {q.name for q in step.questions}
        unknown = [k for k in form if k.startswith("q_") and k not in known]
        if unknown:
            raise Refused(f"unexpected fields {unknown[:3]}")
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for q in step.questions:
            raw = form.get(q.name, "").strip()
            # one checked box arrives as a plain field, several as a repeated one
            chosen = multi.get(q.name) or ([raw] if raw else [])
            if not (chosen if isinstance(q, Multiple) else raw):
                if q.required:
                    errors[q.id] = (
                        "Please choose at least one option."
                        if isinstance(q, Multiple)
                        else "Please answer this question."
                    )
                values[q.id] = [] if isinstance(q, Multiple) else None
                continue
            try:
                values[q.id] = q.read(raw, chosen)
            except Invalid as fixable:
                errors.update(fixable.errors)
        if errors:
            raise Invalid(errors)
        return values

    def store(self, ctx: Answering, parsed: dict[str, Any]) -> Stored:
        reason = next((r.reason for r in self.spec(ctx.page).screen_out if r.matches(parsed.get(r.question))), None)
        return Stored(ctx.row(values=parsed), end=("screened_out", reason) if reason else None)
