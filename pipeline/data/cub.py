"""The CUB-200-2011 folder layout: read and validate it, write it, hash it.

Both our synthetic gulls and imported real CUB data live in this layout, so everything
downstream (training, explanations, localisation scores) reads one format. Validation collects
every problem with its file and line instead of stopping at the first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import PipelineError, Problems
from pipeline.io import atomic_write_text

INDEX_FILES = (
    "images.txt",
    "classes.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
    "parts/parts.txt",
    "parts/part_locs.txt",
)
SEGMENTATION_LABELS = "segmentation_labels.txt"  # ours, beyond CUB: part segmentation legend
DATASET_INFO = "fieldmark.json"  # ours: where the data set came from


@dataclass(frozen=True)
class ImageRecord:
    id: int
    name: str  # relative path under images/
    class_id: int
    is_train: bool
    bbox: tuple[float, float, float, float]  # x, y, width, height
    parts: tuple[tuple[float, float, int], ...]  # per part id (1-based order): x, y, visible


@dataclass
class Dataset:
    root: Path
    classes: dict[int, str]  # CUB class id -> folder name, e.g. 62 -> "062.Herring_Gull"
    parts: list[str]  # part names in id order, spaces not underscores ("left eye")
    images: list[ImageRecord]
    segmentation_labels: list[str] = field(default_factory=list)
    info: dict[str, object] = field(default_factory=dict)

    def image_path(self, rec: ImageRecord) -> Path:
        return self.root / "images" / rec.name

    def segmentation_path(self, rec: ImageRecord) -> Path | None:
        if not self.segmentation_labels:
            return None
        return self.root / "segmentations" / Path(rec.name).with_suffix(".png")

    @property
    def class_ids(self) -> list[int]:
        return sorted(self.classes)

    def class_label(self, class_id: int) -> str:
        """Readable name: the gulls' common names ("Ring-billed Gull"), else "062.Herring_Gull" -> "Herring Gull"."""
        from pipeline.data.species import BY_ID

        folder = self.classes[class_id]
        if class_id in BY_ID and BY_ID[class_id].folder == folder:
            return BY_ID[class_id].common
        return folder.split(".", 1)[-1].replace("_", " ")

    def split(self, which: str) -> list[ImageRecord]:
        if which == "all":
            return list(self.images)
        if which not in ("train", "test"):
            raise ValueError(f"unknown split {which!r}: use train, test or all")
        return [r for r in self.images if r.is_train == (which == "train")]


