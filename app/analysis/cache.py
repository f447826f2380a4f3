"""The dashboard's analyses, kept per study and recomputed in the background when the data change.

A report is a pure function of a study's data; `data_version` (two aggregate queries) says when
those have changed. A page asking for the report gets the cached one if it is current. If it is
not, the recomputation starts on a thread of its own and the page gets the previous report with a
note saying how old it is (and reloads itself until the new one is ready); only the very first
report of a study is waited for. Each server process keeps its own cache: nothing here needs
sharing, since any process can recompute from the database.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.analysis import report as R
from app.analysis.data import data_version
from app.analysis.inference import Engine
from app.studies.loader import LoadedStudy

WAIT_FIRST_S = 120.0  # the first report of a study: wait for it rather than show nothing


@dataclass
class Cached:
    report: R.Report | None = None
    running: threading.Event | None = None  # set when the computation in flight ends
    error: str | None = None


class ReportCache:
    def __init__(self, sessions: Callable[[], Session], engine: Callable[[], Engine]) -> None:
        self.sessions = sessions
        self.engine = engine
        self.lock = threading.Lock()
        self.by_study: dict[str, Cached] = {}

    def get(self, study: LoadedStudy) -> tuple[R.Report | None, str | None]:
        """(report, note): the note says when the report is behind the data, or why there is none."""
        with self.sessions() as session:
            version = data_version(session, study)
        with self.lock:
            entry = self.by_study.setdefault(study.id, Cached())
            if entry.report is not None and entry.report.data_version == version:
                return entry.report, None
            if entry.running is None:
                entry.running = threading.Event()
                threading.Thread(target=self._compute, args=(study, entry), daemon=True).start()
            done = entry.running
        if entry.report is None:
            done.wait(WAIT_FIRST_S)
            with self.lock:
                if entry.report is None:
                    return None, entry.error or "the analysis is still being computed; reload in a moment"
                if entry.report.data_version == version or entry.running is None:
                    return entry.report, None
        r = entry.report
        age = dt.datetime.now(dt.UTC) - r.computed_at
        return r, (
            f"New answers have arrived since this analysis was computed ({r.computed_at:%H:%M:%S} UTC, "
            f"{int(age.total_seconds())} s ago); it is being recomputed and this page reloads itself when it is ready."
        )

    def _compute(self, study: LoadedStudy, entry: Cached) -> None:
        try:
            with self.sessions() as session:
                report = R.build(session, study, engine=self.engine())
            error = None
        except Exception as exc:  # shown to the researcher, never lost silently
            report, error = None, f"the analysis failed: {type(exc).__name__}: {exc}"
        with self.lock:
            if report is not None:
                entry.report = report
            entry.error = error
            done, entry.running = entry.running, None
        if done is not None:
            done.set()
