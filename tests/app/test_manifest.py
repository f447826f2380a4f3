"""The manifest schema refuses what the study server could not use safely."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.assets.manifest import Manifest


def doc(**changes: object) -> dict[str, object]:
    heat = {
        "kind": "heatmap",
        "method": "igos",
        "target": "predicted",
        "target_class": 62,
        "raw": "e/1.npy",
        "overlay": "e/1.png",
        "curves": "e/1.json",
        "faithfulness": [{"protocol": "igos", "deletion_auc": 0.1, "insertion_auc": 0.8}],
        "seconds": 1.0,
    }
    base: dict[str, object] = {
        "run_id": "r",
        "provenance": {
            "model_path": "m.pt",
            "model_hash": "h",
            "model_arch": "compact",
            "data_path": "d",
            "data_hash": "d",
            "code_version": "0",
            "libraries": {},
            "seed": 0,
            "device": "cpu",
            "created": "now",
        },
        "classes": [{"id": 62, "name": "Herring Gull"}, {"id": 64, "name": "Ring-billed Gull"}],
        "methods": {"igos": {"description": "I-GOS", "params": {}}},
        "protocols": {
            "igos": {
                "name": "igos",
                "unit": "cell",
                "resolution": 28,
                "deletion_fill": "blur",
                "insertion_start": "blur",
                "score": "softmax",
                "steps": 50,
                "auc": "riemann",
            }
        },
        "images": [
            {
                "image_id": 1,
                "name": "a.jpg",
                "split": "test",
                "image": "images/1.png",
                "true_class": 62,
                "predicted_class": 64,
                "probabilities": {62: 0.4, 64: 0.6},
                "correct": False,
                "explanations": [heat],
            }
        ],
    }
    return base | changes


def test_a_valid_manifest_lists_its_files(tmp_path: Path) -> None:
    m = Manifest.model_validate(doc())
    assert m.files() == ["images/1.png", "e/1.npy", "e/1.png", "e/1.json"]
    (tmp_path / "images").mkdir()
    (tmp_path / "images/1.png").write_bytes(b"x")
    assert m.missing_files(tmp_path) == ["e/1.npy", "e/1.png", "e/1.json"]


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.png", "images\\1.png", ""])
def test_paths_must_stay_inside_the_run(bad: str) -> None:
    d = doc()
    d["images"][0]["image"] = bad  # type: ignore[index]
    with pytest.raises(ValidationError, match="relative path inside the run folder"):
        Manifest.model_validate(d)


def test_references_must_resolve() -> None:
    with pytest.raises(ValidationError, match="a method not in `methods`"):
        Manifest.model_validate(doc(methods={}))
    with pytest.raises(ValidationError, match="unknown protocol"):
        Manifest.model_validate(doc(protocols={}))
    with pytest.raises(ValidationError, match="names a class that is not in `classes`"):
        Manifest.model_validate(doc(classes=[{"id": 62, "name": "Herring Gull"}]))
    twice = doc()
    twice["images"] = twice["images"] * 2  # type: ignore[operator]
    with pytest.raises(ValidationError, match="listed twice"):
        Manifest.model_validate(twice)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Manifest.model_validate(doc(answer_key={"1": 62}))
