"""Step types and tasks declare what they record: whatever a participation stores is declared,
every declared field is exported (with values) and in the codebook, and docs/studies.md
documents every step type, parameter and task."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from app.analysis.data import trials_frame
from app.analysis.rules import step_columns, trial_fields
from app.bots import run_bots
from app.export.files import export
from app.main import create_app
from app.models import Response
from app.settings import Settings
from app.steps import STEP_TYPES, TASKS
from app.steps.registry import trial_row_types
from app.studies.loader import LoadedStudy, load_study
from tests.server.conftest import REPO, SECRET
from tests.server.helpers import advance, current_index, page, post, start

# Columns every row carries to say whose answer to which page it is, not what was answered.
BOOKKEEPING = {
    "id",
    "participant_id",
    "study_id",
    "study_hash",
    "key",
    "page",
    "step_id",
    "step_type",
    "condition",
    "received_at",
    "complete",
}

# Every step type, every kind of question, both trial stages, a time limit, every explanation
# kind that records an asset: a study that makes a participation store every field there is.
EVERYTHING = """
id: everything
version: 1
title: Every field
consent: Please take part.
assets: demo
seed: 3
conditions:
  - {id: prediction, show_prediction: true, show_confidence: true}
  - {id: heatmap, explanation: heatmap, method: igospp, show_prediction: true}
steps:
  - type: consent
  - type: questionnaire
    id: about
    questions:
      - {type: likert, id: l, text: "Likert"}
      - {type: single, id: s, text: "Single", options: [a, b]}
      - {type: multiple, id: m, text: "Multiple", options: [x, y, z], required: true}
      - {type: number, id: n, text: "Number", min: 18, max: 99}
      - {type: text, id: t, text: "Text"}
  - type: instructions
    id: intro
    markdown: Read this.
    explain_method: true
  - type: trials
    id: timed
    task: classify
    items: {correct: 2}
    time_limit_s: 5
  - type: trials
    id: advice
    task: verify
    items: {correct: 2, incorrect: 2}
    two_stage: true
    confidence: true
    feedback: true
  - type: attention
    id: check
    text: Choose b.
    options: [a, b]
    answer: b
  - type: break
    id: pause
  - type: trials
    id: simulate
    task: simulate
    items: {correct: 1, incorrect: 1}
    two_stage: true
  - type: completion
