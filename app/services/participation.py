"""The participant's journey as use cases: enter, see the current page, answer it.

No HTTP here: functions take a database session and never commit (the request's UnitOfWork
does); problems are domain errors (app/errors.py). What a page reads and stores is its step
type's (app/steps/). Every answer is checked against the page the server says the participant
is on; a repeated or stale submission changes nothing.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, Refused
from app.models import Assignment, Event, Participant, Study, aware, utcnow
from app.services import recruitment
from app.services.entry import new_code
from app.steps import step_type
from app.steps.base import Answering, Showing, answered
from app.studies.loader import LoadedStudy
from app.studies.pages import Page, plan


# -- entering: app/services/entry.py (nothing is stored before consent) -------------------------------
def preview(session: Session, study: LoadedStudy, condition: str, by: str) -> Participant:
    """A researcher's pilot participation in a chosen condition: left out of every count."""
    if condition not in {c.id for c in study.spec.conditions}:
        raise NotFound(f"The study has no condition {condition!r}.", title="No such condition")
    p = Participant(
        code=new_code(),
        study_id=study.id,
        study_hash=study.content_hash,
        manifest_hash=study.manifest_hash or None,
        seed=secrets.randbits(31),
        origin="pilot",
        condition=condition,
        item_set=0,
        status="active",
        end_reason=f"pilot by {by}",
    )
    session.add(p)
    session.flush()
    return p


def pages_of(study: LoadedStudy, p: Participant) -> tuple[Page, ...]:
    return plan(study, p.condition, p.item_set, p.seed)


def current(study: LoadedStudy, p: Participant) -> Page:
    pages = pages_of(study, p)
    return pages[min(p.cursor, len(pages) - 1)]


def served(p: Participant, page: Page, now: dt.datetime | None = None) -> None:
    """Note when a page is first sent to the participant: the server's own clock for the answer's
    response time (a refresh keeps the first time; the participant has seen the page since)."""
    if p.served_page != page.index:
        p.served_page, p.served_at = page.index, now or utcnow()


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
    """Balanced assignment: the condition with the fewest completed + recently active participants,
    among those below their quota.

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
            Participant.origin == p.origin,  # real people balanced among themselves, bots among bots
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
    # Conditions at their quota take nobody more; if a crowd filled every one while this person
    # was on their way here, they still get a condition (they have started: they may finish).
    quota = recruitment.quotas(session, study)
    room = [c for c in order if c not in quota or counts[c] < quota[c]] or order
    chosen = min(room, key=lambda c: (counts[c], ever[c], order.index(c)))
    p.condition = chosen
    p.item_set = ever[chosen]  # rotates the item sets within each condition (Latin square)
    p.assigned_at = now
    p.status = "active"
    if p.is_real:
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

    The page's step type reads the form (Invalid or Refused, before anything changes) and
    stores the answer; this moves the cursor, assigns a condition when the pages before the
    first condition-dependent step are done, and ends the participation where the step says so.
    The caller has taken the participant's lock (`lock`) before loading `p`."""
    now = now or utcnow()
    if p.status not in ("started", "active"):
        return Outcome(False, ended=p.status)
    page = current(study, p)
    if page_index != page.index:
        if page_index < page.index:
            return Outcome(False)  # an earlier page answered again (back button, double click): ignore
        raise Conflict("this page is not open yet; your progress has been kept")
    kind = step_type(page.step)
    repeated = sorted(set(multi or {}) - kind.repeatable(page.step))
    if repeated:
        raise Refused(f"the field {repeated[0]!r} was sent more than once")
    if kind.final:
        return Outcome(False, ended="completed")
    # Only a two-stage trial has a row before it is finished; any other page the cursor points at
    # has none (a row and the cursor's move are committed together, under the participant's lock).
    ctx = Answering(session, study, p, page, now)
    stored = kind.store(ctx, kind.parse(ctx, form, multi or {}))
    if stored.row is not None:
        session.add(stored.row)
    if not stored.finished:
        session.flush()
        return Outcome(False)
    if stored.end is not None:
        p.status, p.end_reason = stored.end
        p.cursor = page.index
        return Outcome(True, ended=p.status)
    p.cursor = page.index + 1
    pages = pages_of(study, p)
    if p.cursor >= len(pages) and p.condition is None:
        assign(session, study, p, now)
        pages = pages_of(study, p)
    ended = None
    if step_type(pages[p.cursor].step).final:
        p.status, p.completed_at = "completed", now
        ended = "completed"
    feedback = page.index if kind.shows_feedback(page.step) else None
    return Outcome(True, feedback_page=feedback, ended=ended)


def showing(session: Session, study: LoadedStudy, p: Participant, page: Page, prolific_url: str) -> Showing:
    """What a step type needs to draw one page of this participant's."""
    return Showing(session, study, p, page, pages_of(study, p), prolific_url)


def feedback(session: Session, study: LoadedStudy, p: Participant, page_index: int) -> dict[str, Any] | None:
    """The feedback page for an answered page, or None if there is none to show (not answered
    yet, a page without feedback, an address typed by hand)."""
    pages = pages_of(study, p)
    if not 0 <= page_index < len(pages) or page_index >= p.cursor:
        return None
    page = pages[page_index]
    row = answered(session, p.id, page.key)
    if row is None:
        return None
    return step_type(page.step).feedback(showing(session, study, p, page, ""), row)


def log_event(
    session: Session, study: LoadedStudy, p: Participant, kind: str, page: int | None, detail: dict[str, Any]
) -> None:
    session.add(Event(participant_id=p.id, study_id=study.id, kind=kind, page=page, detail=detail))


# Built once: every request runs these, and building a statement costs more than running it.
_PARTICIPANT = select(Participant).where(Participant.code == bindparam("code"))
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


def visit(session: Session, studies: dict[str, LoadedStudy], code: str) -> tuple[Participant, LoadedStudy]:
    """The participant behind a private link, and their study (as they started it)."""
    p = participant_by_code(session, code)
    study = studies.get(p.study_id) if p else None
    if p is None or study is None:
        raise NotFound(
            "This participant link is not valid. Use the link you were given to start the study.",
            title="Link not recognised",
        )
    if p.study_hash != study.content_hash:
        raise Conflict(
            "This study was updated after you started. Please contact the researcher.", title="The study has changed"
        )
    return p, study


def count_participants(session: Session, study_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Participant).where(Participant.study_id == study_id)) or 0
