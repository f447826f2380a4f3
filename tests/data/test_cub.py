"""Reading CUB-format folders: every fault named with its file and line."""

import shutil
from pathlib import Path

import pytest

from pipeline.data.cub import Dataset, read_dataset
from pipeline.errors import PipelineError, Problems


@pytest.fixture
def copy(tmp_path: Path, tiny_gulls: Dataset) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(tiny_gulls.root, dest)
    return dest


def problems_of(root: Path) -> list[str]:
    with pytest.raises(Problems) as err:
        read_dataset(root)
    return err.value.problems


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_reads_a_valid_folder(copy: Path) -> None:
    ds = read_dataset(copy)
    assert len(ds.images) == 16 and len(ds.parts) == 15


def test_missing_index_file(copy: Path) -> None:
    (copy / "train_test_split.txt").unlink()
    assert "train_test_split.txt: missing (a CUB-200-2011 folder has train_test_split.txt)" in problems_of(copy)


def test_malformed_line_names_file_and_line(copy: Path) -> None:
    edit(copy / "image_class_labels.txt", "3 59\n", "3\n")
    assert "image_class_labels.txt:3: malformed line '3' (expected '<image_id> <class_id>')" in problems_of(copy)


def test_ids_that_disagree_between_files(copy: Path) -> None:
    edit(copy / "train_test_split.txt", "2 1\n", "99 1\n")
    found = problems_of(copy)
    assert "train_test_split.txt:2: image id 99 is not in images.txt" in found
    assert any(p.startswith("train_test_split.txt: has no line for image id 2") for p in found)


def test_unknown_class_and_duplicate_id(copy: Path) -> None:
    edit(copy / "image_class_labels.txt", "1 59\n", "1 200\n")
    edit(copy / "images.txt", "2 059", "1 059")
    found = problems_of(copy)
    assert "image_class_labels.txt:1: class id 200 is not in classes.txt" in found
    assert any(p.startswith("images.txt:2: image id 1 appears twice (first on line 1)") for p in found)


def test_missing_image_file(copy: Path, tiny_gulls: Dataset) -> None:
    (copy / "images" / tiny_gulls.images[4].name).unlink()
    assert any("images.txt:5: image file images/" in p and "does not exist" in p for p in problems_of(copy))


def test_bad_numbers_and_flags(copy: Path) -> None:
    edit(copy / "bounding_boxes.txt", "1 ", "1 x")
    lines = (copy / "parts/part_locs.txt").read_text().splitlines()
    lines[0] = lines[0].rsplit(" ", 1)[0] + " 7"
    (copy / "parts/part_locs.txt").write_text("\n".join(lines) + "\n")
    found = problems_of(copy)
    assert any(p.startswith("bounding_boxes.txt:1: x 'x") for p in found)
    assert "parts/part_locs.txt:1: visible must be 0 or 1, not '7'" in found


def test_part_names_with_spaces_or_underscores_read_the_same(copy: Path) -> None:
    edit(copy / "parts/parts.txt", "7 left eye", "7 left_eye")
    edit(copy / "parts/parts.txt", "11 right eye", "11 Right  eye")
    ds = read_dataset(copy)
    assert ds.parts[6] == "left eye" and ds.parts[10] == "right eye"


def test_duplicate_part_names_are_reported(copy: Path) -> None:
    edit(copy / "parts/parts.txt", "11 right eye", "11 left_eye")
    assert "parts/parts.txt:11: part name 'left eye' appears twice (part ids 7 and 11)" in problems_of(copy)


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="is not a folder"):
        read_dataset(tmp_path / "nowhere")
