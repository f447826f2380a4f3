"""`make bench-data`: synthesis speed, training time and accuracy of the compact classifier.

Writes its section of docs/benchmarks.md and the figures the README shows.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.report import DOC, machine, write_section
from pipeline.data import synth
from pipeline.data.cub import read_dataset
from pipeline.data.preview import contact_sheet, field_mark_guide
from pipeline.data.species import BY_ID, SPECIES
from pipeline.models.run import evaluate_model, train_model
from pipeline.models.train import TrainConfig
from pipeline.provenance import home

IMAGES = DOC.parent / "images"
ALL = tuple(s.cub_id for s in SPECIES)


def synthesis_speed(workers: int, per_class: int = 25) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        settings = synth.Settings(per_class, 224, 123, ALL, 0.6, None)
        t0 = time.perf_counter()
        synth.synthesise(Path(tmp) / "g", settings, workers)
        return per_class * len(ALL) / (time.perf_counter() - t0)


def main() -> None:
    speed = {w: synthesis_speed(w) for w in sorted({1, synth.default_workers()})}
    data = home() / "data" / "gulls"  # the demo's data set: reused if `make demo` built it
    synth.synthesise(data, synth.Settings(250, 224, 0, ALL, 0.6, None), synth.default_workers())
    ds = read_dataset(data)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "compact.pt"
        t0 = time.perf_counter()
        meta = train_model(data, "compact", model, TrainConfig(seed=0), "cpu")
        wall = time.perf_counter() - t0
        s = evaluate_model(model, data, Path(tmp) / "report", "test", "cpu")
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "report" / "confusion_matrix.png", IMAGES / "confusion_matrix.png")
    contact_sheet(ds, per_row=5).convert("RGB").save(IMAGES / "contact_sheet.jpg", quality=88)
    field_mark_guide(BY_ID[62]).save(IMAGES / "guide_herring.png", optimize=True)

    rows = "\n".join(f"| {c['class']} | {c['n']} | {c['accuracy']:.1%} |" for c in s["per_class"])
    confusions = "\n".join(f"| {c['true']} | {c['predicted']} | {c['count']} |" for c in s["top_confusions"])
    speeds = ", ".join(f"{v:.1f} images/s with {w} worker{'s' if w > 1 else ''}" for w, v in speed.items())
    write_section(
        "data",
        f"""
## Data and classifier (`make bench-data`)

Machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads.

- Synthesis, 224 px: {speeds}.
- Compact classifier on the demo data ({len(ds.split("train"))} training and {len(ds.split("test"))} test images,
  8 species): {meta["train_args"]["epochs"]} epochs in {meta["metrics"]["train_seconds"]:.0f} s of training
  ({wall:.0f} s including loading images and evaluating), **test accuracy {s["accuracy"]:.1%}**
  (target band 80–95 %), expected calibration error {s["calibration"]["ece"]:.3f}.

| species | test images | accuracy |
|---|---|---|
{rows}

Commonest confusions (true → predicted):

| true | predicted | count |
|---|---|---|
{confusions}

![Confusion matrix](images/confusion_matrix.png)
""",
    )


if __name__ == "__main__":
    main()
