"""Deleting a study's data: the pilots' and bots' (after checking a study), or everything (a reset
before the real collection starts). Each deletion is one audit-log entry in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.models import REAL, Assignment, Event, Participant, Researcher, Response
from app.services import audit

What = Literal["non-real", "all"]
ACTIONS: dict[str, str] = {"non-real": "delete_non_real", "all": "reset_study"}


@dataclass(frozen=True)
class Counts:
    participants: int
    answers: int


def _who(study_id: str, what: What):  # type: ignore[no-untyped-def]
    q = select(Participant.id).where(Participant.study_id == study_id)
    return q.where(Participant.origin != REAL) if what == "non-real" else q


def counts(session: Session, study_id: str, what: What) -> Counts:
    """What `delete` would remove: shown on the confirmation page."""
    ids = _who(study_id, what)
    people = session.scalar(select(func.count()).select_from(ids.subquery())) or 0
    answers = session.scalar(select(func.count()).where(Response.participant_id.in_(ids))) or 0
    return Counts(int(people), int(answers))


def delete_data(session: Session, study_id: str, what: What, by: Researcher) -> Counts:
    """Delete the participants `what` names and everything they left (answers, events, assignment
    log entries), and record it. The study file and its snapshots stay."""
    done = counts(session, study_id, what)
    ids = _who(study_id, what)
    for table in (Response, Event, Assignment):
        session.execute(delete(table).where(table.participant_id.in_(ids)).execution_options(synchronize_session=False))
    session.execute(
        delete(Participant)
        .where(Participant.id.in_(ids.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    audit.record(session, by, ACTIONS[what], study_id, participants=done.participants, answers=done.answers)
    return done
