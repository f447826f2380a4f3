"""`trials`: a block of items, one page each, asked with one of the registered tasks.

What every trial shares lives here: the item's picture and the condition's explanation, the
model's answer where the task or the condition shows it, confidence ratings, time limits,
two stages (answer, see the model's advice, answer again), feedback, and the fields every
trial row records. What differs between tasks (the answers, the key, the feedback sentence,
anything else the page shows) is the task's (app/steps/tasks.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from sqlalchemy import case

from app.errors import Conflict, Invalid, Refused
from app.models import Response
from app.steps.base import Answering, Recorded, Showing, StepType, Stored, in_values
from app.steps.registry import TASKS
from app.studies.base import StepSpec, Strict
from app.studies.explanations import explanation_for, shown_view

# performance.now() counts from the page's load, and every trial is a page of its own: a value
# beyond a day is a broken or forged clock, not a slow participant
MAX_CLIENT_MS = 24 * 3600 * 1000.0
CONFIDENCE = ("1", "2", "3", "4", "5")


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


class Trials(StepSpec):
    type: Literal["trials"]
    phase: str = "test"  # learning, test, ...
    task: str  # a registered task: classify, verify, simulate, counterfactual
    items: Items
    explanation: bool = True  # show the condition's explanation in this block
    feedback: bool = False  # after each answer, say whether it was right (and the right answer)
    confidence: bool = False  # ask how sure the participant is (1-5)
    time_limit_s: float | None = Field(default=None, gt=0)
    two_stage: bool = False  # answer, see the model's advice, answer again
    choices: list[int] | None = None  # classify / simulate: class ids offered (default: all)
    prompt: str | None = None
    guides: bool = True  # link the study's species guides from each trial (if the study has any)

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        if v not in TASKS:
            raise ValueError(f"unknown task {v!r}; use one of {', '.join(TASKS)}")
        return v

    @model_validator(mode="after")
    def _task_fits(self) -> Trials:
        if self.two_stage and not TASKS[self.task].two_stage:
            raise ValueError(f"two_stage applies to {', '.join(n for n, t in TASKS.items() if t.two_stage)}")
        if self.two_stage and not self.explanation:
            raise ValueError("two_stage shows the model's advice in the second stage: set explanation: true")
        return self


_FIELDS = (  # every trial row's fields; `task` goes third (its values are the registered tasks)
    Recorded("phase", "string", "the block's phase, e.g. learning, practice, test"),
    Recorded("block", "string", "the trial block's step id", field="step_id"),
    Recorded("trial_index", "integer", "0-based position of the trial in the participant's own order of the block"),
    Recorded("item_id", "string", "the image id in the data set (counterfactual: the question id)"),
    Recorded("true_class", "integer", "CUB class id of the species shown"),
    Recorded("model_prediction", "integer", "CUB class id the model predicted"),
    Recorded("model_confidence", "number", "the model's probability for its prediction", "0 to 1"),
    Recorded("model_correct", "boolean", "whether the model's prediction was right", "true, false"),
    Recorded(
        "explanation",
        "string",
        "what kind of explanation was shown with the trial",
        "none, heatmap, concepts, sag, examples",
    ),
    Recorded("asset_id", "string", "which explanation asset was shown (method:image:target); empty if none"),
    Recorded("response", "string", "the (final) answer: a class id, yes/no, or a/b", field="answer"),
    Recorded("correct", "boolean", "whether the (final) answer was right for the task", "true, false"),
    Recorded("confidence", "integer", "how sure the participant was (blocks with confidence ratings)", "1 to 5"),
    Recorded(
        "first_response", "string", "two-stage blocks: the answer before the model's advice", field="first_answer"
    ),
    Recorded("first_correct", "boolean", "two-stage blocks: whether the first answer was right", "true, false"),
    Recorded("first_confidence", "integer", "two-stage blocks: how sure before the model's advice", "1 to 5"),
    Recorded(
        "switched",
        "boolean",
        "two-stage blocks: the final answer differs from the first",
        "true, false",
        sql=case(
            (Response.first_answer.is_(None), None), else_=Response.first_answer.is_distinct_from(Response.answer)
        ),
    ),
    Recorded(
        "rt_ms",
        "number",
        "response time: response_ms - onset_ms (client clock); empty without JavaScript or when timing_discarded",
    ),
    Recorded(
        "server_rt_ms",
        "number",
        "response time on the server's clock: the trial page first served -> the (final) answer received; "
        "needs no JavaScript, includes page loading and the network (two-stage blocks: both stages)",
    ),
    Recorded(
        "onset_ms",
        "number",
        "client performance.now() when everything the trial shows was on screen: the picture and every "
        "picture of the explanation and the task, loaded and decoded (±1 frame)",
    ),
    Recorded("response_ms", "number", "client performance.now() at the answer"),
    Recorded("first_onset_ms", "number", "two-stage blocks: onset_ms of the first answer's page"),
    Recorded("first_response_ms", "number", "two-stage blocks: response_ms of the first answer"),
    in_values(
        "timed_out", "boolean", "the time limit ran out before an answer (time_limit_s blocks)", "true, or empty"
    ),
    in_values(
        "timing_discarded",
        "string",
        "why the client's onset_ms and response_ms were dropped as impossible; empty if kept",
        "onset_ms/response_ms is missing or not a number; negative or beyond 24 hours; response before onset",
    ),
    Recorded("served_at", "datetime", "server time the trial page was first served (UTC)"),
    Recorded(
        "tab_hidden",
        "boolean",
        "the browser tab was hidden (another tab or window in front) while the trial was shown",
        "true, false, or empty without JavaScript",
    ),
    Recorded("first_received_at", "datetime", "two-stage blocks: server time of the first answer (UTC)"),
    Recorded("received_at", "datetime", "server time the (final) answer was stored (UTC)"),
)


def client_times(form: dict[str, str]) -> tuple[float | None, float | None, str | None]:
    """The client's (onset, response) times, or (None, None, why) when they are impossible.

    Impossible times are dropped, never refused: the participant cannot fix a hidden field, and
    their answer is worth keeping. The answer is stored with empty client times and the reason
    (`timing_discarded`); the server's own response time (server_rt_ms) stands in, and the too-fast
    exclusion reads both clocks. No JavaScript: no times, no reason.
    """
    raw = {name: form.get(name, "").strip() for name in ("onset_ms", "response_ms")}
    if not any(raw.values()):
        return None, None, None
    got: dict[str, float] = {}
    for name, text in raw.items():
        try:
            v = float(text)
        except ValueError:
            return None, None, f"{name} is not a number" if text else f"{name} is missing"
        if v != v or not 0 <= v <= MAX_CLIENT_MS:
            return None, None, f"{name} is negative or beyond 24 hours"
        got[name] = v
    onset, response = got["onset_ms"], got["response_ms"]
    if response < onset:
        return None, None, "response_ms is before onset_ms"
    return onset, response, None


def _pct(v: float) -> str:
    return "more than 100%" if v > 1 else f"{round(v * 100)}%"


@dataclass
class TrialAnswer:
    """One submitted trial form, read and checked."""

    answer: str
    confidence: int | None
    onset: float | None
    response: float | None
    timed_out: bool
    stage: str
    pending: Response | None  # two-stage trials: the row of the first answer, if given
    discarded: str | None = None  # why the client's times were dropped, if they were
    hidden: bool | None = None  # the tab was hidden while the page was shown (None: not reported)

    @property
    def rt(self) -> float | None:
        return self.response - self.onset if self.onset is not None and self.response is not None else None


class TrialsStep(StepType[Trials]):
    name = "trials"
    params = Trials
    template = "trial.html"
    summary = "one page per item of the block, asked with the block's task"
    trial_rows = True

    def fields(self) -> tuple[Recorded, ...]:
        return (
            *_FIELDS[:2],
            Recorded("task", "string", "what the participant was asked", ", ".join(TASKS)),
            *_FIELDS[2:],
        )

    def needs_condition(self, step: Trials) -> bool:
        return True

    def shows_feedback(self, step: Trials) -> bool:
        return step.feedback

    def parse(self, ctx: Answering, form: dict[str, str], multi: dict[str, list[str]]) -> TrialAnswer | None:
        step = self.spec(ctx.page)
        pending = ctx.stored() if step.two_stage else None
        if pending is not None and pending.complete:
            return None  # answered already: nothing to do
        timed_out = form.get("timed_out") == "1" and step.time_limit_s is not None
        answer = form.get("answer", "").strip()
        if not answer and not timed_out:
            raise Invalid({"answer": "Please choose an answer."})
        if answer and answer not in {v for v, _ in TASKS[step.task].options(ctx.study, step)}:
            raise Refused("the answer is not one of the options offered")
        confidence = None
        if step.confidence and answer:
            raw = form.get("confidence", "").strip()
            if not raw:
                raise Invalid({"confidence": "Please say how sure you are."})
            if raw not in CONFIDENCE:
                raise Refused("confidence must be 1 to 5")
            confidence = int(raw)
        onset, response, discarded = client_times(form)
        stage = form.get("stage", "1")
        if step.two_stage and stage not in ("1", "2"):
            raise Refused("stage must be 1 or 2")
        hidden = {"1": True, "0": False, "": None}.get(form.get("tab_hidden", ""))
        return TrialAnswer(answer, confidence, onset, response, timed_out, stage, pending, discarded, hidden)

    def store(self, ctx: Answering, parsed: TrialAnswer | None) -> Stored:
        if parsed is None:
            return Stored(finished=False)
        step, item, p = self.spec(ctx.page), ctx.page.item, ctx.participant
        assert item is not None
        task = TASKS[step.task]
        a = parsed
        correct = task.score(item, a.answer) if a.answer else False
        extra = {**task.record(item, a.answer or None), **({"timing_discarded": a.discarded} if a.discarded else {})}
        if step.two_stage:
            existing = a.pending
            if existing is not None:
                if a.stage != "2":
                    return Stored(finished=False)  # a repeated first answer: keep the first one
                existing.answer, existing.correct, existing.confidence = a.answer or None, correct, a.confidence
                existing.onset_ms, existing.response_ms, existing.rt_ms = a.onset, a.response, a.rt
                if extra:
                    existing.values = {**(existing.values or {}), **extra}
                existing.complete = True
                existing.received_at = ctx.now
                existing.server_rt_ms = ctx.server_rt_ms()  # both stages
                if a.hidden is not None:  # hidden in either stage
                    existing.tab_hidden = bool(existing.tab_hidden) or a.hidden
                return Stored()
            if a.stage != "1":
                raise Conflict("this trial's first answer has not been given yet")
        condition = ctx.study.spec.condition(p.condition or "")
        advised = step.explanation or step.two_stage
        shown = None
        if advised and condition.explanation != "none":
            found = explanation_for(ctx.study.entries[item.image_id], condition)
            shown = f"{found.method}:{item.image_id}:{found.target}" if found else None
        values = {**({"timed_out": True} if a.timed_out else {}), **extra}
        row = ctx.row(
            phase=step.phase,
            task=step.task,
            trial_index=ctx.page.trial,
            item_id=item.key,
            asset_id=shown,
            explanation=condition.explanation if advised else "none",
            true_class=item.true_class,
            model_prediction=item.predicted_class,
            model_confidence=item.confidence,
            model_correct=item.model_correct,
            values=values or None,
            served_at=ctx.served_at,
            server_rt_ms=ctx.server_rt_ms(),
            tab_hidden=a.hidden,
        )
        if step.two_stage:
            row.first_answer, row.first_correct, row.first_confidence = a.answer or None, correct, a.confidence
            row.first_onset_ms, row.first_response_ms, row.first_received_at = a.onset, a.response, ctx.now
            row.complete = False
            return Stored(row, finished=False)
        row.answer, row.correct, row.confidence = a.answer or None, correct, a.confidence
        row.onset_ms, row.response_ms, row.rt_ms = a.onset, a.response, a.rt
        return Stored(row)

    def view(self, ctx: Showing) -> dict[str, Any]:
        study, page = ctx.study, ctx.page
        step, item = self.spec(page), page.item
        assert item is not None and study.assets is not None
        task = TASKS[step.task]
        names = study.class_names
        condition = ctx.condition
        existing = ctx.stored() if step.two_stage else None
        stage = 2 if existing is not None and not existing.complete else 1
        entry = study.entries[item.image_id]
        advice = step.explanation and (not step.two_stage or stage == 2)
        explanation = shown_view(study, entry, condition) if advice else None
        show_prediction = task.shows_prediction
        if show_prediction is None:
            show_prediction = bool(advice and condition.show_prediction)
        options = [{"value": v, "label": label} for v, label in task.options(study, step)]
        pages = ctx.pages
        nxt = pages[page.index + 1] if page.index + 1 < len(pages) else None
        first = None
        if stage == 2 and existing is not None and existing.first_answer is not None:
            first = next((o["label"] for o in options if o["value"] == existing.first_answer), existing.first_answer)
        return {
            "image": study.assets.url(entry.image),
            "prompt": step.prompt or task.prompt,
            "options": options,
            "stage": stage,
            "explanation": explanation,
            "first_answer": first,
            "prediction": names[item.predicted_class] if show_prediction else None,
            "confidence_shown": _pct(item.confidence) if show_prediction and condition.show_confidence else None,
            "preload": [study.assets.url(study.entries[nxt.item.image_id].image)] if nxt and nxt.item else [],
            "time_limit": step.time_limit_s,
            "task_template": task.template,
            **task.view(study, item),
        }

    def feedback(self, ctx: Showing, row: Response) -> dict[str, Any] | None:
        step, item, study = self.spec(ctx.page), ctx.page.item, ctx.study
        if not step.feedback or item is None or study.assets is None:
            return None
        task = TASKS[step.task]
        return {
            "correct": bool(row.correct),
            "detail": task.feedback(item, study.class_names),
            "image": study.assets.url(study.entries[item.image_id].image),
            "timed_out": bool(row.values and row.values.get("timed_out")),
            "task_template": task.template,  # what the question showed besides the gull (A and B), shown again
            **task.view(study, item),
        }
