"""Who may start a study now: the researcher's switch (open, paused, closed), a cap on
participants and per-condition quotas.

A participant counts towards a limit once they have completed, or while they are taking the
study (seen within the study's assignment timeout): someone who leaves frees their place, as
in assignment. Only real participants count (not pilots, not bots), and only they are turned
away. Limits are checked when a new participant arrives (the study link, and again under a
lock as they consent); anyone who has started may finish, and assignment picks among the
conditions still below their quota (participation.assign). The study file's `recruitment`
section gives the limits until a researcher sets them on the dashboard; from then on the
dashboard's values apply. Every change is in the audit log. No HTTP here; nothing commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.errors import NotFound, NotTaking, Refused
from app.models import REAL, Participant, Researcher, Study, utcnow
from app.services import audit
from app.studies.loader import LoadedStudy

STATES = ("open", "paused", "closed")
ACTIONS = {"open": "study_opened", "paused": "study_paused", "closed": "study_closed"}


@dataclass(frozen=True)
class Limits:
    cap: int | None
    quotas: dict[str, int]
    from_file: bool  # True until a researcher sets limits on the dashboard


@dataclass
class Places:
    """How full the study is."""

    state: str
    limits: Limits
    conditions: list[str]
    by_condition: dict[str, int] = field(default_factory=dict)  # assigned, counted
    waiting: int = 0  # taking the study, not yet assigned a condition

    @property
    def taken(self) -> int:
        return sum(self.by_condition.values()) + self.waiting

    @property
    def left(self) -> int | None:
        """Places left for new participants (None: no limit). Quotas limit arrivals only when
        every condition has one (otherwise the conditions without one take the newcomers)."""
        bounds = []
        if self.limits.cap is not None:
            bounds.append(self.limits.cap - self.taken)
        q = self.limits.quotas
        if self.conditions and all(c in q for c in self.conditions):
            bounds.append(sum(max(0, q[c] - self.by_condition.get(c, 0)) for c in self.conditions) - self.waiting)
        return max(0, min(bounds)) if bounds else None

    @property
    def full(self) -> bool:
        return self.left == 0

    @property
    def status(self) -> str:
        """What the dashboard calls the study: open, paused, closed, or full (open but no place)."""
        return "full" if self.state == "open" and self.full else self.state


def _row(session: Session, study: LoadedStudy) -> Study:
    row = session.get(Study, study.id)
    if row is None:  # studies are synced at start-up: this is a study the server does not know
        raise NotFound("There is no study with this id.", title="No such study")
    return row


def limits(row: Study, study: LoadedStudy) -> Limits:
    if row.quotas is None and row.cap is None:
        r = study.spec.recruitment
        return Limits(r.cap, dict(r.quotas), True)
    return Limits(row.cap, {str(k): int(v) for k, v in (row.quotas or {}).items()}, False)


def quotas(session: Session, study: LoadedStudy) -> dict[str, int]:
    return limits(_row(session, study), study).quotas


def places(session: Session, study: LoadedStudy, now: dt.datetime | None = None) -> Places:
    row = _row(session, study)
    cutoff = (now or utcnow()) - dt.timedelta(minutes=study.spec.assignment.timeout_minutes)
    counted = session.execute(
        select(Participant.condition, func.count())
        .where(
            Participant.study_id == study.id,
            Participant.origin == REAL,
            or_(
                Participant.status == "completed",
                Participant.status.in_(("started", "active")) & (Participant.last_seen_at >= cutoff),
            ),
        )
        .group_by(Participant.condition)
    ).all()
    out = Places(row.state, limits(row, study), [c.id for c in study.spec.conditions])
    for condition, n in counted:
        if condition is None:
            out.waiting = int(n)
        else:
            out.by_condition[condition] = int(n)
    return out


def admit(session: Session, study: LoadedStudy, now: dt.datetime | None = None, lock: bool = True) -> None:
    """Raise NotTaking unless a new participant may start now.

    With limits and `lock`, the study's lock row is taken first (as assignment does), so
    arrivals queue behind each other and each sees the ones before it: a cap is not overshot by
    a crowd. Without `lock` it only reads (the study link, before anything is stored)."""
    row = _row(session, study)
    if row.state != "open":
        raise NotTaking(row.state)
    lim = limits(row, study)
    if lim.cap is None and not lim.quotas:
        return
    if lock:
        session.execute(update(Study).where(Study.id == study.id).values(assign_lock=Study.assign_lock + 1))
    if places(session, study, now).full:
        raise NotTaking("full")


def set_state(session: Session, study: LoadedStudy, who: Researcher, state: str) -> bool:
    """Open, pause or close the study; returns whether anything changed (logged if so)."""
    if state not in STATES:
        raise Refused(f"a study is {', '.join(STATES)}; {state!r} is none of these", title="Unknown state")
    row = _row(session, study)
    if row.state == state:
        return False
    before, row.state, row.state_changed_at = row.state, state, utcnow()
    audit.record(session, who, ACTIONS[state], study.id, before=before, after=state)
    return True


def parse_limits(study: LoadedStudy, form: dict[str, str]) -> tuple[int | None, dict[str, int]]:
    """The dashboard's limits form: `cap` and `quota.<condition>`, each a whole number of at
    least 1, or empty for no limit. Refused (nothing changes) otherwise."""

    def number(name: str, label: str) -> int | None:
        raw = form.get(name, "").strip()
        if not raw:
            return None
        if not raw.isdigit() or int(raw) < 1:
            raise Refused(f"{label} must be a whole number of at least 1, or empty for no limit", title="Not a limit")
        return int(raw)

    cap = number("cap", "The participant cap")
    quotas = {}
    for c in study.spec.conditions:
        n = number(f"quota.{c.id}", f"The quota of {c.id}")
        if n is not None:
            quotas[c.id] = n
    named = {c.id for c in study.spec.conditions}
    stray = sorted(k.removeprefix("quota.") for k in form if k.startswith("quota.") and k[6:] not in named)
    if stray:
        raise Refused(f"the study has no condition {stray[0]!r}", title="No such condition")
    return cap, quotas


def set_limits(session: Session, study: LoadedStudy, who: Researcher, cap: int | None, quotas: dict[str, int]) -> bool:
    """Store the dashboard's limits (they replace the study file's from now on); logged."""
    row = _row(session, study)
    before = limits(row, study)
    if not before.from_file and before.cap == cap and before.quotas == quotas:
        return False
    row.cap, row.quotas = cap, dict(quotas)
    detail: dict[str, Any] = {
        "before": {"cap": before.cap, "quotas": before.quotas},
        "after": {"cap": cap, "quotas": quotas},
    }
    audit.record(session, who, "limits_changed", study.id, **detail)
    return True
