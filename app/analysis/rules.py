"""What analysis and export share, without pandas: the trial fields, the study's exclusion
rules per participant, questionnaire answers as flat columns, and pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
import statistics
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Response
from app.studies.loader import LoadedStudy


def pseudonym(secret: str, study_id: str, external: str | None, participant_id: int) -> str:
    """A keyed hash: stable for a person within a study, meaningless outside it."""
    raw = external or f"participant-{participant_id}"
    return hmac.new(secret.encode(), f"{study_id}:{raw}".encode(), hashlib.sha256).hexdigest()[:16]


TRIAL_FIELDS = (
    "participant_id",
    "condition",
    "phase",
    "step_id",
    "task",
    "trial_index",
    "item_id",
    "true_class",
    "model_prediction",
    "model_confidence",
    "model_correct",
    "explanation",
    "asset_id",
    "answer",
    "correct",
    "confidence",
    "first_answer",
    "first_correct",
    "onset_ms",
    "response_ms",
    "rt_ms",
    "first_received_at",
    "received_at",
    "study_hash",
)


def answers(session: Session, study: LoadedStudy) -> dict[int, dict[str, Any]]:
    """Questionnaire answers and attention checks per participant, as flat columns."""
    out: dict[int, dict[str, Any]] = {}
    rows = session.execute(
        select(
            Response.participant_id,
            Response.step_id,
            Response.step_type,
            Response.values,
            Response.answer,
            Response.correct,
        ).where(Response.study_id == study.id, Response.step_type.in_(("questionnaire", "attention")))
    ).all()
    for pid, step, kind, values, answer, correct in rows:
        mine = out.setdefault(pid, {})
        if kind == "questionnaire":
            for k, v in (values or {}).items():
                mine[f"{step}.{k}"] = "; ".join(v) if isinstance(v, list) else v
        else:
            mine[f"{step}.answer"] = answer
            mine[f"{step}.passed"] = bool(correct)
    return out


def flags_for(study: LoadedStudy, status: str | None, rts: list[float], attention_failed: bool) -> dict[str, bool]:
    """The study's exclusion rules for one participant: one flag per rule, and `excluded` if any applies."""
    rules = study.spec.exclusions
    median = statistics.median(rts) if rts else None
    flags = {
        "excluded_attention": bool(rules.failed_attention and attention_failed),
        "excluded_too_fast": bool(
            rules.min_median_rt_ms is not None and median is not None and median < rules.min_median_rt_ms
        ),
        "excluded_screened_out": bool(rules.screened_out and status == "screened_out"),
    }
    return {"excluded": any(flags.values()), **flags}


def attention_failures(extra: dict[int, dict[str, Any]]) -> set[int]:
    return {
        pid for pid, answers in extra.items() if any(k.endswith(".passed") and v is False for k, v in answers.items())
    }
