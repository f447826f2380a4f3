"""`consent`: the study's consent text, agree or decline. Declining ends the participation politely."""

from __future__ import annotations

from typing import Any, Literal

from app.errors import Refused
from app.steps.base import Answering, Recorded, Showing, StepType, Stored
from app.studies.base import StepSpec


class Consent(StepSpec):
    type: Literal["consent"]
    id: str = "consent"
    agree: str = "I agree to take part"
    decline: str = "I do not agree"


class ConsentStep(StepType[Consent]):
    name = "consent"
    params = Consent
    template = "consent.html"
    summary = "the study's consent text with two buttons"

    def columns(self, step: Consent) -> list[Recorded]:
        return [Recorded(f"{step.id}.answer", "string", "the consent given", "agree, decline")]

    def flatten(self, step_id: str, row: Any) -> dict[str, Any]:
        return {f"{step_id}.answer": row.answer}

    def parse(self, ctx: Answering, form: dict[str, str], multi: dict[str, list[str]]) -> str:
        choice = form.get("choice")
        if choice not in ("agree", "decline"):
            raise Refused("choose to agree or not to take part")
        return choice

    def store(self, ctx: Answering, parsed: str) -> Stored:
        end = ("declined", "did not consent") if parsed == "decline" else None
        return Stored(ctx.row(answer=parsed), end=end)

    def view(self, ctx: Showing) -> dict[str, Any]:
        return {"text": ctx.study.spec.consent}
