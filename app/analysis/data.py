"""The study's data as tables: one row per answered trial, one row per participant.

Exclusion rules come from the study file and are *flagged* (never applied to the raw data);
the analysis applies them and says how many participants each rule removed. Pilot
participants (researcher previews) are left out unless asked for.
"""

from __future__ import annotations

import statistics
from typing import Any

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.analysis.rules import attention_failures, flags_for, trial_fields
from app.models import REAL, Participant, Response
from app.steps.registry import trial_row_types
from app.studies.loader import LoadedStudy


def participants_frame(session: Session, study: LoadedStudy, all_origins: bool = False) -> pd.DataFrame:
    q = select(Participant).where(Participant.study_id == study.id)
    if not all_origins:
        q = q.where(Participant.origin == REAL)
    rows = []
    for p in session.scalars(q.order_by(Participant.id)):
        rows.append(
            {
                "participant_id": p.id,
                "condition": p.condition,
                "status": p.status,
                "item_set": p.item_set,
                "external_pid": p.external_pid,
                "external_study": p.external_study,
                "external_session": p.external_session,
                "origin": p.origin,
                "study_hash": p.study_hash,
                "started_at": p.created_at,
                "assigned_at": p.assigned_at,
                "completed_at": p.completed_at,
                "end_reason": p.end_reason,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "participant_id",
            "condition",
            "status",
            "item_set",
            "external_pid",
            "external_study",
            "external_session",
            "origin",
            "study_hash",
            "started_at",
            "assigned_at",
            "completed_at",
            "end_reason",
        ],
    )


def trials_frame(session: Session, study: LoadedStudy, all_origins: bool = False) -> pd.DataFrame:
    """One row per answered trial: participant_id, condition, every trial field (app/steps/), study_hash."""
    fields = trial_fields(study)
    q = (
        select(Response.participant_id, Response.condition, *(f.expression() for f in fields), Response.study_hash)
        .join(Participant, Participant.id == Response.participant_id)
        .where(Response.study_id == study.id, Response.step_type.in_(trial_row_types()), Response.complete.is_(True))
    )
    if not all_origins:
        q = q.where(Participant.origin == REAL)
    columns = ["participant_id", "condition", *(f.key for f in fields), "study_hash"]
    df = pd.DataFrame(session.execute(q.order_by(Response.participant_id, Response.page)).all(), columns=columns)
    for f in fields:
        if f.type == "boolean":
            df[f.key] = df[f.key].astype("boolean")
    return df


def exclusion_flags(
    study: LoadedStudy, participants: pd.DataFrame, trials: pd.DataFrame, extra: dict[int, dict[str, Any]]
) -> pd.DataFrame:
    """One row per participant: a column per rule, `excluded`, and the median response time."""
    failed = attention_failures(extra)

    def per_participant(column: str) -> dict[int, list[float]]:
        if not len(trials):
            return {}
        return trials.dropna(subset=[column]).groupby("participant_id")[column].apply(list).to_dict()

    rts, srts = per_participant("rt_ms"), per_participant("server_rt_ms")
    status = participants.set_index("participant_id")["status"].to_dict()
    rows = {
        pid: flags_for(study, status.get(pid), rts.get(pid, []), pid in failed, srts.get(pid, []))
        for pid in participants["participant_id"]
    }
    flags = pd.DataFrame.from_dict(
        rows, orient="index", columns=["excluded", "excluded_attention", "excluded_too_fast", "excluded_screened_out"]
    )
    flags.index.name = "participant_id"
    flags["median_rt_ms"] = [statistics.median(rts[p]) if rts.get(p) else None for p in flags.index]
    flags["median_server_rt_ms"] = [statistics.median(srts[p]) if srts.get(p) else None for p in flags.index]
    return flags


def non_real_count(session: Session, study: LoadedStudy) -> int:
    q = select(func.count()).where(Participant.study_id == study.id, Participant.origin != REAL)
    return int(session.scalar(q) or 0)


def data_version(session: Session, study: LoadedStudy) -> tuple[Any, ...]:
    """Changes whenever anything an analysis reads changes: an answer stored or completed, a
    participant arriving or changing status. Two aggregate queries, no rows read."""
    answers = session.execute(
        select(
            func.count(),
            func.max(Response.id),
            func.sum(case((Response.complete.is_(True), 1), else_=0)),
        ).where(Response.study_id == study.id)
    ).one()
    people = session.execute(
        select(Participant.status, func.count(), func.max(Participant.id))
        .where(Participant.study_id == study.id)
        .group_by(Participant.status)
        .order_by(Participant.status)
    ).all()
    return (study.content_hash, *tuple(answers), *(tuple(r) for r in people))
