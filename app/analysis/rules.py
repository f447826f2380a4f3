"""What analysis and export share, without pandas: a study's trial fields, the study's exclusion
rules per participant, the answers of participant-level steps as flat columns, and pseudonyms.

The fields and columns come from the step types and tasks (app/steps/): a field a step type or
task declares is exported, in the codebook and in the analysis frame without a change here.
"""

from __future__ import annotations

import hashlib
import hmac
import statistics
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from app.models import Response
from app.steps import STEP_TYPES, step_type
from app.steps import trial_fields as _trial_fields
from app.steps.base import Recorded
from app.studies.loader import LoadedStudy


def pseudonym(secret: str, study_id: str, external: str | None, participant_id: int) -> str:
    """A keyed hash: stable for a person within a study, meaningless outside it."""
    raw = external or f"participant-{participant_id}"
    return hmac.new(secret.encode(), f"{study_id}:{raw}".encode(), hashlib.sha256).hexdigest()[:16]


def trial_fields(study: LoadedStudy) -> list[Recorded]:
    """The fields of the study's trial rows: those every trial records, then the own fields of
    each task the study's blocks ask (in the order the blocks first ask them). Each field that
    holds a class id has the species' name beside it, so nobody reads answers as numbers."""
    out: list[Recorded] = []
    for f in _trial_fields(list(dict.fromkeys(b.task for b in study.spec.blocks))):
        out.append(f)
        if f.key in SPECIES_OF:
            out.append(_species(study, f))
    return out


SPECIES_OF = {  # class-id fields: the column beside each, and what it says
    "true_class": ("true_species", "the species shown (the name of true_class)"),
    "model_prediction": ("model_prediction_species", "the species the model predicted"),
    "answer": ("response_species", "the species answered, when the response is a class id (classify, simulate)"),
    "first_answer": ("first_response_species", "two-stage blocks: the species first answered, if a class id"),
}


def _species(study: LoadedStudy, f: Recorded) -> Recorded:
    """`<column>_species`: the class's name, looked up in the database (a CASE over the run's
    classes), so a million-row export converts nothing in Python."""
    names = {c.id: c.name for c in study.manifest.classes}
    column = f.sql if f.sql is not None else getattr(Response, f.key)
    text = f.type == "string"  # answers are stored as text, class ids as integers
    lookup = {(str(k) if text else k): v for k, v in names.items()}
    name, meaning = SPECIES_OF[f.key]
    return Recorded(
        name,
        "string",
        meaning,
        "the run's species names (classes.csv)",
        sql=case(lookup, value=column, else_=None),
    )


def step_columns(study: LoadedStudy) -> list[Recorded]:
    """participants.csv's columns from participant-level steps (questionnaires, checks, consent)."""
    return [c for step in study.spec.steps for c in step_type(step).columns(step)]


def answers(session: Session, study: LoadedStudy) -> dict[int, dict[str, Any]]:
    """The answers of participant-level steps per participant, as flat columns ("step.field")."""
    kinds = {step.type for step in study.spec.steps if step_type(step).columns(step)}
    out: dict[int, dict[str, Any]] = {}
    rows = session.execute(
        select(
            Response.participant_id,
            Response.step_id,
            Response.step_type,
            Response.values,
            Response.answer,
            Response.correct,
        ).where(Response.study_id == study.id, Response.step_type.in_(sorted(kinds)))
    ).all()
    for row in rows:
        out.setdefault(row.participant_id, {}).update(STEP_TYPES[row.step_type].flatten(row.step_id, row))
    return out


def flags_for(
    study: LoadedStudy,
    status: str | None,
    rts: list[float],
    attention_failed: bool,
    server_rts: list[float] | None = None,
) -> dict[str, bool]:
    """The study's exclusion rules for one participant: one flag per rule, and `excluded` if any applies.

    Too fast reads both clocks: the client's (`rts`, empty without JavaScript or when its times
    were impossible) and the server's (`server_rts`, page served -> answer received, which also
    includes loading and the network, so it is never shorter than the real time): either median
    below the minimum flags the participant, so forged or missing client times do not hide it."""
    rules = study.spec.exclusions
    least = rules.min_median_rt_ms
    medians = [statistics.median(r) for r in (rts, server_rts or []) if r]
    flags = {
        "excluded_attention": bool(rules.failed_attention and attention_failed),
        "excluded_too_fast": bool(least is not None and any(m < least for m in medians)),
        "excluded_screened_out": bool(rules.screened_out and status == "screened_out"),
    }
    return {"excluded": any(flags.values()), **flags}


def attention_failures(extra: dict[int, dict[str, Any]]) -> set[int]:
    """Participants who failed a check: a step type's `passed` column that is false."""
    passed = tuple(f".{kind.passed}" for kind in STEP_TYPES.values() if kind.passed)
    return {pid for pid, answers in extra.items() if any(k.endswith(passed) and v is False for k, v in answers.items())}
