"""Exports: trials.csv, participants.csv, codebook (md and json), the exact study file, and the
snapshot of what was shown (the asset manifest, the model's hash).

`FILES` lists every export file once: `fieldmark export` writes them all, the dashboard serves
each. Columns come from app/export/columns.py. Rows stream from the database in batches and
leave as chunks of CSV text: exporting a million trials holds one participant's rows at a time,
each row is read in column order by one statement, and only booleans and times are converted
(everything else the csv module writes as it comes).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.analysis.rules import answers, attention_failures, flags_for, pseudonym, trial_fields
from app.export.columns import FLAGS, PROLIFIC_IDS, codebook, codebook_markdown, participant_columns, trial_columns
from app.models import REAL, Participant, Response, StudySnapshot, aware, utcnow
from app.services.monitor import state_of
from app.steps.registry import trial_row_types
from app.studies.loader import LoadedStudy
from app.util import atomic_write

BOOL = {True: "true", False: "false", None: ""}
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such text
# cells are written with a leading apostrophe, which the codebook says.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 1 << 16  # characters of CSV per yielded chunk
FLAG_NAMES = tuple(c.name for c in FLAGS)


def _iso(v: Any) -> str:
    """A stored time in ISO 8601 with its zone (UTC; SQLite hands times back without one)."""
    return "" if v is None else aware(v).isoformat()


def _cell(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return BOOL[v]
    if isinstance(v, dt.datetime):
        return _iso(v)
    return "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v


def _text_cell(e: ColumnElement[Any]) -> ColumnElement[Any]:
    """A text column neutralised in the database (no Python per cell on a million rows)."""
    return case((func.substr(e, 1, 1).in_(FORMULA_START), literal("'").concat(e)), else_=e)


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


# participant -> (trials, correct, median response time, median server-side response time)
Totals = dict[int, tuple[int, int, float | None, float | None]]
# the head of each row of _trial_groups, before the trial fields
_HEAD = (
    Participant.external_pid,
    Participant.status,
    Response.participant_id,
    Response.study_hash,
    Response.condition,
    Participant.origin,
)


def _totals(
    rows: list[Any], correct: int, rt: int, srt: int
) -> tuple[tuple[int, int, float | None, float | None], list[float], list[float]]:
    rts = [r[rt] for r in rows if r[rt] is not None]
    srts = [r[srt] for r in rows if r[srt] is not None]
    n, right = len(rows), sum(r[correct] == "true" for r in rows)
    return (n, right, statistics.median(rts) if rts else None, statistics.median(srts) if srts else None), rts, srts


class _Trials:
    """The study's trial rows, streamed per participant: the head, then the fields in column order."""

    def __init__(self, study: LoadedStudy) -> None:
        self.study = study
        self.fields = trial_fields(study)
        keys = [f.key for f in self.fields]
        self.correct, self.rt, self.srt = (len(_HEAD) + keys.index(k) for k in ("correct", "rt_ms", "server_rt_ms"))
        self.times = [k for k, f in enumerate(self.fields) if f.type == "datetime"]

    def columns(self) -> list[ColumnElement[Any]]:
        """The fields as the CSV cells, where SQL can say them: booleans as true/false/empty."""
        out = []
        for f in self.fields:
            e = f.expression()
            if f.type == "boolean":  # in the database: a million rows cost no Python for this
                e = case((e.is_(True), "true"), (e.is_(False), "false"), else_="").label(f.key)
            elif f.type == "string":
                e = _text_cell(e).label(f.key)
            out.append(e)
        return out

    def groups(
        self, session: Session, all_origins: bool, batch: int = 5000
    ) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
        """Each participant's rows in turn, with (participant id, external id, status); plain tuples
        from Core, not ORM objects: a million rows of these."""
        q = (
            select(*_HEAD, *self.columns())
            .join(Participant, Participant.id == Response.participant_id)
            .where(
                Response.study_id == self.study.id,
                Response.step_type.in_(trial_row_types()),
                Response.complete.is_(True),
            )
            .order_by(Response.participant_id, Response.page)
        )
        if not all_origins:
            q = q.where(Participant.origin == REAL)
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

    def cells(self, row: Any) -> list[Any]:
        """A row's trial fields as CSV cells (times in Python: each database stores its own way)."""
        cells = list(row[len(_HEAD) :])
        for k in self.times:
            cells[k] = _iso(cells[k])
        return cells