"""


@pytest.fixture
def everything(tmp_path: Path, assets_dir: Path, studies: dict[str, LoadedStudy]) -> dict[str, LoadedStudy]:
    path = tmp_path / "everything.yaml"
    path.write_text(EVERYTHING)
    return {**studies, "everything": load_study(path, assets_dir, SECRET)}


def _stored(row: Response) -> set[str]:
    """The columns of a stored row that hold something beyond bookkeeping."""
    return {a.key for a in inspect(Response).column_attrs if getattr(row, a.key) is not None} - BOOKKEEPING


def _time_out_one_trial(client: TestClient) -> None:
    code = start(client, "everything")
    assert advance(client, code, choice="agree").status_code == 303
    r = advance(client, code, q_l="3", q_s="0", q_m=["0", "2"], q_n="40", q_t="words")
    assert r.status_code == 303, r.text
    assert advance(client, code).status_code == 303  # the instructions
    index = current_index(page(client, code))
    # and an impossible client clock: the times are dropped with the reason (timing_discarded)
    r = post(client, code, index, timed_out="1", onset_ms="5010", response_ms="10", tab_hidden="1")
    assert r.status_code == 303


def test_every_stored_field_is_declared_exported_and_in_the_codebook(
    tmp_path: Path, settings: Settings, everything: dict[str, LoadedStudy]
) -> None:
    study = everything["everything"]
    run_bots(study, 4, "oracle", None, 8, settings, everything)  # two per condition, through both stages
    app = create_app(settings, everything)
    try:
        with TestClient(app, follow_redirects=False) as client:
            _time_out_one_trial(client)
        with app.state.sessions() as s:
            rows = list(s.scalars(select(Response).where(Response.study_id == study.id)))
            export(s, study, tmp_path / "out", SECRET, all_origins=True)  # the bots' data too
            frame = trials_frame(s, study, all_origins=True)
    finally:
        app.state.engine.dispose()
    fields = trial_fields(study)
    declared = {f.key for f in fields}
    columns = {c.name for c in step_columns(study)}
    seen_types = set()
    for row in rows:
        seen_types.add(row.step_type)
        kind = STEP_TYPES[row.step_type]
        if kind.trial_rows:
            assert _stored(row) - {"values"} <= declared, (row.step_type, _stored(row) - declared)
            assert set(row.values or {}) <= declared, row.values
        else:  # participant-level: what the row holds reaches participants.csv through `flatten`
            flat = kind.flatten(row.step_id, row)
            assert set(flat) <= columns, (row.step_type, set(flat) - columns)
            assert bool(flat) == bool(_stored(row)), (row.step_type, _stored(row))
    assert seen_types == set(STEP_TYPES) - {"completion"}  # the completion page stores nothing
    trials = pd.read_csv(tmp_path / "out/trials.csv", dtype=str, keep_default_na=False)
    people = pd.read_csv(tmp_path / "out/participants.csv", dtype=str, keep_default_na=False)
    for f in fields:  # every field is exported, and this data gives each one a value somewhere
        assert f.name in trials.columns and (trials[f.name] != "").any(), f.name
        assert f.key in frame.columns and frame[f.key].notna().any(), f.key
    for name in columns:
        assert name in people.columns and (people[name] != "").any(), name
    assert set(people["about.m"]) >= {"x; z"}
    book = json.loads((tmp_path / "out/codebook.json").read_text())
    assert [c["name"] for c in book["trials.csv"]] == list(trials.columns)
    assert [c["name"] for c in book["participants.csv"]] == list(people.columns)
    assert all(c["meaning"] and c["type"] for t in ("trials.csv", "participants.csv") for c in book[t])
    two_stage = trials[trials["block"] == "advice"]
    assert (two_stage["first_response"] != "").all() and (two_stage["first_confidence"] != "").all()
    assert set(trials.loc[trials["block"] == "timed", "timed_out"]) == {"true", ""}
    assert trial_row_types() == ["trials"]


def _table_rows(doc: str, heading: str) -> dict[str, str]:
    section = doc.split(heading, 1)[1].split("\n\n", 2)[1]
    return {m.group(1): line for line in section.splitlines() if (m := re.match(r"\| `([a-z_-]+)` \|", line))}


def test_every_step_type_parameter_and_task_is_documented() -> None:
    doc = (REPO / "docs" / "studies.md").read_text()
    rows = _table_rows(doc, "### Step types")
    assert set(rows) == set(STEP_TYPES), set(STEP_TYPES) ^ set(rows)
    for name, kind in STEP_TYPES.items():
        params = set(kind.params.model_fields) - {"type", "id"}
        missing = {p for p in params if f"`{p}`" not in rows[name]}
        assert not missing, (name, missing)
    for name in TASKS:
        assert f"**{name}**" in doc, name


def test_unknown_tasks_and_misused_two_stage_name_the_registered_tasks(tmp_path: Path) -> None:
    from app.errors import StudyError
    from app.studies.loader import parse

    text = (REPO / "studies" / "seagull-agreement.yaml").read_text()
    path = tmp_path / "s.yaml"
    path.write_text(text.replace("task: verify\n    items: {correct: 8", "task: guess\n    items: {correct: 8"))
    with pytest.raises(StudyError) as err:
        parse(path)
    [problem] = err.value.problems
    assert "steps[3].task: unknown task 'guess'; use one of classify, verify, simulate, counterfactual" in problem
    path.write_text(
        (REPO / "studies" / "sag-counterfactual.yaml").read_text().replace("feedback: true", "two_stage: true")
    )
    with pytest.raises(StudyError) as err:
        parse(path)
    assert "two_stage applies to classify, verify, simulate" in err.value.problems[0]


def test_one_checked_box_of_a_multiple_question_is_recorded(
    settings: Settings, everything: dict[str, LoadedStudy]
) -> None:
    """A browser sends one checked box as a plain field and several as a repeated one."""
    app = create_app(settings, everything)
    try:
        with TestClient(app, follow_redirects=False) as client:
            for k, boxes in enumerate((["1"], ["2", "0"])):
                code = start(client, "everything", pid=f"boxes{k}")
                advance(client, code, choice="agree")
                assert advance(client, code, q_l="3", q_s="0", q_m=boxes, q_n="40").status_code == 303
        with app.state.sessions() as s:
            rows = s.scalars(select(Response.values).where(Response.step_type == "questionnaire")).all()
    finally:
        app.state.engine.dispose()
    assert [r["m"] for r in rows] == [["y"], ["x", "z"]]
