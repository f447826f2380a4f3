"""A new trial task is one class and one registration: this module adds one and runs it end to end.

`ConfidenceBand` asks how sure the model was of its answer (under 60 %, 60-80 %, over 80 %) and
records a field of its own, how many bands off the answer was. Registered, it is accepted in a
study file, served over HTTP (prompt, options, feedback), kept out of the page's answer key
(the leak crawler, an oracle, takes it in every condition), exported with its own column, in
the codebook and in the analysis frame, and bots take it over real HTTP. Nothing outside this
file knows it exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.analysis import report as R
from app.analysis.data import trials_frame
from app.bots import run_bots
from app.export.files import export
from app.main import create_app
from app.settings import Settings
from app.steps import register_task
from app.steps.base import Task, in_values
from app.steps.registry import unregister_task
from app.studies.items import Item
from app.studies.loader import LoadedStudy, load_study
from tests.server.conftest import SECRET
from tests.server.helpers import advance, current_index, page, post, start
from tests.server.test_leaks import crawl_every_condition

BANDS = (("low", "Under 60 % sure", 0.0), ("mid", "60 to 80 % sure", 0.6), ("high", "Over 80 % sure", 0.8))


class ConfidenceBand(Task):
    name = "confidence-band"
    summary = "how sure was the model of its answer?"
    prompt = "How sure was the model of its answer?"
    shows_prediction = True
    fields = (in_values("bands_off", "integer", "confidence-band: how many bands the answer was off", "0 to 2"),)

    def options(self, study: Any, step: Any) -> list[tuple[str, str]]:
        return [(value, label) for value, label, _ in BANDS]

    def key(self, item: Item) -> str:
        return next(value for value, _, low in reversed(BANDS) if item.confidence >= low)

    def record(self, item: Item, answer: str | None) -> dict[str, Any]:
        order = [value for value, _, _ in BANDS]
        return {} if answer is None else {"bands_off": abs(order.index(answer) - order.index(self.key(item)))}

    def feedback(self, item: Item, names: dict[int, str]) -> str:
        return f"The model was {round(item.confidence * 100)}% sure it was a {names[item.predicted_class]}."

    def follow(self, model_answer: str | None) -> str | None:
        return None  # the model's answer says nothing about how sure it was


STUDY = """
id: bands
version: 1
title: How sure is the computer?
consent: Please take part.
assets: demo
conditions:
  - {id: prediction, show_prediction: true}
  - {id: heatmap, explanation: heatmap, method: igospp, show_prediction: true}
steps:
  - type: consent
  - type: trials
    id: practice
    phase: practice
    task: confidence-band
    items: {correct: 2, incorrect: 1}
    feedback: true
  - type: trials
    id: test
    task: confidence-band
    items: {correct: 4, incorrect: 2}
  - type: completion
"""


@pytest.fixture
def bands(tmp_path: Path, assets_dir: Path) -> Iterator[dict[str, LoadedStudy]]:
    register_task(ConfidenceBand())
    try:
        path = tmp_path / "bands.yaml"
        path.write_text(STUDY)
        yield {"bands": load_study(path, assets_dir, SECRET)}
    finally:
        unregister_task("confidence-band")


def test_a_registered_task_is_served_scored_exported_and_analysed(
    tmp_path: Path, settings: Settings, bands: dict[str, LoadedStudy]
) -> None:
    study = bands["bands"]
    over_http = run_bots(study, 2, "oracle", None, 3, settings, bands, as_bots=False)  # a real server
    assert [(r.status, r.correct) for r in over_http] == [("completed", 9)] * 2
    app = create_app(settings, bands)
    try:
        with TestClient(app, follow_redirects=False) as client:
            crawl_every_condition(client, study)  # an oracle in each condition: no leak, every answer right
            code = start(client, "bands", pid="by-hand")
            advance(client, code, choice="agree")
            trial = page(client, code)
            assert trial.task == "confidence-band" and "How sure was the model of its answer?" in trial.html  # type: ignore[attr-defined]
            assert set(trial.labels.values()) == {label for _, label, _ in BANDS}
            r = post(client, code, current_index(trial), answer="low", onset_ms="100", response_ms="900")
            assert r.status_code == 303 and "/feedback/" in r.headers["location"]
            feedback = client.get(r.headers["location"]).text
            assert "% sure it was a" in feedback
        with app.state.sessions() as s:
            export(s, study, tmp_path / "out", SECRET)
            frame = trials_frame(s, study)
            report = R.text(R.build(s, study))
    finally:
        app.state.engine.dispose()
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    oracle = trials[trials["participant"] != trials["participant"].iloc[-1]]
    assert len(oracle) == 4 * 9 and oracle["correct"].all() and (oracle["bands_off"] == 0).all()
    mine = trials.iloc[-1]
    assert mine["task"] == "confidence-band" and mine["response"] == "low"
    assert mine["bands_off"] == {"low": 0, "mid": 1, "high": 2}[ConfidenceBand().key(_item(study, mine))]
    book = json.loads((tmp_path / "out" / "codebook.json").read_text())
    entries = {c["name"]: c for c in book["trials.csv"]}
    assert "how many bands" in entries["bands_off"]["meaning"] and "confidence-band" in entries["task"]["values"]
    assert "bands_off" in frame.columns and frame["bands_off"].notna().all()
    assert "Accuracy by condition" in report


def _item(study: LoadedStudy, row: Any) -> Item:
    return next(it for sets in study.items.values() for items in sets for it in items if it.key == str(row["item_id"]))


def test_an_unregistered_task_is_refused(tmp_path: Path, assets_dir: Path) -> None:
    from app.errors import StudyError

    path = tmp_path / "bands.yaml"
    path.write_text(STUDY)
    with pytest.raises(StudyError, match="unknown task 'confidence-band'"):
        load_study(path, assets_dir, SECRET)