def stream_trials(
    session: Session, study: LoadedStudy, secret: str, all_origins: bool = False, totals: Totals | None = None
) -> Iterator[str]:
    """trials.csv in chunks; `totals`, if given, is filled for participants.csv on the way."""
    trials = _Trials(study)
    failed = attention_failures(answers(session, study))
    out = _Csv()
    out.row([c.name for c in trial_columns(study)])
    sid = study.id
    for (pid, external, status), rows in trials.groups(session, all_origins):
        name = pseudonym(secret, sid, external, pid)
        mine, rts, srts = _totals(rows, trials.correct, trials.rt, trials.srt)
        flags = flags_for(study, status, rts, pid in failed, srts)
        if totals is not None:
            totals[pid] = mine
        tail = [BOOL[flags[f]] for f in FLAG_NAMES]
        for row in rows:
            out.row((sid, row[3], name, row[4], row[5], *trials.cells(row), *tail))
        if (chunk := out.take()) is not None:
            yield chunk
    yield out.take(force=True) or ""


def trial_totals(session: Session, study: LoadedStudy, all_origins: bool = False) -> Totals:
    trials = _Trials(study)
    return {
        pid: _totals(rows, trials.correct, trials.rt, trials.srt)[0]
        for (pid, _, _), rows in trials.groups(session, all_origins)
    }


def stream_participants(
    session: Session,
    study: LoadedStudy,
    secret: str,
    raw_ids: bool = False,
    all_origins: bool = False,
    totals: Totals | None = None,
) -> Iterator[str]:
    """participants.csv in chunks (`totals` from a trials export saves a second pass over the trials)."""
    extra = answers(session, study)
    failed = attention_failures(extra)
    if totals is None:
        totals = trial_totals(session, study, all_origins)
    cols = participant_columns(study, raw_ids)
    read = [c for c in cols if c.sql is not None]
    at_status = [c.name for c in read].index("status")
    out = _Csv()
    out.row([c.name for c in cols])
    q = (
        select(Participant.id, Participant.external_pid, *(c.sql for c in read))
        .where(Participant.study_id == study.id)
        .order_by(Participant.id)
    )
    if not all_origins:
        q = q.where(Participant.origin == REAL)
    rows = session.connection().execution_options(stream_results=True, yield_per=5000).execute(q)
    for row in rows:
        pid, external = row[0], row[1]
        stored: tuple[Any, ...] = tuple(row[2:])
        n, correct, median, server_median = totals.get(pid, (0, 0, None, None))
        status: str = stored[at_status]
        computed = {
            "participant": pseudonym(secret, study.id, external, pid),
            "trials": n,
            "trials_correct": correct,
            "accuracy": (correct / n) if n else None,
            "median_rt_ms": median,
            "median_server_rt_ms": server_median,
            **flags_for(
                study,
                status,
                [] if median is None else [median],
                pid in failed,
                [server_median] if server_median else [],
            ),
            **extra.get(pid, {}),
        }
        from_table = iter(stored)
        out.row([_cell(next(from_table) if c.sql is not None else computed.get(c.name)) for c in cols])
        if (chunk := out.take()) is not None:
            yield chunk
    yield out.take(force=True) or ""


def given_code(study: LoadedStudy, status: str) -> str | None:
    """The Prolific code the study gives a participant who ended so (the pages show the same)."""
    codes = study.spec.prolific
    if codes is None:
        return None
    return {
        "completed": codes.completion_code,
        "screened_out": codes.screen_out_code,
        "declined": codes.no_consent_code,
    }.get(status)


def stream_prolific_ids(
    session: Session, study: LoadedStudy, secret: str, now: dt.datetime | None = None
) -> Iterator[str]:
    """prolific-ids.csv: every real participant who came with a Prolific id (never pilots or bots)."""
    now = now or utcnow()
    timeout = dt.timedelta(minutes=study.spec.assignment.timeout_minutes)
    out = _Csv()
    out.row([c.name for c in PROLIFIC_IDS])
    q = (
        select(Participant)
        .where(Participant.study_id == study.id, Participant.origin == REAL, Participant.external_pid.is_not(None))
        .order_by(Participant.id)
        .execution_options(yield_per=1000)
    )
    for p in session.scalars(q):
        status = state_of(p, timeout, now)
        cells = {
            "participant": pseudonym(secret, study.id, p.external_pid, p.id),
            "status": status,
            "completion_code": given_code(study, p.status),
            "prolific_pid": p.external_pid,
            "prolific_study_id": p.external_study,
            "prolific_session_id": p.external_session,
            "started_at": p.created_at,
            "completed_at": p.completed_at,
        }
        out.row([_cell(cells[c.name]) for c in PROLIFIC_IDS])
        if (chunk := out.take()) is not None:
            yield chunk
    yield out.take(force=True) or ""


