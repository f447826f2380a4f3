"""`fieldmark data synth`: write a CUB-format folder of procedural gulls.

Each image is a pure function of (seed, species, index), so a run is deterministic and can
resume: finished images are kept, and the index files are written once every image exists.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data import cub, gull
from pipeline.data.scene import BACKGROUNDS, CUB_PARTS, SHORTCUT_CUES, Background, render_scene
from pipeline.data.species import SPECIES, Species, resolve
from pipeline.errors import PipelineError
from pipeline.io import atomic_write_bytes, atomic_write_text

FORMAT = "fieldmark-synth/1"
WORK = ".work"  # per-image records while a run is in progress; removed when it completes
ATTRIBUTES = "image_attributes.csv"


@dataclass(frozen=True)
class Shortcut:
    """A spurious cue present in every training image of one species and no other's."""

    species: Species
    cue: str  # a background name or "mark"

    @classmethod
    def parse(cls, text: str) -> Shortcut:
        if ":" not in text:
            raise PipelineError(f"--shortcut {text!r}: write SPECIES:CUE, e.g. Herring:sand or 62:mark")
        name, cue = text.rsplit(":", 1)
        try:
            sp = resolve(name)
        except ValueError as exc:
            raise PipelineError(f"--shortcut: {exc}") from None
        if cue not in SHORTCUT_CUES:
            raise PipelineError(f"--shortcut: unknown cue {cue!r}; use one of {', '.join(SHORTCUT_CUES)}")
        return cls(sp, cue)

    def __str__(self) -> str:
        return f"{self.species.cub_id}:{self.cue}"


@dataclass(frozen=True)
class Settings:
    per_class: int
    size: int
    seed: int
    species: tuple[int, ...]
    train_fraction: float
    shortcut: str | None  # "62:sand" or None

    def as_json(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "per_class": self.per_class,
            "size": self.size,
            "seed": self.seed,
            "species": list(self.species),
            "train_fraction": self.train_fraction,
            "shortcut": self.shortcut,
        }


@dataclass(frozen=True)
class Job:
    image_id: int
    species: Species
    index: int  # within its species
    is_train: bool
    name: str
    background: Background | None
    mark: bool


def plan(settings: Settings) -> list[Job]:
    """Every image to make, in image-id order, with its split and any shortcut cue forced."""
    n_train = round(settings.per_class * settings.train_fraction)
    shortcut = Shortcut.parse(settings.shortcut) if settings.shortcut else None
    jobs, image_id = [], 1
    for cid in settings.species:
        sp = next(s for s in SPECIES if s.cub_id == cid)
        others = [b for b in BACKGROUNDS if shortcut is None or b != shortcut.cue]
        for k in range(settings.per_class):
            is_train = k < n_train
            rng = np.random.default_rng([settings.seed, cid, k, 1])  # cue choices only
            background: Background | None = None
            mark = False
            if shortcut is not None:
                if is_train and shortcut.cue == "mark":
                    mark = shortcut.species == sp
                elif is_train:
                    background = shortcut.cue if shortcut.species == sp else others[int(rng.integers(len(others)))]  # type: ignore[assignment]
                elif shortcut.cue == "mark":
                    mark = bool(rng.random() < 0.25)  # test: the cue appears on any species
            name = f"{sp.folder}/{sp.name}_{k + 1:04d}.jpg"
            jobs.append(Job(image_id, sp, k, is_train, name, background, mark))
            image_id += 1
    return jobs


