"""Which class a learning explanation explains, and whether the page says enough about it.

A heatmap of the model's (wrong) answer on a page that then says "This is a Herring Gull" teaches
the marks of the wrong species. A condition says what its explanation explains (`explains:
predicted` or `true`); the loader refuses a block whose pages would mislead, and a run that lacks
the explanations a condition asks for.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.errors import StudyError
from app.studies.explanations import explanation_for
from app.studies.loader import LoadedStudy, load_study
from tests.server.conftest import REPO, SECRET

LEARNING = (REPO / "studies" / "seagull-learning.yaml").read_text()
OLD_LEARN = LEARNING.replace("items: {correct: 16, incorrect: 0}", "items: {correct: 12, incorrect: 4}")


def _load(tmp_path: Path, text: str, assets: Path) -> LoadedStudy:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_study(path, assets, SECRET)


def _problems(tmp_path: Path, text: str, assets: Path) -> list[str]:
    with pytest.raises(StudyError) as err:
        _load(tmp_path, text, assets)
    return err.value.problems


def test_the_shipped_learning_study_explains_what_its_pages_name(studies: dict[str, LoadedStudy]) -> None:
    study = studies["seagull-learning"]
    learn = [it for s in study.items["learn"] for it in s]
    assert learn and all(it.model_correct for it in learn)
    for condition in study.spec.conditions:
        for it in learn:
            found = explanation_for(study.entries[it.image_id], condition)
            if condition.explanation == "none":
                assert found is None
            else:  # the feedback names the true species: the explanation is of that species
                assert found is not None and getattr(found, "target_class", None) == it.true_class


def test_explaining_wrong_answers_without_saying_so_is_refused(tmp_path: Path, assets_dir: Path) -> None:
    found = _problems(tmp_path, OLD_LEARN, assets_dir)
    assert len(found) == 3, found  # heatmap, concepts, sag; not the labels-only condition
    assert all("steps.learn" in p and "4 items are model errors" in p for p in found)
    assert {p.split("condition ")[1].split(" ")[0] for p in found} == {"'heatmap'", "'concepts'", "'sag'"}
    # saying what the model answered makes the same items coherent: the page shows whose marks these are
    said = OLD_LEARN.replace(
        "    explains: predicted_class\n", "    explains: predicted_class\n    show_prediction: true\n"
    )
    study = _load(tmp_path, said, assets_dir)
    assert sum(not it.model_correct for it in study.items["learn"][0]) == 4


def test_true_class_explanations_need_the_assets_and_no_prediction(tmp_path: Path, assets_dir: Path) -> None:
    truthful = OLD_LEARN.replace("explains: predicted_class", "explains: true_class")
    found = _problems(tmp_path, truthful, assets_dir)  # the factory's run explains the predicted class only
    assert any("lacks igospp true-class" in p and "--explain-true" in p for p in found), found
    both = truthful.replace("    explains: true_class\n", "    explains: true_class\n    show_prediction: true\n", 1)
    assert any("explains: true_class with show_prediction" in p for p in _problems(tmp_path, both, assets_dir))
    examples = LEARNING.replace(
        "explanation: sag\n    explains: predicted_class", "explanation: examples\n    explains: true_class"
    )
    assert any("nearest examples explain the prediction" in p for p in _problems(tmp_path, examples, assets_dir))


def _with_true_class_heatmaps(assets_dir: Path, dest: Path) -> Path:
    """A copy of the factory's run whose model errors also have an iGOS++ heatmap of the true class."""
    run = dest / "demo"
    shutil.copytree(assets_dir / "demo", run)
    doc = json.loads((run / "manifest.json").read_text())
    for entry in doc["images"]:
        if entry["correct"]:
            continue
        h = next(e for e in entry["explanations"] if e["method"] == "igospp")
        true = {**h, "target": "true", "target_class": entry["true_class"]}
        for key in ("raw", "overlay", "curves"):
            true[key] = h[key].replace("-predicted", "-true")
            shutil.copy(run / h[key], run / true[key])
        entry["explanations"].append(true)
    (run / "manifest.json").write_text(json.dumps(doc))
    return dest


def test_true_class_explanations_are_served_where_the_run_has_them(tmp_path: Path, assets_dir: Path) -> None:
    assets = _with_true_class_heatmaps(assets_dir, tmp_path / "assets")
    heatmap_only = OLD_LEARN.split("  - id: concepts")[0] + "assignment:" + OLD_LEARN.split("assignment:")[1]
    study = _load(tmp_path, heatmap_only.replace("explains: predicted_class", "explains: true_class"), assets)
    condition = study.spec.condition("heatmap")
    learn = list(study.items["learn"][0])
    assert sum(not it.model_correct for it in learn) == 4
    for it in learn:
        found = explanation_for(study.entries[it.image_id], condition)
        assert found is not None and getattr(found, "target_class", None) == it.true_class
        assert found.target == ("predicted" if it.model_correct else "true")