@dataclass
class Export:
    """One export's inputs, and what one file leaves for the next."""

    session: Session
    study: LoadedStudy
    secret: str
    raw_ids: bool = False
    all_origins: bool = False
    totals: Totals | None = None  # filled by trials.csv when a whole export runs, for participants.csv


@dataclass(frozen=True)
class ExportFile:
    media_type: str
    chunks: Callable[[Export], Iterator[str]]


def _codebook_json(x: Export) -> Iterator[str]:
    yield json.dumps(codebook(x.study, x.raw_ids), indent=2, default=str)


def _codebook_md(x: Export) -> Iterator[str]:
    yield codebook_markdown(codebook(x.study, x.raw_ids))


def _study_file(x: Export) -> Iterator[str]:
    yield x.study.source


def snapshot(session: Session, study: LoadedStudy, all_origins: bool = False) -> dict[str, Any]:
    """What participants were shown, in one document: the study file's identity and the asset run's
    whole manifest (every image, prediction, explanation file and its parameters), with the hashes
    of the model, the data and the manifest itself; and how many participants saw which manifest
    (each participant's is in participants.csv), so a run rebuilt mid-study shows up."""
    m = study.manifest
    q = select(Participant.manifest_hash, func.count()).where(Participant.study_id == study.id)
    if not all_origins:
        q = q.where(Participant.origin == REAL)
    seen = {h or "not recorded": int(n) for h, n in session.execute(q.group_by(Participant.manifest_hash))}
    return {
        "study": {
            "id": study.id,
            "version": study.spec.version,
            "title": study.spec.title,
            "study_hash": study.content_hash,
            "file": "study.yaml",
        },
        "assets": {
            "run": study.spec.assets,
            "run_id": m.run_id,
            "manifest_sha256": study.manifest_hash,
            "model_hash": m.provenance.model_hash,
            "model_arch": m.provenance.model_arch,
            "data_hash": m.provenance.data_hash,
            "code_version": m.provenance.code_version,
            "created": m.provenance.created,
        },
        "participants_by_manifest": seen,
        "manifest": m.model_dump(mode="json"),
    }


def _snapshot(x: Export) -> Iterator[str]:
    yield json.dumps(snapshot(x.session, x.study, x.all_origins), indent=1)


def _classes(x: Export) -> Iterator[str]:
    """The run's classes: the species behind every class id of the other files."""
    out = _Csv()
    out.row(["class_id", "species"])
    for c in x.study.manifest.classes:
        out.row([c.id, c.name])
    yield out.take(force=True) or ""


# Every export file, in the order `fieldmark export` writes them (trials.csv before participants.csv).
FILES: dict[str, ExportFile] = {
    "trials.csv": ExportFile(
        "text/csv", lambda x: stream_trials(x.session, x.study, x.secret, x.all_origins, x.totals)
    ),
    "participants.csv": ExportFile(
        "text/csv",
        lambda x: stream_participants(x.session, x.study, x.secret, x.raw_ids, x.all_origins, x.totals),
    ),
    "classes.csv": ExportFile("text/csv", _classes),
    "codebook.json": ExportFile("application/json", _codebook_json),
    "codebook.md": ExportFile("text/markdown", _codebook_md),
    "study.yaml": ExportFile("application/yaml", _study_file),
    "snapshot.json": ExportFile("application/json", _snapshot),
}


def export(
    session: Session, study: LoadedStudy, out: Path, secret: str, raw_ids: bool = False, all_origins: bool = False
) -> list[Path]:
    """Write every export file into `out` (each atomically), and every earlier version of the study file."""
    out.mkdir(parents=True, exist_ok=True)
    x = Export(session, study, secret, raw_ids, all_origins, totals={})
    written = [atomic_write(out / name, f.chunks(x)) for name, f in FILES.items()]
    older = session.scalars(
        select(StudySnapshot).where(
            StudySnapshot.study_id == study.id, StudySnapshot.content_hash != study.content_hash
        )
    )
    for snap in older:
        written.append(atomic_write(out / f"study-{snap.content_hash[:12]}.yaml", [snap.source]))
    return written