def render_job(args: tuple[Job, Settings, str]) -> dict[str, object]:
    """Render one image and write it, its segmentation and its record (run in a worker)."""
    job, settings, root_s = args
    root = Path(root_s)
    rng = np.random.default_rng([settings.seed, job.species.cub_id, job.index])
    scene = render_scene(job.species, rng, settings.size, job.background, job.mark)
    buf = io.BytesIO()
    Image.fromarray(scene.image).save(buf, format="JPEG", quality=92)
    atomic_write_bytes(root / "images" / job.name, buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(scene.segmentation, mode="L").save(buf, format="PNG")
    atomic_write_bytes(root / "segmentations" / Path(job.name).with_suffix(".png"), buf.getvalue())
    record = {"id": job.image_id, "bbox": scene.bbox, "parts": scene.parts, "info": scene.info.as_row()}
    atomic_write_text(root / WORK / f"{job.image_id}.json", json.dumps(record))
    return record


def _check_destination(out: Path, settings: Settings) -> None:
    info = out / cub.DATASET_INFO
    if info.is_file():
        old = json.loads(info.read_text())
        if old.get("settings") != settings.as_json():
            raise PipelineError(
                f"{out} already holds a data set made with other settings ({old.get('settings')}); "
                "give a new --out folder or delete this one"
            )
    elif out.exists() and any(out.iterdir()):
        raise PipelineError(f"{out} exists and is not a synthetic gull data set; give an empty or new --out folder")


def synthesise(
    out: Path,
    settings: Settings,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Make (or finish) the data set in `out`. Returns how many images were rendered now."""
    if settings.per_class < 1:
        raise PipelineError("--per-class must be at least 1")
    if not 32 <= settings.size <= 1024:
        raise PipelineError("--size must be between 32 and 1024 pixels")
    if not 0.0 < settings.train_fraction < 1.0:
        raise PipelineError("--train-fraction must be between 0 and 1 (exclusive)")
    jobs = plan(settings)
    _check_destination(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / cub.DATASET_INFO,
        json.dumps({"source": "synthetic", "settings": settings.as_json(), "complete": False}, indent=2),
    )

    def done(job: Job) -> bool:
        return (
            (out / WORK / f"{job.image_id}.json").is_file()
            and (out / "images" / job.name).is_file()
            and (out / "segmentations" / Path(job.name).with_suffix(".png")).is_file()
        )

    complete = (out / "images.txt").is_file() and not (out / WORK).exists()
    todo = [] if complete else [j for j in jobs if not done(j)]
    finished = len(jobs) - len(todo)
    if progress:
        progress(finished, len(jobs))
    tasks = [(j, settings, str(out)) for j in todo]
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(render_job, tasks, chunksize=4):
                finished += 1
                if progress:
                    progress(finished, len(jobs))
    else:
        for t in tasks:
            render_job(t)
            finished += 1
            if progress:
                progress(finished, len(jobs))
    if not complete:
        _write_index(out, jobs, settings)
    return len(todo)


def _write_index(out: Path, jobs: Sequence[Job], settings: Settings) -> None:
    records = {j.image_id: json.loads((out / WORK / f"{j.image_id}.json").read_text()) for j in jobs}
    images = [
        cub.ImageRecord(
            id=j.image_id,
            name=j.name,
            class_id=j.species.cub_id,
            is_train=j.is_train,
            bbox=tuple(records[j.image_id]["bbox"]),
            parts=tuple(tuple(p) for p in records[j.image_id]["parts"]),
        )
        for j in jobs
    ]
    classes = {cid: next(s.folder for s in SPECIES if s.cub_id == cid) for cid in settings.species}
    cub.write_index(out, classes, list(CUB_PARTS), images, gull.SEG_LABELS)
    buf = io.StringIO()
    rows = [
        {
            "image_id": j.image_id,
            "class_id": j.species.cub_id,
            "is_train": int(j.is_train),
            **records[j.image_id]["info"],
        }
        for j in jobs
    ]
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / ATTRIBUTES, buf.getvalue())
    atomic_write_text(
        out / cub.DATASET_INFO,
        json.dumps(
            {
                "source": "synthetic",
                "settings": settings.as_json(),
                "complete": True,
                "segmentation": "segmentations/<image name>.png, values in segmentation_labels.txt",
                "attributes": ATTRIBUTES,
            },
            indent=2,
        ),
    )
    shutil.rmtree(out / WORK)


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))
