"""The participant's journey as use cases: enter, see the current page, answer it.

No HTTP here: functions take a database session and never commit (the request does). Every
answer is checked against the page the server says the participant is on; a repeated or
stale submission changes nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from app.models import Assignment, Event, Participant, Response, Study, aware, utcnow
from app.studies.loader import LoadedStudy, explanation_for
from app.studies.pages import Page, plan
from app.studies.schema import (
    Attention,
    Break,
    Completion,
    Consent,
    Instructions,
    Likert,
    Multiple,
    Number,
    Questionnaire,
    Rule,
    Single,
    Text,
    Trials,
)

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_MS = 1e10  # client clocks beyond this are not plausible performance.now() values


class Rejected(Exception):
    """A submission that is not acceptable: forged, malformed or out of place. Nothing is stored."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class Invalid(Exception):
    """Answers a person can fix (a required question left empty): the page is shown again."""

    errors: dict[str, str] = field(default_factory=dict)


def new_code() -> str:
    return secrets.token_urlsafe(18)


# -- entering ---------------------------------------------------------------------------------------
def enter(
    session: Session,
    study: LoadedStudy,
    pid: str | None,
    ext_study: str | None,
    ext_session: str | None,
    cookie_code: str | None,
    pilot: bool = False,
) -> tuple[Participant, bool]:
    """Find or create the participant; returns (participant, is_new). One participation per PID."""
    for name, value in (("PROLIFIC_PID", pid), ("STUDY_ID", ext_study), ("SESSION_ID", ext_session)):
        if value is not None and not EXTERNAL_ID.match(value):
            raise Rejected(400, f"{name} is not a valid id (letters, digits, '-' and '_', at most 64)")
    if pid:
        found = session.scalar(
            select(Participant).where(Participant.study_id == study.id, Participant.external_pid == pid)
        )
        if found:
            return found, False
    elif cookie_code:
        found = session.scalar(
            select(Participant).where(Participant.code == cookie_code, Participant.study_id == study.id)
        )
        if found and found.status in ("started", "active"):
            return found, False
    p = Participant(
        code=new_code(),
        study_id=study.id,
        study_hash=study.content_hash,
        seed=secrets.randbits(31),
        external_pid=pid,
        external_study=ext_study,
        external_session=ext_session,
        is_pilot=pilot,
    )
    session.add(p)
    session.flush()
    return p, True


def pages_of(study: LoadedStudy, p: Participant) -> tuple[Page, ...]:
    return plan(study, p.condition, p.item_set, p.seed)


def current(study: LoadedStudy, p: Participant) -> Page:
    pages = pages_of(study, p)
    return pages[min(p.cursor, len(pages) - 1)]


SEEN_EVERY = dt.timedelta(seconds=60)


def touch(study: LoadedStudy, p: Participant, now: dt.datetime | None = None) -> None:
    """Note that the participant is here. Kept to the minute (or a tenth of the study's idle
    timeout, if that is shorter): writing it on every page view would turn each read into a
    write transaction."""
    now = now or utcnow()
    every = min(SEEN_EVERY, dt.timedelta(minutes=study.spec.assignment.timeout_minutes) / 10)
    if p.last_seen_at is None or now - aware(p.last_seen_at) >= every:
        p.last_seen_at = now


# -- assignment -------------------------------------------------------------------------------------
def assign(session: Session, study: LoadedStudy, p: Participant, now: dt.datetime | None = None) -> str:
    """Balanced assignment: the condition with the fewest completed + recently active participants.

    The update of the study's lock row comes first, so concurrent assignments queue behind each
    other (a row lock in PostgreSQL, the write lock in SQLite) and always see fresh counts.
    """
    now = now or utcnow()
    session.execute(update(Study).where(Study.id == study.id).values(assign_lock=Study.assign_lock + 1))
    cutoff = now - dt.timedelta(minutes=study.spec.assignment.timeout_minutes)
    rows = session.execute(
        select(Participant.condition, Participant.status, Participant.last_seen_at).where(
            Participant.study_id == study.id,
            Participant.condition.is_not(None),
            Participant.is_pilot.is_(False),
            Participant.id != p.id,
        )
    ).all()
    counts = {c.id: 0 for c in study.spec.conditions}
    ever = {c.id: 0 for c in study.spec.conditions}
    for cond, status, seen in rows:
        if cond not in counts:
            continue
        ever[cond] += 1
        if status == "completed" or (status == "active" and aware(seen) >= cutoff):
            counts[cond] += 1
    order = [c.id for c in study.spec.conditions]
    chosen = min(order, key=lambda c: (counts[c], ever[c], order.index(c)))
    p.condition = chosen
    p.item_set = ever[chosen]  # rotates the item sets within each condition (Latin square)
    p.assigned_at = now
    p.status = "active"
    if not p.is_pilot:
        session.add(
            Assignment(
                participant_id=p.id,
                study_id=study.id,
                condition=chosen,
                item_set=p.item_set,
                counts={"counted": counts, "ever": ever},
                at=now,
            )
        )
    return chosen


