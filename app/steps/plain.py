"""Steps that ask nothing: `instructions`, `break` and the final `completion` page."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import Field

from app.steps.base import Showing, StepType
from app.studies.base import StepSpec
from app.studies.explanations import intro


class Instructions(StepSpec):
    type: Literal["instructions"]
    title: str = "Instructions"
    markdown: str
    images: list[str] = Field(
        default_factory=list
    )  # files of the study's asset run, e.g. guides/guide_062_Herring_Gull.png
    explain_method: bool = False  # also introduce the participant's explanation (needs a condition)


class Break(StepSpec):
    type: Literal["break"]
    text: str = "Take a short break. Continue when you are ready."


class Completion(StepSpec):
    type: Literal["completion"]
    id: str = "completion"
    text: str = "Thank you for taking part."


class InstructionsStep(StepType[Instructions]):
    name = "instructions"
    params = Instructions
    template = "instructions.html"
    summary = "a page of text and pictures, and for explain_method what the participant's explanation shows"

    def needs_condition(self, step: Instructions) -> bool:
        return step.explain_method

    def view(self, ctx: Showing) -> dict[str, Any]:
        step = self.spec(ctx.page)
        assets = ctx.study.assets
        assert assets is not None
        return {
            "images": [assets.url(i) for i in step.images],
            "intro": intro(ctx.study, ctx.condition) if step.explain_method else None,
        }


class BreakStep(StepType[Break]):
    name = "break"
    params = Break
    template = "break.html"
    summary = "a pause"


class CompletionStep(StepType[Completion]):
    name = "completion"
    params = Completion
    template = "completion.html"
    summary = "the last page, with the Prolific completion link"
    final = True

    def view(self, ctx: Showing) -> dict[str, Any]:
        prolific, p = ctx.study.spec.prolific, ctx.participant
        code = prolific.completion_code if prolific and p.external_pid else None
        done = code is not None and p.status == "completed"
        url = f"{ctx.prolific_url}?{urlencode({'cc': code})}" if done else None
        # shown as well: if the redirect fails, the participant types it into Prolific
        return {"prolific_url": url, "completion_code": code if done else None}
