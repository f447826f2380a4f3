"""Exports: trials.csv, participants.csv, codebook (md and json), and the exact study file.

Columns are declared once in `TRIAL_COLUMNS` / `PARTICIPANT_COLUMNS` (plus one column per
questionnaire question, from the study file), and the codebook is generated from those
declarations — never written by hand. Rows stream from the database in batches and leave as
chunks of CSV text: exporting a million trials holds one participant's rows at a time, and only
booleans and times are converted (everything else the csv module writes as it comes).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis.rules import TRIAL_FIELDS, answers, attention_failures, flags_for, pseudonym
from app.models import Participant, Response, StudySnapshot
from app.studies.loader import LoadedStudy
from app.studies.schema import Likert, Multiple, Number, Questionnaire, Single, Text


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    meaning: str
    values: str = ""


TRIAL_COLUMNS = (
    Column("study_id", "string", "the study's id"),
    Column("study_hash", "string", "SHA-256 of the exact study file the participant took (see study.yaml)"),
    Column("participant", "string", "pseudonym of the participant (keyed hash; see the note on ids)"),
    Column("condition", "string", "the participant's condition", "the study's condition ids"),
    Column("phase", "string", "the block's phase, e.g. learning, practice, test"),
    Column("block", "string", "the trial block's step id"),
    Column("task", "string", "what the participant was asked", "classify, verify, simulate, counterfactual"),
    Column("trial_index", "integer", "0-based position of the trial in the participant's own order of the block"),
    Column("item_id", "string", "the image id in the data set (counterfactual: the question id)"),
    Column("true_class", "integer", "CUB class id of the species shown"),
    Column("model_prediction", "integer", "CUB class id the model predicted"),
    Column("model_confidence", "number", "the model's probability for its prediction", "0 to 1"),
    Column("model_correct", "boolean", "whether the model's prediction was right", "true, false"),
    Column(
        "explanation",
        "string",
        "what kind of explanation was shown with the trial",
        "none, heatmap, concepts, sag, examples",
    ),
    Column("asset_id", "string", "which explanation asset was shown (method:image:target); empty if none"),
    Column("response", "string", "the (final) answer: a class id, yes/no, or a/b"),
    Column("correct", "boolean", "whether the (final) answer was right for the task", "true, false"),
    Column("confidence", "integer", "how sure the participant was (blocks with confidence ratings)", "1 to 5"),
    Column("first_response", "string", "two-stage blocks: the answer before the model's advice"),
    Column("first_correct", "boolean", "two-stage blocks: whether the first answer was right", "true, false"),
    Column("switched", "boolean", "two-stage blocks: the final answer differs from the first", "true, false"),
    Column("rt_ms", "number", "response time: response_ms - onset_ms (client clock)"),
    Column("onset_ms", "number", "client performance.now() when the stimulus appeared (±1 frame)"),
    Column("response_ms", "number", "client performance.now() at the answer"),
    Column("first_received_at", "datetime", "two-stage blocks: server time of the first answer (UTC)"),
    Column("received_at", "datetime", "server time the (final) answer was stored (UTC)"),
    Column("excluded", "boolean", "any exclusion rule of the study applies to this participant", "true, false"),
    Column("excluded_attention", "boolean", "failed an attention check (rule: exclusions.failed_attention)"),
    Column("excluded_too_fast", "boolean", "median response time below exclusions.min_median_rt_ms"),
    Column("excluded_screened_out", "boolean", "screened out by a questionnaire or attention rule"),
)

PARTICIPANT_COLUMNS = (
    Column("participant", "string", "pseudonym (as in trials.csv)"),
    Column("condition", "string", "assigned condition; empty if the participant left before assignment"),
    Column("status", "string", "where the participant ended", "started, active, completed, screened_out, declined"),
    Column("item_set", "integer", "which of the blocks' item sets they saw (Latin square)"),
    Column("started_at", "datetime", "when they arrived (UTC)"),
    Column("assigned_at", "datetime", "when they were assigned a condition (UTC)"),
    Column("completed_at", "datetime", "when they finished (UTC)"),
    Column("end_reason", "string", "why they stopped early, if they did"),
    Column("trials", "integer", "trials answered"),
    Column("trials_correct", "integer", "trials answered correctly"),
    Column("accuracy", "number", "trials_correct / trials", "0 to 1"),
    Column("median_rt_ms", "number", "median response time over their trials"),
    Column("excluded", "boolean", "any exclusion rule applies", "true, false"),
    Column("excluded_attention", "boolean", "failed an attention check"),
    Column("excluded_too_fast", "boolean", "median response time below the study's minimum"),
    Column("excluded_screened_out", "boolean", "screened out"),
)
RAW_ID_COLUMNS = (
    Column("prolific_pid", "string", "raw PROLIFIC_PID (only with --raw-ids)"),
    Column("prolific_study_id", "string", "raw STUDY_ID (only with --raw-ids)"),
    Column("prolific_session_id", "string", "raw SESSION_ID (only with --raw-ids)"),
)


def questionnaire_columns(study: LoadedStudy) -> list[Column]:
    cols: list[Column] = []
    for step in study.spec.steps:
        if isinstance(step, Questionnaire):
            for q in step.questions:
                name = f"{step.id}.{q.id}"
                if isinstance(q, Likert):
                    cols.append(Column(name, "integer", q.text, f"1 ({q.low}) to {q.points} ({q.high})"))
                elif isinstance(q, Single):
                    cols.append(Column(name, "string", q.text, " | ".join(q.options)))
                elif isinstance(q, Multiple):
                    cols.append(Column(name, "string", q.text + " (choices joined by '; ')", " | ".join(q.options)))
                elif isinstance(q, Number):
                    cols.append(Column(name, "number", q.text, f"{q.min} to {q.max}"))
                elif isinstance(q, Text):
                    cols.append(Column(name, "string", q.text, f"free text, at most {q.max_length} characters"))
        elif step.type == "attention":
            cols.append(
                Column(f"{step.id}.answer", "string", f"attention check: {step.text}", " | ".join(step.options))
            )
            cols.append(Column(f"{step.id}.passed", "boolean", "chose the instructed option", "true, false"))
    return cols


BOOL = {True: "true", False: "false", None: ""}
CHUNK = 1 << 16  # characters of CSV per yielded chunk
FLAGS = ("excluded", "excluded_attention", "excluded_too_fast", "excluded_screened_out")


def _iso(v: Any) -> str:
    return "" if v is None else str(v.isoformat())


def _cell(v: Any) -> Any:
    return BOOL[v] if isinstance(v, bool) or v is None else v.isoformat() if hasattr(v, "isoformat") else v


class _Csv:
    """Rows in, chunks of CSV text out (streaming in large pieces, not a line at a time)."""

    def __init__(self) -> None:
        self.buf = io.StringIO()
        self.writer = csv.writer(self.buf, lineterminator="\n")

    def row(self, values: Any) -> None:
        self.writer.writerow(values)

    def take(self, force: bool = False) -> str | None:
        if not force and self.buf.tell() < CHUNK:
            return None
        out = self.buf.getvalue()
        self.buf.seek(0)
        self.buf.truncate()
        return out


Totals = dict[int, tuple[int, int, float | None]]  # participant -> (trials, correct, median response time)
# positions in the rows of _trial_groups: external id, status, then TRIAL_FIELDS
_CORRECT, _RT = (2 + TRIAL_FIELDS.index(f) for f in ("correct", "rt_ms"))


def _totals(rows: list[Any]) -> tuple[tuple[int, int, float | None], list[float]]:
    rts = [r[_RT] for r in rows if r[_RT] is not None]
    return (len(rows), sum(bool(r[_CORRECT]) for r in rows), statistics.median(rts) if rts else None), rts


def _trial_groups(
    session: Session, study: LoadedStudy, include_pilots: bool, batch: int = 5000
) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
    """Each participant's trial rows in turn (with the participant's id, external id and status),
    streamed from the database as plain tuples (Core, not the ORM: a million rows of these)."""
    q = (
        select(Participant.external_pid, Participant.status, *(getattr(Response, f) for f in TRIAL_FIELDS))
        .join(Participant, Participant.id == Response.participant_id)
        .where(Response.study_id == study.id, Response.step_type == "trials", Response.complete.is_(True))
        .order_by(Response.participant_id, Response.page)
    )
    if not include_pilots:
        q = q.where(Participant.is_pilot.is_(False))
    result = session.connection().execution_options(stream_results=True, yield_per=batch).execute(q)
    current: int | None = None
    rows: list[Any] = []
    who: tuple[Any, ...] = ()
    for row in result:
        if row[2] != current:
            if current is not None:
                yield who, rows
            current, rows, who = row[2], [], (row[2], row[0], row[1])
        rows.append(row)
    if current is not None:
        yield who, rows


def stream_trials(
    session: Session, study: LoadedStudy, secret: str, include_pilots: bool = False, totals: Totals | None = None
) -> Iterator[str]:
    """trials.csv in chunks; `totals`, if given, is filled for participants.csv on the way."""
    failed = attention_failures(answers(session, study))
    out = _Csv()
    out.row([c.name for c in TRIAL_COLUMNS])
    sid = study.id
    for (pid, external, status), rows in _trial_groups(session, study, include_pilots):
        name = pseudonym(secret, sid, external, pid)
        mine, rts = _totals(rows)
        flags = flags_for(study, status, rts, pid in failed)
        if totals is not None:
            totals[pid] = mine
        tail = [BOOL[flags[f]] for f in FLAGS]
        for (
            _ext,
            _status,
            _pid,
            condition,
            phase,
            step_id,
            task,
            trial_index,
            item_id,
            true_class,
            model_prediction,
            model_confidence,
            model_correct,
            explanation,
            asset_id,
            answer,
            correct,
            confidence,
            first_answer,
            first_correct,
            onset_ms,
            response_ms,
            rt_ms,
            first_received_at,
            received_at,
            study_hash,
        ) in rows:
            out.row(
                (
                    sid,
                    study_hash,
                    name,
                    condition,
                    phase,
                    step_id,
                    task,
                    trial_index,
                    item_id,
                    true_class,
                    model_prediction,
                    model_confidence,
                    BOOL[model_correct],
                    explanation,
                    asset_id,
                    answer,
                    BOOL[correct],
                    confidence,
                    first_answer,
                    BOOL[first_correct],
                    "" if first_answer is None else BOOL[first_answer != answer],
                    rt_ms,
                    onset_ms,
                    response_ms,
                    _iso(first_received_at),
                    _iso(received_at),
                    *tail,
                )
            )
        if (chunk := out.take()) is not None:
            yield chunk
    yield out.take(force=True) or ""


def trial_totals(session: Session, study: LoadedStudy, include_pilots: bool = False) -> Totals:
    return {pid: _totals(rows)[0] for (pid, _, _), rows in _trial_groups(session, study, include_pilots)}


def stream_participants(
    session: Session,
    study: LoadedStudy,
    secret: str,
    raw_ids: bool = False,
    include_pilots: bool = False,
    totals: Totals | None = None,
) -> Iterator[str]:
    """participants.csv in chunks (`totals` from a trials export saves a second pass over the trials)."""
    extra = answers(session, study)
    failed = attention_failures(extra)
    extra_cols = questionnaire_columns(study)
    if totals is None:
        totals = trial_totals(session, study, include_pilots)
    cols = [*PARTICIPANT_COLUMNS, *extra_cols, *(RAW_ID_COLUMNS if raw_ids else ())]
    out = _Csv()
    out.row([c.name for c in cols])
    q = (
        select(
            Participant.id,
            Participant.external_pid,
            Participant.condition,
            Participant.status,
            Participant.item_set,
            Participant.created_at,
            Participant.assigned_at,
            Participant.completed_at,
            Participant.end_reason,
            Participant.external_study,
            Participant.external_session,
        )
        .where(Participant.study_id == study.id)
        .order_by(Participant.id)
    )
    if not include_pilots:
        q = q.where(Participant.is_pilot.is_(False))
    rows = session.connection().execution_options(stream_results=True, yield_per=5000).execute(q)
    for pid, external, condition, status, item_set, created, assigned, completed, reason, study_ref, sess_ref in rows:
        n, k, median = totals.get(pid, (0, 0, None))
        flags = flags_for(study, status, [] if median is None else [median], pid in failed)
        values = [
            pseudonym(secret, study.id, external, pid),
            condition,
            status,
            item_set,
            created,
            assigned,
            completed,
            reason,
            n,
            k,
            (k / n) if n else None,
            median,
            *(flags[f] for f in FLAGS),
        ]
        mine = extra.get(pid, {})
        values += [mine.get(c.name) for c in extra_cols]
        if raw_ids:
            values += [external, study_ref, sess_ref]
        out.row([_cell(v) for v in values])
        if (chunk := out.take()) is not None:
            yield chunk
    yield out.take(force=True) or ""


def codebook(study: LoadedStudy, raw_ids: bool) -> dict[str, Any]:
    ids_note = (
        "participant ids are raw Prolific ids (exported with --raw-ids)"
        if raw_ids
        else "`participant` is a pseudonym: HMAC-SHA256 of the study id and the Prolific id (or the internal "
        "id) keyed with the server's secret, first 16 hex digits; raw ids are not exported"
    )
    return {
        "study": study.id,
        "version": study.spec.version,
        "study_hash": study.content_hash,
        "ids": ids_note,
        "preregistration": study.spec.preregistration,
        "trials.csv": [c.__dict__ for c in TRIAL_COLUMNS],
        "participants.csv": [
            c.__dict__
            for c in (*PARTICIPANT_COLUMNS, *questionnaire_columns(study), *(RAW_ID_COLUMNS if raw_ids else ()))
        ],
        "analysis_formula_r": "glmer(correct ~ condition + (1 | participant) + (1 | item_id), family = binomial, "
        "data = subset(trials, !excluded & !(phase %in% c('learning', 'practice'))))",
    }


def codebook_markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# Codebook: {doc['study']} (version {doc['version']})",
        "",
        f"Study file hash: `{doc['study_hash']}` (the exact file is `study.yaml`).",
        "",
        f"Ids: {doc['ids']}.",
        "",
    ]
    if doc.get("preregistration"):
        lines += [f"Preregistration: {doc['preregistration']}", ""]
    for table in ("trials.csv", "participants.csv"):
        lines += [f"## {table}", "", "| column | type | meaning | values |", "|---|---|---|---|"]
        lines += [f"| `{c['name']}` | {c['type']} | {c['meaning']} | {c['values']} |" for c in doc[table]]
        lines.append("")
    lines += [
        "## Re-running the analysis in R",
        "",
        "```r",
        "library(lme4)",
        'trials <- read.csv("trials.csv")',
        f"model <- {doc['analysis_formula_r']}",
        "summary(model)",
        "```",
        "",
    ]
    return "\n".join(lines)


def export(
    session: Session, study: LoadedStudy, out: Path, secret: str, raw_ids: bool = False, include_pilots: bool = False
) -> list[Path]:
    """Write every export file into `out` (each atomically)."""
    from app.util import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    totals: Totals = {}
    written = [
        atomic_write(out / "trials.csv", stream_trials(session, study, secret, include_pilots, totals)),
        atomic_write(
            out / "participants.csv", stream_participants(session, study, secret, raw_ids, include_pilots, totals)
        ),
    ]
    doc = codebook(study, raw_ids)
    written.append(atomic_write(out / "codebook.json", [json.dumps(doc, indent=2, default=str)]))
    written.append(atomic_write(out / "codebook.md", [codebook_markdown(doc)]))
    written.append(atomic_write(out / "study.yaml", [study.source]))
    older = session.scalars(
        select(StudySnapshot).where(
            StudySnapshot.study_id == study.id, StudySnapshot.content_hash != study.content_hash
        )
    )
    for snap in older:
        written.append(atomic_write(out / f"study-{snap.content_hash[:12]}.yaml", [snap.source]))
    return written
