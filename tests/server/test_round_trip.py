"""The one slow round trip: a run built by the real pipeline (a trained model, real explanations)
serves every shipped study. The rest of the server's tests use the factory's run
(tests/factory.py); this one keeps the two honest: whatever the pipeline writes, the server
loads, serves in every condition without leaking an answer, and scores right."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.migrate import upgrade
from app.models import Response
from app.studies.loader import load_all
from tests.server.conftest import REPO, SECRET, SHIPPED_IDS, server_settings
from tests.server.test_leaks import crawl_every_condition

pytestmark = pytest.mark.slow


def test_a_pipeline_run_serves_every_shipped_study(pipeline_assets_dir: Path, tmp_path: Path) -> None:
    studies = load_all(REPO / "studies", pipeline_assets_dir, SECRET)
    assert sorted(studies) == SHIPPED_IDS
    url = f"sqlite:///{tmp_path / 'round-trip.db'}"
    upgrade(url)
    app = create_app(server_settings(tmp_path, url, pipeline_assets_dir), studies)
    try:
        with TestClient(app, follow_redirects=False) as client:
            for study in studies.values():
                crawl_every_condition(client, study)
        with app.state.sessions() as s:
            trials = list(s.scalars(select(Response).where(Response.step_type == "trials")))
    finally:
        app.state.engine.dispose()
    per_participant = {sid: sum(len(st.items[b.id][0]) for b in st.spec.blocks) for sid, st in studies.items()}
    assert len(trials) == sum(n * len(studies[sid].spec.conditions) for sid, n in per_participant.items())
    assert all(r.correct for r in trials)
