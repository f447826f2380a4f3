"""What a researcher reads in an export: every cell of the type the codebook declares, times with
their zone, species by name beside each class id, and no cell a spreadsheet would run."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest

from app.bots import run_bots
from app.export.files import export
from app.main import create_app
from app.models import Participant, Response
from app.settings import Settings
from app.studies.loader import LoadedStudy


def _parses(kind: str, cell: str) -> bool:
    if cell == "":
        return True  # empty: not recorded for this row
    try:
        if kind == "integer":
            int(cell)
        elif kind == "number":
            float(cell)
        elif kind == "boolean":
            return cell in ("true", "false")
        elif kind == "datetime":
            return dt.datetime.fromisoformat(cell).tzinfo is not None  # a time without its zone is ambiguous
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("study_id", ["seagull-learning", "seagull-agreement"])
def test_every_cell_has_its_declared_type_and_species_have_names(
    tmp_path: Path, settings: Settings, studies: dict[str, LoadedStudy], study_id: str
) -> None:
    study = studies[study_id]
    for k in range(3):
        run_bots(study, 1, "random" if k else "oracle", None, 40 + k, settings, studies, as_bots=False)
    app = create_app(settings, studies)
    with app.state.sessions() as s:
        # what a hostile participant could type into a free-text answer, and a Prolific id
        # that begins with '-' (the id pattern allows it)
        for p in s.query(Participant):
            p.external_pid = f"-{p.id}+1"
        for r in s.query(Response).filter(Response.step_type == "questionnaire"):
            if r.values and "strategy" in r.values:
                r.values = {**r.values, "strategy": '=HYPERLINK("http://evil.example","x")'}
        s.commit()
        export(s, study, tmp_path, settings.secret_key, raw_ids=True)
    app.state.engine.dispose()
    book = json.loads((tmp_path / "codebook.json").read_text())
    names = {c.id: c.name for c in study.manifest.classes}
    for table in ("trials.csv", "participants.csv", "classes.csv"):
        declared = {c["name"]: c["type"] for c in book[table]}
        rows = list(csv.DictReader((tmp_path / table).open(newline="")))
        assert rows and list(rows[0]) == list(declared)
        for row in rows:
            bad = {k: v for k, v in row.items() if not _parses(declared[k], v)}
            assert not bad, (table, bad)
            assert not any(v[:1] in ("=", "+", "-", "@", "\t", "\r") for v in row.values()), row
    trials = list(csv.DictReader((tmp_path / "trials.csv").open(newline="")))
    for row in trials:
        assert row["true_species"] == names[int(row["true_class"])]
        assert row["model_prediction_species"] == names[int(row["model_prediction"])]
        if row["task"] == "classify":
            assert row["response_species"] == names[int(row["response"])]
    classes = list(csv.DictReader((tmp_path / "classes.csv").open(newline="")))
    assert {int(c["class_id"]): c["species"] for c in classes} == names
    people = list(csv.DictReader((tmp_path / "participants.csv").open(newline="")))
    assert all(p["prolific_pid"].startswith("'-") for p in people)
    if study_id == "seagull-learning":
        assert {p["afterwards.strategy"] for p in people if p["afterwards.strategy"]} == {
            '\'=HYPERLINK("http://evil.example","x")'
        }
    assert "leading apostrophe" in book["cells"] and "Wald t-test" in book["analysis_method"]
