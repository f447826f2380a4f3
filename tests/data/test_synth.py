"""`fieldmark data synth`: CUB layout, determinism, resume, shortcuts."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.data import synth
from pipeline.data.cub import Dataset, read_dataset
from pipeline.data.gull import SEG_LABELS
from pipeline.data.scene import CUB_PARTS
from pipeline.errors import PipelineError
from tests.conftest import make_synth


def test_writes_a_valid_cub_folder(tiny_gulls: Dataset) -> None:
    ds = tiny_gulls
    assert ds.classes == {
        59: "059.California_Gull",
        62: "062.Herring_Gull",
        64: "064.Ring_billed_Gull",
        66: "066.Western_Gull",
    }
    assert len(ds.images) == 16 and [r.id for r in ds.images] == list(range(1, 17))
    assert sum(r.is_train for r in ds.images) == 8  # train fraction 0.5, per class
    assert ds.parts == list(CUB_PARTS)
    assert ds.segmentation_labels == list(SEG_LABELS)
    rec = ds.images[0]
    assert rec.name == "059.California_Gull/California_Gull_0001.jpg"
    with Image.open(ds.image_path(rec)) as im:
        assert im.size == (96, 96) and im.mode == "RGB"
    seg_path = ds.segmentation_path(rec)
    assert seg_path is not None
    seg = np.asarray(Image.open(seg_path))
    assert seg.shape == (96, 96) and seg.max() < len(SEG_LABELS) and seg.max() > 0
    x, y, w, h = rec.bbox
    ys, xs = np.nonzero(seg)
    assert (xs.min(), ys.min()) == (x, y) and xs.max() + 1 == x + w and ys.max() + 1 == y + h


def test_attribute_table_records_every_nuisance(tiny_gulls: Dataset) -> None:
    rows = list(csv.DictReader((tiny_gulls.root / synth.ATTRIBUTES).open()))
    assert len(rows) == 16
    assert {"background", "pose", "facing", "exposure", "blur", "noise", "legs_visible"} <= set(rows[0])
    assert {r["background"] for r in rows} <= {"sky", "sea", "sand", "rocks"}


def test_same_seed_same_bytes(tmp_path: Path, tiny_gulls: Dataset) -> None:
    again = make_synth(tmp_path / "again")
    for a, b in zip(tiny_gulls.images, again.images, strict=True):
        assert tiny_gulls.image_path(a).read_bytes() == again.image_path(b).read_bytes()
    assert (tiny_gulls.root / "parts/part_locs.txt").read_text() == (again.root / "parts/part_locs.txt").read_text()


def test_an_interrupted_run_resumes_and_ends_identical(tmp_path: Path, tiny_gulls: Dataset) -> None:
    settings = synth.Settings(4, 96, 3, (59, 62, 64, 66), 0.5, None)
    out = tmp_path / "resumed"

    def stop_after_five(done: int, total: int) -> None:
        if done >= 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synth.synthesise(out, settings, progress=stop_after_five)
    assert not (out / "images.txt").exists()  # no index until every image exists
    rendered = synth.synthesise(out, settings)
    assert rendered == 11
    ds = read_dataset(out)
    for a, b in zip(tiny_gulls.images, ds.images, strict=True):
        assert tiny_gulls.image_path(a).read_bytes() == ds.image_path(b).read_bytes()
    assert synth.synthesise(out, settings) == 0  # a finished run is left alone
    assert not (out / synth.WORK).exists()


def test_refuses_to_mix_settings_or_overwrite_other_folders(tmp_path: Path, tiny_gulls: Dataset) -> None:
    with pytest.raises(PipelineError, match="other settings"):
        synth.synthesise(tiny_gulls.root, synth.Settings(5, 96, 3, (59, 62, 64, 66), 0.5, None))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(PipelineError, match="not a synthetic gull data set"):
        synth.synthesise(other, synth.Settings(1, 96, 0, (62,), 0.5, None))


@pytest.mark.parametrize("bad", ["Herring", "Herring:fog", "Kittiwake:sand"])
def test_bad_shortcut_specs_are_explained(bad: str) -> None:
    with pytest.raises(PipelineError, match="--shortcut"):
        synth.Shortcut.parse(bad)


def test_background_shortcut_correlates_only_in_training(tmp_path: Path) -> None:
    ds = make_synth(tmp_path / "sc", per_class=8, size=64, species=(62, 66), shortcut="62:sand")
    rows = list(csv.DictReader((ds.root / synth.ATTRIBUTES).open()))
    train = [r for r in rows if r["is_train"] == "1"]
    assert all(r["background"] == "sand" for r in train if r["class_id"] == "62")
    assert all(r["background"] != "sand" for r in train if r["class_id"] == "66")
    test_bgs = {r["background"] for r in rows if r["is_train"] == "0"}
    assert len(test_bgs) > 1  # the test split is not forced


def test_mark_shortcut_paints_the_corner(tmp_path: Path) -> None:
    ds = make_synth(tmp_path / "mk", per_class=4, size=64, species=(62, 66), shortcut="Herring:mark")
    for rec in ds.split("train"):
        corner = np.asarray(Image.open(ds.image_path(rec)))[-10:-6, -10:-6].astype(float).mean((0, 1))
        is_orange = corner[0] > 180 and corner[2] < 120
        assert is_orange == (rec.class_id == 62), rec.name
