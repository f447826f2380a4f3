"""`fieldmark data import-cub`: copy a class subset of a real CUB-200-2011 folder, checked.

All validation happens before anything is written; the copy goes to a temporary sibling folder
that is renamed into place only when complete, so a failure never leaves half a data set.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pipeline.data import cub
from pipeline.errors import PipelineError, Problems
from pipeline.io import atomic_write_text


def parse_classes(text: str) -> list[int]:
    """'59-66' or '59,61,63-64' -> sorted class ids."""
    ids: set[int] = set()
    for chunk in text.split(","):
        chunk = chunk.strip()
        try:
            if "-" in chunk:
                lo, hi = (int(v) for v in chunk.split("-", 1))
                if lo > hi:
                    raise ValueError
                ids.update(range(lo, hi + 1))
            elif chunk:
                ids.add(int(chunk))
        except ValueError:
            raise PipelineError(f"--classes {text!r}: write ids and ranges such as 59-66 or 59,61,63-64") from None
    if not ids:
        raise PipelineError("--classes is empty; give ids such as 59-66")
    return sorted(ids)


def _find_root(cub_dir: Path) -> Path:
    """Accept the CUB_200_2011 folder itself or the folder that contains it."""
    if (cub_dir / "images.txt").is_file():
        return cub_dir
    inner = cub_dir / "CUB_200_2011"
    if (inner / "images.txt").is_file():
        return inner
    return cub_dir


def import_cub(
    cub_dir: Path, out: Path, classes: list[int], progress: Callable[[int, int], None] | None = None
) -> cub.Dataset:
    if not cub_dir.is_dir():
        raise PipelineError(f"{cub_dir}: no such folder; give the path of your CUB_200_2011 copy")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PipelineError(f"{out} already exists and is not empty; give a new --out folder")
    root = _find_root(cub_dir)
    ds = cub.read_dataset(root)
    unknown = [c for c in classes if c not in ds.classes]
    if unknown:
        raise PipelineError(f"class ids {unknown} are not in {root / 'classes.txt'}")
    keep = [r for r in ds.images if r.class_id in classes]
    if not keep:
        raise PipelineError(f"no images of classes {classes} in {root}")

    problems = []
    for rec in keep:
        try:
            with Image.open(ds.image_path(rec)) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            problems.append(f"images/{rec.name}: unreadable image ({exc})")
    if problems:
        raise Problems(f"{root} has {len(problems)} unreadable images:", problems)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for i, rec in enumerate(keep, start=1):
            dest = tmp / "images" / rec.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ds.image_path(rec), dest)
            if progress:
                progress(i, len(keep))
        kept_classes = {c: ds.classes[c] for c in classes}
        cub.write_index(tmp, kept_classes, ds.parts, keep)
        atomic_write_text(
            tmp / cub.DATASET_INFO,
            json.dumps(
                {"source": "cub-200-2011", "imported_from": str(root.resolve()), "classes": classes, "complete": True},
                indent=2,
            ),
        )
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return cub.read_dataset(out)
