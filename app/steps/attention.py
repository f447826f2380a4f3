"""`attention`: an instructed-response check; failing it flags the participant or screens them out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from app.errors import Refused
from app.steps.base import Answering, Recorded, StepType, Stored
from app.studies.base import StepSpec


class Attention(StepSpec):
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


class AttentionStep(StepType[Attention]):
    name = "attention"
    params = Attention
    template = "attention.html"
    summary = "a question whose text says which option to choose"
    passed = "passed"

    def columns(self, step: Attention) -> list[Recorded]:
        return [
            Recorded(f"{step.id}.answer", "string", f"attention check: {step.text}", " | ".join(step.options)),
            Recorded(f"{step.id}.passed", "boolean", "chose the instructed option", "true, false"),
        ]

    def flatten(self, step_id: str, row: Any) -> dict[str, Any]:
        return {f"{step_id}.answer": row.answer, f"{step_id}.passed": bool(row.correct)}

    def parse(self, ctx: Answering, form: dict[str, str], multi: dict[str, list[str]]) -> str:
        answer = form.get("answer", "")
        if answer not in self.spec(ctx.page).options:
            raise Refused("the answer is not one of the options offered")
        return answer

    def store(self, ctx: Answering, parsed: str) -> Stored:
        step = self.spec(ctx.page)
        ok = parsed == step.answer
        end = ("screened_out", f"failed attention check {step.id}") if not ok and step.on_fail == "screen_out" else None
        return Stored(ctx.row(answer=parsed, correct=ok), end=end)

    def instructed(self, step: Attention) -> list[str]:
        return [step.answer]
