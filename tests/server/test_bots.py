"""Bots take every shipped study to completion over real HTTP; the data recover known truths."""

import pytest
from sqlalchemy import select

from app.bots import run_bots
from app.main import create_app
from app.models import Participant, Response
from app.settings import Settings
from app.studies.loader import LoadedStudy
from tests.server.conftest import SHIPPED_IDS


def rows(settings: Settings, studies: dict[str, LoadedStudy]) -> tuple[list[Participant], list[Response]]:
    app = create_app(settings, studies)
    with app.state.sessions() as s:
        out = list(s.scalars(select(Participant))), list(s.scalars(select(Response)))
    app.state.engine.dispose()
    return out


@pytest.mark.parametrize("study_id", SHIPPED_IDS)
def test_oracle_bots_are_always_right_in_every_condition(
    settings: Settings, studies: dict[str, LoadedStudy], study_id: str
) -> None:
    study = studies[study_id]
    n = len(study.spec.conditions)
    results = run_bots(study, n, "oracle", None, 1, settings, studies)
    assert [r.status for r in results] == ["completed"] * n
    participants, responses = rows(settings, studies)
    assert {p.condition for p in participants} == {c.id for c in study.spec.conditions}
    assert all(p.status == "completed" and p.completed_at is not None for p in participants)
    trials = [r for r in responses if r.step_type == "trials"]
    per_participant = sum(b.items.correct + b.items.incorrect for b in study.spec.blocks)
    assert len(trials) == n * per_participant
    assert all(r.correct for r in trials)
    assert all(r.study_hash == study.content_hash for r in responses)
    assert all(r.rt_ms is not None and r.rt_ms > 0 for r in trials)


def test_always_agree_scores_the_models_accuracy_on_the_items_served(
    settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    study = studies["seagull-agreement"]
    run_bots(study, 4, "always-agree", None, 2, settings, studies)
    _, responses = rows(settings, studies)
    verify = [r for r in responses if r.task == "verify"]
    assert verify and all(r.answer == "yes" for r in verify)
    for pid in {r.participant_id for r in verify}:
        mine = [r for r in verify if r.participant_id == pid]
        assert sum(r.correct for r in mine) == sum(r.model_correct for r in mine)
    test_block = [r for r in verify if r.phase == "test"]
    assert sum(r.model_correct for r in test_block) * 2 == len(test_block)  # half the test items are errors


def test_random_bots_complete_too(settings: Settings, studies: dict[str, LoadedStudy]) -> None:
    results = run_bots(studies["seagull-learning"], 3, "random", None, 3, settings, studies)
    assert all(r.status in ("completed",) for r in results), results
