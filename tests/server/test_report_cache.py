"""The dashboard's analysis: computed once per state of the data, recomputed in the background,
and a page shown meanwhile says it is behind."""

from __future__ import annotations

import threading

import pytest

from app.analysis import cache
from app.analysis import report as R
from app.analysis.inference import Engine
from app.bots import run_bots
from app.main import create_app
from app.settings import Settings
from app.studies.loader import LoadedStudy

PY = Engine("python", "test")


def test_the_report_is_cached_by_data_version_and_recomputed_behind_the_page(
    settings: Settings, studies: dict[str, LoadedStudy], monkeypatch: pytest.MonkeyPatch
) -> None:
    study = studies["seagull-agreement"]
    run_bots(study, 1, "oracle", None, 1, settings, studies, as_bots=False)
    app = create_app(settings, studies)
    reports = cache.ReportCache(app.state.sessions, lambda: PY)
    builds: list[int] = []
    gate = threading.Event()
    gate.set()
    real = R.build

    def build(*args, **kwargs):  # type: ignore[no-untyped-def]
        builds.append(1)
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache.R, "build", build)
    try:
        first, note = reports.get(study)
        assert first is not None and note is None and len(builds) == 1
        again, note = reports.get(study)
        assert again is first and note is None and len(builds) == 1  # nothing changed: no work
        run_bots(study, 1, "random", None, 2, settings, studies, as_bots=False)  # new answers arrive
        gate.clear()  # the recomputation now waits, as a slow one would
        stale, note = reports.get(study)
        assert stale is first and note is not None and "being recomputed" in note
        assert len(builds) == 2
        gate.set()
        for _ in range(100):
            fresh, note = reports.get(study)
            if fresh is not first:
                break
            threading.Event().wait(0.1)
        assert fresh is not first and note is None and len(builds) == 2
        assert fresh.analysed_trials > first.analysed_trials or fresh.data_version != first.data_version
    finally:
        gate.set()
        app.state.engine.dispose()