# -- answering --------------------------------------------------------------------------------------
@dataclass
class Outcome:
    advanced: bool
    feedback_page: int | None = None  # show feedback for this page next
    ended: str | None = None  # "completed", "screened_out", "declined"


def _number(form: dict[str, str], name: str, lo: float, hi: float) -> float | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        raise Rejected(400, f"{name} must be a number") from None
    if not lo <= v <= hi or v != v:
        raise Rejected(400, f"{name} is out of range")
    return v


def _questionnaire(step: Questionnaire, form: dict[str, str], multi: dict[str, list[str]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    known = {f"q_{q.id}" for q in step.questions}
    unknown = [k for k in form if k.startswith("q_") and k not in known]
    if unknown:
        raise Rejected(400, f"unexpected fields {unknown[:3]}")
    for q in step.questions:
        name = f"q_{q.id}"
        raw = form.get(name, "").strip()
        if isinstance(q, Multiple):
            chosen = multi.get(name, [])
            idx = []
            for c in chosen:
                if not c.isdigit() or int(c) >= len(q.options):
                    raise Rejected(400, f"{name} has an option that was not offered")
                idx.append(int(c))
            if q.required and not idx:
                errors[q.id] = "Please choose at least one option."
            values[q.id] = [q.options[i] for i in sorted(set(idx))]
            continue
        if not raw:
            if q.required:
                errors[q.id] = "Please answer this question."
            values[q.id] = None
            continue
        if isinstance(q, Likert):
            if not raw.isdigit() or not 1 <= int(raw) <= q.points:
                raise Rejected(400, f"{name} must be a point of the {q.points}-point scale")
            values[q.id] = int(raw)
        elif isinstance(q, Single):
            if not raw.isdigit() or int(raw) >= len(q.options):
                raise Rejected(400, f"{name} is not one of the options offered")
            values[q.id] = q.options[int(raw)]
        elif isinstance(q, Number):
            try:
                v = float(raw)
            except ValueError:
                errors[q.id] = "Please enter a number."
                continue
            if (q.integer and v != int(v)) or (q.min is not None and v < q.min) or (q.max is not None and v > q.max):
                bounds = f" between {q.min:g} and {q.max:g}" if q.min is not None and q.max is not None else ""
                errors[q.id] = f"Please enter a{'' if not q.integer else ' whole'} number{bounds}."
                continue
            values[q.id] = int(v) if q.integer else v
        elif isinstance(q, Text):
            if len(raw) > q.max_length:
                raise Rejected(400, f"{name} is longer than {q.max_length} characters")
            values[q.id] = raw
    if errors:
        raise Invalid(errors)
    return values


def _screened(rules: list[Rule], values: dict[str, Any]) -> str | None:
    for r in rules:
        v = values.get(r.question)
        if v is None:
            continue
        if r.in_ is not None and (v in r.in_ or (isinstance(v, list) and set(v) & set(r.in_))):
            return r.reason
        if isinstance(v, (int, float)) and (
            (r.below is not None and v < r.below) or (r.above is not None and v > r.above)
        ):
            return r.reason
    return None


def task_answers(study: LoadedStudy, page: Page) -> list[str]:
    """The answers a trial accepts (values, not labels)."""
    step = page.step
    assert isinstance(step, Trials)
    if step.task in ("classify", "simulate"):
        return [str(c) for c in (step.choices or [c.id for c in study.manifest.classes])]
    if step.task == "verify":
        return ["yes", "no"]
    return ["a", "b"]


def is_correct(page: Page, answer: str) -> bool:
    it = page.item
    step = page.step
    assert it is not None and isinstance(step, Trials)
    if step.task == "classify":
        return answer == str(it.true_class)
    if step.task == "simulate":
        return answer == str(it.predicted_class)
    if step.task == "verify":
        return (answer == "yes") == it.model_correct
    assert it.question is not None
    return answer == it.question.higher


def _timing(form: dict[str, str]) -> tuple[float | None, float | None]:
    return _number(form, "onset_ms", 0, MAX_MS), _number(form, "response_ms", 0, MAX_MS)


def _trial(
    study: LoadedStudy, p: Participant, page: Page, form: dict[str, str], existing: Response | None, now: dt.datetime
) -> tuple[Response | None, bool]:
    """Store a trial answer; returns (row, finished). Two-stage trials finish on the second answer."""
    step = page.step
    assert isinstance(step, Trials) and page.item is not None
    timed_out = form.get("timed_out") == "1" and step.time_limit_s is not None
    answer = form.get("answer", "").strip()
    if not answer and not timed_out:
        raise Invalid({"answer": "Please choose an answer."})
    if answer and answer not in task_answers(study, page):
        raise Rejected(400, "the answer is not one of the options offered")
    confidence = None
    if step.confidence and answer:
        raw = form.get("confidence", "").strip()
        if not raw:
            raise Invalid({"confidence": "Please say how sure you are."})
        if raw not in {"1", "2", "3", "4", "5"}:
            raise Rejected(400, "confidence must be 1 to 5")
        confidence = int(raw)
    onset, resp = _timing(form)
    correct = is_correct(page, answer) if answer else False
    condition = study.spec.condition(p.condition or "")
    shown = None
    if (step.explanation or step.two_stage) and condition.explanation != "none":
        found = explanation_for(study.entries[page.item.image_id], condition)
        shown = f"{found.method}:{page.item.image_id}:predicted" if found else None
    stage = form.get("stage", "1")
    if step.two_stage and stage not in ("1", "2"):
        raise Rejected(400, "stage must be 1 or 2")
    if step.two_stage and existing is not None and not existing.complete:
        if stage != "2":
            return existing, False  # a repeated first answer: keep the first one
        existing.answer, existing.correct, existing.confidence = answer or None, correct, confidence
        existing.onset_ms, existing.response_ms = onset, resp
        existing.rt_ms = resp - onset if onset is not None and resp is not None else None
        existing.complete = True
        existing.received_at = now
        return existing, True
    if step.two_stage and stage != "1":
        raise Rejected(409, "this trial's first answer has not been given yet")
    it = page.item
    row = Response(
        participant_id=p.id,
        study_id=study.id,
        study_hash=study.content_hash,
        key=page.key,
        page=page.index,
        step_id=step.id,
        step_type="trials",
        phase=step.phase,
        task=step.task,
        trial_index=page.trial,
        condition=p.condition,
        item_id=it.key,
        asset_id=shown if (step.explanation or step.two_stage) else None,
        explanation=condition.explanation if (step.explanation or step.two_stage) else "none",
        true_class=it.true_class,
        model_prediction=it.predicted_class,
        model_confidence=it.confidence,
        model_correct=it.model_correct,
        received_at=now,
        values={"timed_out": True} if timed_out else None,
    )
    if step.two_stage:
        row.first_answer, row.first_correct, row.first_confidence = answer or None, correct, confidence
        row.first_onset_ms, row.first_response_ms, row.first_received_at = onset, resp, now
        row.complete = False
    else:
        row.answer, row.correct, row.confidence = answer or None, correct, confidence
        row.onset_ms, row.response_ms = onset, resp
        row.rt_ms = resp - onset if onset is not None and resp is not None else None
    return row, not step.two_stage


def submit(
    session: Session,
    study: LoadedStudy,
    p: Participant,
    page_index: int,
    form: dict[str, str],
    multi: dict[str, list[str]] | None = None,
    now: dt.datetime | None = None,
) -> Outcome:
    """Apply one form submission. Stale or repeated submissions change nothing.

    The caller has taken the participant's lock (`lock`) before loading `p`."""
    now = now or utcnow()
    if p.status not in ("started", "active"):
        return Outcome(False, ended=p.status)
    page = current(study, p)
    if page_index != page.index:
        if page_index < page.index:
            return Outcome(False)  # an earlier page answered again (back button, double click): ignore
        raise Rejected(409, "this page is not open yet; your progress has been kept")
    step = page.step
    repeatable = (
        {f"q_{q.id}" for q in step.questions if isinstance(q, Multiple)} if isinstance(step, Questionnaire) else set()
    )
    repeated = sorted(set(multi or {}) - repeatable)
    if repeated:
        raise Rejected(400, f"the field {repeated[0]!r} was sent more than once")
    # Only a two-stage trial has a row before it is finished; any other page the cursor points at
    # has none (a row and the cursor's move are committed together, under the participant's lock).
    existing = response_for(session, p, page.key) if isinstance(step, Trials) and step.two_stage else None
    if existing is not None and existing.complete:
        return Outcome(False)
    base = {
        "participant_id": p.id,
        "study_id": study.id,
        "study_hash": study.content_hash,
        "key": page.key,
        "page": page.index,
        "step_id": step.id,
        "condition": p.condition,
        "received_at": now,
    }
    ended = None
    if isinstance(step, Consent):
        choice = form.get("choice")
        if choice not in ("agree", "decline"):
            raise Rejected(400, "choose to agree or not to take part")
        session.add(Response(**base, step_type="consent", answer=choice))
        if choice == "decline":
            p.status, p.end_reason, ended = "declined", "did not consent", "declined"
    elif isinstance(step, Questionnaire):
        values = _questionnaire(step, form, multi or {})
        session.add(Response(**base, step_type="questionnaire", values=values))
        reason = _screened(step.screen_out, values)
        if reason:
            p.status, p.end_reason, ended = "screened_out", reason, "screened_out"
    elif isinstance(step, Attention):
        answer = form.get("answer", "")
        if answer not in step.options:
            raise Rejected(400, "the answer is not one of the options offered")
        ok = answer == step.answer
        session.add(Response(**base, step_type="attention", answer=answer, correct=ok))
        if not ok and step.on_fail == "screen_out":
            p.status, p.end_reason, ended = "screened_out", f"failed attention check {step.id}", "screened_out"
    elif isinstance(step, Trials):
        row, finished = _trial(study, p, page, form, existing, now)
        if row is not None and existing is None:
            session.add(row)
        if not finished:
            session.flush()
            return Outcome(False)
    elif isinstance(step, (Instructions, Break)):
        session.add(Response(**base, step_type=step.type))
    elif isinstance(step, Completion):
        return Outcome(False, ended="completed")
    if ended:
        p.cursor = page.index
        return Outcome(True, ended=ended)
    p.cursor = page.index + 1
    pages = pages_of(study, p)
    if p.cursor >= len(pages) and p.condition is None:
        assign(session, study, p, now)
        pages = pages_of(study, p)
    if isinstance(pages[p.cursor].step, Completion):
        p.status, p.completed_at = "completed", now
        ended = "completed"
    feedback = page.index if isinstance(step, Trials) and step.feedback else None
    return Outcome(True, feedback_page=feedback, ended=ended)


def log_event(
    session: Session, study: LoadedStudy, p: Participant, kind: str, page: int | None, detail: dict[str, Any]
) -> None:
    session.add(Event(participant_id=p.id, study_id=study.id, kind=kind, page=page, detail=detail))


# Built once: every request runs these, and building a statement costs more than running it.
_PARTICIPANT = select(Participant).where(Participant.code == bindparam("code"))
_RESPONSE = select(Response).where(Response.participant_id == bindparam("pid"), Response.key == bindparam("key"))
_LOCK = (
    update(Participant)
    .where(Participant.code == bindparam("the_code"))  # not "code": that name is the column's own
    .values(last_seen_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


def lock(session: Session, code: str) -> None:
    """Take the participant's lock for this transaction, before reading them to apply an answer.

    Writing their row makes a simultaneous submission for the same participant (a double click)
    wait here until this one has committed (a row lock in PostgreSQL, the write lock in SQLite);
    it then reads the participant as this one left them, and its answer changes nothing.
    """
    session.execute(_LOCK, {"the_code": code, "now": utcnow()})


def participant_by_code(session: Session, code: str) -> Participant | None:
    return session.scalar(_PARTICIPANT, {"code": code})


def response_for(session: Session, p: Participant, key: str) -> Response | None:
    return session.scalar(_RESPONSE, {"pid": p.id, "key": key})


def count_participants(session: Session, study_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Participant).where(Participant.study_id == study_id)) or 0
