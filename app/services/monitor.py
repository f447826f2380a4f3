"""Live monitoring of a study: who is where, per condition, without tempting anyone to peek.

Accuracy is computed only when asked for (the dashboard hides it behind a click). Only real
participants count: pilots (researcher previews) and bots are left out, and said how many.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.errors import NotFound, Refused
from app.models import REAL, Event, Participant, Response, aware, utcnow
from app.steps.registry import trial_row_types
from app.studies.loader import LoadedStudy

STATES = ("started", "active", "completed", "abandoned", "screened_out", "declined")


def state_of(p: Participant, timeout: dt.timedelta, now: dt.datetime) -> str:
    if p.status in ("started", "active") and now - aware(p.last_seen_at) > timeout:
        return "abandoned"
    return p.status


@dataclass
class Monitor:
    by_condition: dict[str, Counter[str]]  # condition ("unassigned" before assignment) -> state -> count
    median_step_seconds: dict[str, float]
    dropout_by_step: dict[str, int]  # the step abandoned participants stopped at
    asset_failures: int
    failures_by_what: list[tuple[str, int]] = field(default_factory=list)
    total: int = 0
    not_counted: dict[str, int] = field(default_factory=dict)  # pilot and bot participations, by origin


def monitor(session: Session, study: LoadedStudy, now: dt.datetime | None = None) -> Monitor:
    now = now or utcnow()
    timeout = dt.timedelta(minutes=study.spec.assignment.timeout_minutes)
    people = list(
        session.scalars(select(Participant).where(Participant.study_id == study.id, Participant.origin == REAL))
    )
    by_condition: dict[str, Counter[str]] = defaultdict(Counter)
    state = {}
    for p in people:
        state[p.id] = state_of(p, timeout, now)
        by_condition[p.condition or "unassigned"][state[p.id]] += 1
    rows = session.execute(
        select(Response.participant_id, Response.step_id, Response.received_at)
        .join(Participant, Participant.id == Response.participant_id)
        .where(Response.study_id == study.id, Participant.origin == REAL)
        .order_by(Response.participant_id, Response.received_at)
    ).all()
    durations: dict[str, list[float]] = defaultdict(list)
    last_step: dict[int, str] = {}
    previous: dict[int, dt.datetime] = {p.id: p.created_at for p in people}
    for pid, step, at in rows:
        start = previous.get(pid)
        if start is not None:
            durations[step].append((aware(at) - aware(start)).total_seconds())
        previous[pid] = at
        last_step[pid] = step
    order = [s.id for s in study.spec.steps]
    dropout: Counter[str] = Counter()
    for p in people:
        if state[p.id] == "abandoned":
            done = last_step.get(p.id)
            nxt = order[order.index(done) + 1] if done in order and order.index(done) + 1 < len(order) else order[0]
            dropout[nxt] += 1
    what: Counter[str] = Counter(
        (detail or {}).get("what", "?")
        for detail in session.scalars(
            select(Event.detail).where(Event.study_id == study.id, Event.kind == "asset_error")
        )
    )
    others = session.execute(
        select(Participant.origin, func.count())
        .where(Participant.study_id == study.id, Participant.origin != REAL)
        .group_by(Participant.origin)
        .order_by(Participant.origin)
    ).all()
    return Monitor(
        not_counted={o: int(n) for o, n in others},
        by_condition=dict(by_condition),
        median_step_seconds={s: round(statistics.median(v), 1) for s in order if (v := durations.get(s))},
        dropout_by_step={s: dropout[s] for s in order if dropout[s]},
        asset_failures=sum(what.values()),
        failures_by_what=what.most_common(10),
        total=len(people),
    )


def accuracy_so_far(session: Session, study: LoadedStudy) -> dict[str, dict[str, Any]]:
    """Share of correct trial answers per condition (real participants only)."""
    rows = session.execute(
        select(Response.condition, func.count(), func.sum(case((Response.correct.is_(True), 1), else_=0)))
        .join(Participant, Participant.id == Response.participant_id)
        .where(
            Response.study_id == study.id,
            Response.step_type.in_(trial_row_types()),
            Response.complete.is_(True),
            Participant.origin == REAL,
        )
        .group_by(Response.condition)
    ).all()
    return {
        c or "unassigned": {"n": int(n), "correct": int(k or 0), "accuracy": (k or 0) / n if n else None}
        for c, n, k in rows
    }


PER_PAGE = 50


@dataclass
class People:
    """One page of the participant list, newest first, filtered by state and condition."""

    rows: list[tuple[Participant, str]]  # the participant and their state (abandoned: computed)
    total: int  # matching the filters
    page: int  # 1-based
    pages: int
    status: str | None
    condition: str | None


def _in_state(state: str, cutoff: dt.datetime) -> ColumnElement[bool]:
    """Participants in a state, as SQL: started and active people idle past the timeout are abandoned."""
    live = Participant.status.in_(("started", "active"))
    if state == "abandoned":
        return live & (Participant.last_seen_at < cutoff)
    if state in ("started", "active"):
        return (Participant.status == state) & (Participant.last_seen_at >= cutoff)
    return Participant.status == state


def people(
    session: Session,
    study: LoadedStudy,
    status: str | None = None,
    condition: str | None = None,
    page: int = 1,
    now: dt.datetime | None = None,
) -> People:
    """The study's participants, pilots included (they are marked on the page). Unknown filters
    are refused; a page past the last shows the last."""
    if status is not None and status not in STATES:
        raise Refused(
            f"there is no participant state {status!r}; use one of {', '.join(STATES)}", title="No such state"
        )
    conditions = {c.id for c in study.spec.conditions} | {"unassigned"}
    if condition is not None and condition not in conditions:
        raise Refused(f"the study has no condition {condition!r}", title="No such condition")
    now = now or utcnow()
    timeout = dt.timedelta(minutes=study.spec.assignment.timeout_minutes)
    where = [Participant.study_id == study.id]
    if status is not None:
        where.append(_in_state(status, now - timeout))
    if condition == "unassigned":
        where.append(Participant.condition.is_(None))
    elif condition is not None:
        where.append(Participant.condition == condition)
    total = session.scalar(select(func.count()).select_from(Participant).where(*where)) or 0
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(1, page), pages)
    found = session.scalars(
        select(Participant).where(*where).order_by(Participant.id.desc()).offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    )
    return People([(p, state_of(p, timeout, now)) for p in found], total, page, pages, status, condition)


def participant_detail(session: Session, study: LoadedStudy, participant_id: int) -> tuple[Participant, list[Response]]:
    """One participant of the study and every answer they gave, in page order."""
    p = session.get(Participant, participant_id)
    if p is None or p.study_id != study.id:
        raise NotFound("There is no such participant in this study.", title="No such participant")
    rows = session.scalars(select(Response).where(Response.participant_id == p.id).order_by(Response.page))
    return p, list(rows)