class _Reader:
    """Reads the index files of one folder, collecting problems as 'file:line: message'."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[str] = []

    def problem(self, file: str, line: int | None, message: str) -> None:
        self.problems.append(f"{file}:{line}: {message}" if line else f"{file}: {message}")

    def rows(self, file: str, fields: int, hint: str, maxsplit: int | None = None) -> Iterable[tuple[int, list[str]]]:
        path = self.root / file
        if not path.is_file():
            self.problem(file, None, f"missing (a CUB-200-2011 folder has {file})")
            return
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problem(file, None, f"cannot be read as UTF-8 text ({exc})")
            return
        for n, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line:
                continue
            parts = line.split(None, maxsplit) if maxsplit else line.split()
            if len(parts) != fields:
                self.problem(file, n, f"malformed line {raw!r} (expected '{hint}')")
                continue
            yield n, parts

    def integer(self, file: str, n: int, text: str, what: str) -> int | None:
        try:
            return int(text)
        except ValueError:
            self.problem(file, n, f"{what} {text!r} is not an integer")
            return None

    def number(self, file: str, n: int, text: str, what: str) -> float | None:
        try:
            return float(text)
        except ValueError:
            self.problem(file, n, f"{what} {text!r} is not a number")
            return None


def _keyed(
    reader: _Reader, file: str, rows: Iterable[tuple[int, list[str]]], known: set[int] | None, what: str = "image id"
) -> dict[int, tuple[int, list[str]]]:
    """Index rows by their first column, reporting duplicates and ids not in images.txt."""
    out: dict[int, tuple[int, list[str]]] = {}
    for n, parts in rows:
        key = reader.integer(file, n, parts[0], what)
        if key is None:
            continue
        if key in out:
            reader.problem(file, n, f"{what} {key} appears twice (first on line {out[key][0]})")
            continue
        if known is not None and key not in known:
            reader.problem(file, n, f"{what} {key} is not in images.txt")
            continue
        out[key] = (n, parts)
    return out


def normalise_part_name(name: str) -> str:
    """CUB copies spell parts "left eye" or "left_eye"; we keep the original spaces."""
    return " ".join(name.replace("_", " ").split()).lower()


def read_dataset(root: Path | str, check_files: bool = True) -> Dataset:
    """Read and validate a CUB-format folder. Raises Problems listing every fault found."""
    root = Path(root)
    if not root.is_dir():
        raise PipelineError(f"{root} is not a folder; give a CUB-format data set folder")
    r = _Reader(root)

    images = _keyed(r, "images.txt", r.rows("images.txt", 2, "<image_id> <image_name>", 1), None)
    names: dict[int, str] = {}
    for key, (n, parts) in images.items():
        name = parts[1].strip()
        if name.startswith("/") or ".." in Path(name).parts:
            r.problem("images.txt", n, f"image name {name!r} must be a relative path inside images/")
            continue
        names[key] = name
    ids = set(names)

    classes: dict[int, str] = {}
    for key, (_, parts) in _keyed(
        r, "classes.txt", r.rows("classes.txt", 2, "<class_id> <class_name>", 1), None, "class id"
    ).items():
        classes[key] = parts[1].strip()

    labels: dict[int, int] = {}
    for key, (n, parts) in _keyed(
        r, "image_class_labels.txt", r.rows("image_class_labels.txt", 2, "<image_id> <class_id>"), ids
    ).items():
        c = r.integer("image_class_labels.txt", n, parts[1], "class id")
        if c is None:
            continue
        if c not in classes:
            r.problem("image_class_labels.txt", n, f"class id {c} is not in classes.txt")
            continue
        labels[key] = c

    split: dict[int, bool] = {}
    for key, (n, parts) in _keyed(
        r, "train_test_split.txt", r.rows("train_test_split.txt", 2, "<image_id> <is_training_image>"), ids
    ).items():
        if parts[1] not in ("0", "1"):
            r.problem("train_test_split.txt", n, f"is_training_image must be 0 or 1, not {parts[1]!r}")
            continue
        split[key] = parts[1] == "1"

    boxes: dict[int, tuple[float, float, float, float]] = {}
    for key, (n, parts) in _keyed(
        r, "bounding_boxes.txt", r.rows("bounding_boxes.txt", 5, "<image_id> <x> <y> <width> <height>"), ids
    ).items():
        vals = [
            r.number("bounding_boxes.txt", n, v, k)
            for v, k in zip(parts[1:], ("x", "y", "width", "height"), strict=True)
        ]
        if any(v is None for v in vals):
            continue
        x, y, w, h = (float(v) for v in vals if v is not None)
        if w <= 0 or h <= 0:
            r.problem("bounding_boxes.txt", n, f"box width and height must be positive, got {w} x {h}")
            continue
        boxes[key] = (x, y, w, h)

    part_names: dict[int, str] = {}
    seen_names: dict[str, int] = {}
    for key, (n, parts) in _keyed(
        r, "parts/parts.txt", r.rows("parts/parts.txt", 2, "<part_id> <part_name>", 1), None, "part id"
    ).items():
        name = normalise_part_name(parts[1])
        if name in seen_names:
            r.problem("parts/parts.txt", n, f"part name {name!r} appears twice (part ids {seen_names[name]} and {key})")
            continue
        seen_names[name] = key
        part_names[key] = name
    part_ids = sorted(part_names)
    if part_ids and part_ids != list(range(1, len(part_ids) + 1)):
        r.problem("parts/parts.txt", None, f"part ids must run 1..{len(part_ids)} without gaps, got {part_ids}")

    locs: dict[int, dict[int, tuple[float, float, int]]] = {}
    first_line: dict[tuple[int, int], int] = {}
    for n, parts in r.rows("parts/part_locs.txt", 5, "<image_id> <part_id> <x> <y> <visible>"):
        img = r.integer("parts/part_locs.txt", n, parts[0], "image id")
        pid = r.integer("parts/part_locs.txt", n, parts[1], "part id")
        px = r.number("parts/part_locs.txt", n, parts[2], "x")
        py = r.number("parts/part_locs.txt", n, parts[3], "y")
        if img is None or pid is None or px is None or py is None:
            continue
        if img not in ids:
            r.problem("parts/part_locs.txt", n, f"image id {img} is not in images.txt")
            continue
        if pid not in part_names:
            r.problem("parts/part_locs.txt", n, f"part id {pid} is not in parts/parts.txt")
            continue
        if parts[4] not in ("0", "1"):
            r.problem("parts/part_locs.txt", n, f"visible must be 0 or 1, not {parts[4]!r}")
            continue
        if (img, pid) in first_line:
            r.problem(
                "parts/part_locs.txt", n, f"image {img} part {pid} appears twice (first on line {first_line[img, pid]})"
            )
            continue
        first_line[img, pid] = n
        locs.setdefault(img, {})[pid] = (px, py, int(parts[4]))

    for key in sorted(ids):
        for file, table in (
            ("image_class_labels.txt", labels),
            ("train_test_split.txt", split),
            ("bounding_boxes.txt", boxes),
        ):
            if key not in table and (root / file).is_file():
                line = images[key][0]
                r.problem(file, None, f"has no line for image id {key} (images.txt line {line})")
        have = locs.get(key, {})
        missing = [p for p in part_ids if p not in have]
        if part_ids and missing and (root / "parts/part_locs.txt").is_file():
            r.problem("parts/part_locs.txt", None, f"image id {key} has no location for part ids {missing}")
        if check_files and key in names and not (root / "images" / names[key]).is_file():
            r.problem("images.txt", images[key][0], f"image file images/{names[key]} does not exist")

    seg_labels: list[str] = []
    seg_file = root / SEGMENTATION_LABELS
    if seg_file.is_file():
        for n, parts in r.rows(SEGMENTATION_LABELS, 2, "<value> <label>", 1):
            if parts[0] != str(len(seg_labels)):
                r.problem(SEGMENTATION_LABELS, n, f"values must run 0, 1, 2, ... in order; expected {len(seg_labels)}")
                break
            seg_labels.append(parts[1].strip())

    if r.problems:
        raise Problems(f"{root} is not a valid CUB-200-2011 folder ({len(r.problems)} problems):", r.problems)

    info: dict[str, object] = {}
    if (root / DATASET_INFO).is_file():
        info = json.loads((root / DATASET_INFO).read_text())
    records = [
        ImageRecord(
            id=key,
            name=names[key],
            class_id=labels[key],
            is_train=split[key],
            bbox=boxes[key],
            parts=tuple(locs[key][p] for p in part_ids),
        )
        for key in sorted(ids)
    ]
    used = {rec.class_id for rec in records}
    return Dataset(
        root,
        {c: n for c, n in classes.items() if c in used},
        [part_names[p] for p in part_ids],
        records,
        seg_labels,
        info,
    )


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def write_index(
    root: Path,
    classes: dict[int, str],
    parts: list[str],
    images: list[ImageRecord],
    segmentation_labels: Iterable[str] = (),
) -> None:
    """Write the CUB index files for `images` (the image files themselves are the caller's)."""
    atomic_write_text(root / "images.txt", "".join(f"{r.id} {r.name}\n" for r in images))
    atomic_write_text(root / "classes.txt", "".join(f"{c} {classes[c]}\n" for c in sorted(classes)))
    atomic_write_text(root / "image_class_labels.txt", "".join(f"{r.id} {r.class_id}\n" for r in images))
    atomic_write_text(root / "train_test_split.txt", "".join(f"{r.id} {int(r.is_train)}\n" for r in images))
    atomic_write_text(
        root / "bounding_boxes.txt", "".join(f"{r.id} {' '.join(_fmt(v) for v in r.bbox)}\n" for r in images)
    )
    atomic_write_text(root / "parts/parts.txt", "".join(f"{i} {p}\n" for i, p in enumerate(parts, start=1)))
    atomic_write_text(
        root / "parts/part_locs.txt",
        "".join(
            f"{r.id} {pid} {_fmt(x)} {_fmt(y)} {v}\n" for r in images for pid, (x, y, v) in enumerate(r.parts, start=1)
        ),
    )
    labels = list(segmentation_labels)
    if labels:
        atomic_write_text(root / SEGMENTATION_LABELS, "".join(f"{i} {name}\n" for i, name in enumerate(labels)))


def dataset_hash(ds: Dataset) -> str:
    """SHA-256 over the index files and every image's bytes: the data set's identity."""
    h = hashlib.sha256()
    for name in INDEX_FILES:
        h.update(name.encode())
        h.update((ds.root / name).read_bytes())
    for rec in ds.images:
        h.update(rec.name.encode())
        h.update(ds.image_path(rec).read_bytes())
    return h.hexdigest()
