"""`fieldmark data import-cub`: a checked copy of a class subset, all or nothing."""

import shutil
from pathlib import Path

import pytest

from pipeline.data.cub import Dataset
from pipeline.data.importer import import_cub, parse_classes
from pipeline.errors import PipelineError, Problems


@pytest.fixture
def cub_copy(tmp_path: Path, tiny_gulls: Dataset) -> Path:
    """A CUB_200_2011 folder as shipped, inside a download folder, with CUB's own spelling of parts."""
    root = tmp_path / "download" / "CUB_200_2011"
    shutil.copytree(
        tiny_gulls.root,
        root,
        ignore=shutil.ignore_patterns("segmentations", "fieldmark.json", "segmentation_labels.txt", "*.csv"),
    )
    parts = root / "parts/parts.txt"
    parts.write_text(parts.read_text().replace("left eye", "left_eye"))
    return root


def test_imports_a_class_subset_with_boxes_and_parts(tmp_path: Path, cub_copy: Path, tiny_gulls: Dataset) -> None:
    ds = import_cub(cub_copy.parent, tmp_path / "out", [62, 64])
    assert ds.class_ids == [62, 64]
    originals = {r.id: r for r in tiny_gulls.images}
    assert len(ds.images) == 8
    for rec in ds.images:
        orig = originals[rec.id]  # ids are kept, so rows trace back to the source
        assert (rec.name, rec.class_id, rec.is_train, rec.bbox) == (orig.name, orig.class_id, orig.is_train, orig.bbox)
        assert rec.parts == orig.parts
        assert ds.image_path(rec).read_bytes() == tiny_gulls.image_path(orig).read_bytes()
    assert ds.parts[6] == "left eye"
    assert ds.info["source"] == "cub-200-2011"


def test_unreadable_image_is_reported_and_nothing_is_written(tmp_path: Path, cub_copy: Path) -> None:
    victim = next((cub_copy / "images" / "062.Herring_Gull").iterdir())
    victim.write_bytes(b"this is not a jpeg")
    out = tmp_path / "out"
    with pytest.raises(Problems) as err:
        import_cub(cub_copy, out, [62, 64])
    assert any(p.startswith(f"images/062.Herring_Gull/{victim.name}: unreadable image") for p in err.value.problems)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["download"]  # no temporary folder left behind


def test_index_problems_stop_the_import(tmp_path: Path, cub_copy: Path) -> None:
    (cub_copy / "bounding_boxes.txt").write_text("1 0 0 10\n")
    with pytest.raises(Problems) as err:
        import_cub(cub_copy, tmp_path / "out", [62])
    assert "bounding_boxes.txt:1: malformed line '1 0 0 10' (expected '<image_id> <x> <y> <width> <height>')" in (
        err.value.problems
    )
    assert not (tmp_path / "out").exists()


def test_refuses_unknown_classes_and_occupied_destinations(tmp_path: Path, cub_copy: Path) -> None:
    with pytest.raises(PipelineError, match=r"class ids \[60\] are not in"):
        import_cub(cub_copy, tmp_path / "out", [60, 62])
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(PipelineError, match="not empty"):
        import_cub(cub_copy, busy, [62])
    with pytest.raises(PipelineError, match="no such folder"):
        import_cub(tmp_path / "nowhere", tmp_path / "o", [62])


@pytest.mark.parametrize(("text", "ids"), [("59-66", list(range(59, 67))), ("59, 61,63-64", [59, 61, 63, 64])])
def test_parse_classes(text: str, ids: list[int]) -> None:
    assert parse_classes(text) == ids


@pytest.mark.parametrize("bad", ["66-59", "gulls", "", "59-x"])
def test_parse_classes_rejects_nonsense(bad: str) -> None:
    with pytest.raises(PipelineError, match="--classes"):
        parse_classes(bad)
