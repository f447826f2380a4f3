"""Runners for `fieldmark model train|evaluate|predict`: files in, files out, progress shown."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import provenance
from pipeline.data.cub import Dataset, ImageRecord, dataset_hash, read_dataset
from pipeline.devices import resolve_device
from pipeline.errors import PipelineError
from pipeline.io import atomic_write_bytes, atomic_write_text
from pipeline.models import checkpoint
from pipeline.models.architectures import ARCHS, LAST_CONV_LAYER, PENULTIMATE_LAYER, build
from pipeline.models.evaluation import summary
from pipeline.models.images import default_transform, load_uint8
from pipeline.models.train import TrainConfig, predict_probs, train
from pipeline.render.confusion import confusion_png

Progress = Callable[[int, int], None]


def _images(ds: Dataset, recs: list[ImageRecord], transform: dict[str, Any], progress: Progress | None) -> torch.Tensor:
    return load_uint8([ds.image_path(r) for r in recs], transform, progress)


def train_model(
    data: Path,
    arch: str,
    out: Path,
    cfg: TrainConfig,
    device_name: str = "auto",
    weights: Path | None = None,
    from_scratch: bool = False,
    on_load: Progress | None = None,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train, evaluate on the test split, and write a checkpoint with full provenance."""
    if arch not in ARCHS:
        raise PipelineError(f"--arch {arch!r}: use one of {', '.join(ARCHS)}")
    if arch != "compact" and weights is None and not from_scratch:
        raise PipelineError(
            f"{arch} needs ImageNet weights from a local file: pass --weights FILE "
            f"(torchvision's {arch} .pth), or --from-scratch to start from random weights"
        )
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise PipelineError("--epochs and --batch-size must be at least 1 and --lr positive")
    device = resolve_device(device_name)
    ds = read_dataset(data)
    train_recs, test_recs = ds.split("train"), ds.split("test")
    if not train_recs:
        raise PipelineError(f"{data} has no training images (train_test_split.txt marks none with 1)")
    class_ids = ds.class_ids
    index = {c: i for i, c in enumerate(class_ids)}
    transform = default_transform()
    torch.manual_seed(cfg.seed)
    model = build(arch, len(class_ids), weights)
    x = _images(ds, train_recs, transform, on_load)
    y = torch.tensor([index[r.class_id] for r in train_recs])
    t0 = time.perf_counter()
    history = train(model, x, y, transform, cfg, device, on_step)
    seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {"train_seconds": round(seconds, 1)}
    if test_recs:
        probs = predict_probs(model, _images(ds, test_recs, transform, None), transform, device)
        truth = np.array([index[r.class_id] for r in test_recs])
        s = summary(probs, truth, [ds.class_label(c) for c in class_ids])
        metrics.update(
            test_accuracy=s["accuracy"],
            test_n=s["n"],
            per_class=s["per_class"],
            top_confusions=s["top_confusions"],
            ece=s["calibration"]["ece"],
        )
    meta = {
        "arch": arch,
        "class_ids": class_ids,
        "class_names": [ds.class_label(c) for c in class_ids],
        "class_folders": [ds.classes[c] for c in class_ids],
        "transform": transform,
        "layers": {"last_conv": LAST_CONV_LAYER, "penultimate": PENULTIMATE_LAYER, "feature_dim": model.feature_dim},
        "train_args": {
            **asdict(cfg),
            "arch": arch,
            "weights": str(weights) if weights else None,
            "weights_hash": provenance.file_hash(weights) if weights else None,
            "data": str(data),
        },
        "data_hash": dataset_hash(ds),
        "metrics": metrics,
        "history": history,
        "provenance": {
            "code_version": provenance.code_version(),
            "created": provenance.now(),
            "device": str(device),
            "seed": cfg.seed,
            "libraries": provenance.library_versions("torch", "torchvision", "numpy", "pillow"),
        },
    }
    checkpoint.save(out, model, meta)
    return meta


def _load_for(data: Path, model_path: Path, split: str) -> tuple[checkpoint.LoadedModel, Dataset, list[ImageRecord]]:
    lm = checkpoint.load(model_path)
    ds = read_dataset(data)
    if ds.class_ids != lm.class_ids:
        raise PipelineError(
            f"{model_path} was trained on classes {lm.class_ids}, but {data} has {ds.class_ids}; "
            "use the data set the model was trained for"
        )
    try:
        recs = ds.split(split)
    except ValueError as exc:
        raise PipelineError(f"--split: {exc}") from None
    if not recs:
        raise PipelineError(f"{data} has no {split} images")
    return lm, ds, recs


def _probs(
    lm: checkpoint.LoadedModel, ds: Dataset, recs: list[ImageRecord], device_name: str, progress: Progress | None
) -> np.ndarray:
    device = resolve_device(device_name)
    return predict_probs(lm.model, _images(ds, recs, lm.transform, progress), lm.transform, device)


def evaluate_model(
    model_path: Path, data: Path, out: Path, split: str = "test", device: str = "auto", progress: Progress | None = None
) -> dict[str, Any]:
    """Write per-class accuracy, the confusion matrix (CSV and PNG) and a calibration summary."""
    lm, ds, recs = _load_for(data, model_path, split)
    probs = _probs(lm, ds, recs, device, progress)
    index = {c: i for i, c in enumerate(lm.class_ids)}
    truth = np.array([index[r.class_id] for r in recs])
    s = summary(probs, truth, lm.class_names)
    s.update(
        model=str(model_path),
        model_hash=provenance.file_hash(model_path),
        data=str(data),
        split=split,
        created=provenance.now(),
    )
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["class_id", "class", "n", "correct", "accuracy"])
    for cid, row in zip(lm.class_ids, s["per_class"], strict=True):
        w.writerow([cid, row["class"], row["n"], row["correct"], row["accuracy"]])
    atomic_write_text(out / "per_class_accuracy.csv", buf.getvalue())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["true \\ predicted", *lm.class_names])
    for name, row in zip(lm.class_names, s["confusion"], strict=True):
        w.writerow([name, *row])
    atomic_write_text(out / "confusion_matrix.csv", buf.getvalue())
    png = io.BytesIO()
    confusion_png(
        np.array(s["confusion"]),
        lm.class_names,
        f"{lm.meta['arch']} on {split} split: {s['accuracy']:.1%} of {s['n']} correct",
    ).save(png, "PNG")
    atomic_write_bytes(out / "confusion_matrix.png", png.getvalue())
    atomic_write_text(out / "calibration.json", json.dumps(s["calibration"], indent=2))
    atomic_write_text(out / "metrics.json", json.dumps(s, indent=2))
    return s


PREDICTION_COLUMNS = (
    "image_id",
    "image_name",
    "split",
    "true_class_id",
    "true_class",
    "predicted_class_id",
    "predicted_class",
    "confidence",
    "correct",
)


def predict_table(
    model_path: Path, data: Path, out: Path, split: str = "test", device: str = "auto", progress: Progress | None = None
) -> list[dict[str, Any]]:
    """The predictions table every study picks trials from: one row per image."""
    lm, ds, recs = _load_for(data, model_path, split)
    probs = _probs(lm, ds, recs, device, progress)
    ids = lm.class_ids
    rows = []
    for rec, p in zip(recs, probs, strict=True):
        k = int(p.argmax())
        rows.append(
            {
                "image_id": rec.id,
                "image_name": rec.name,
                "split": "train" if rec.is_train else "test",
                "true_class_id": rec.class_id,
                "true_class": ds.class_label(rec.class_id),
                "predicted_class_id": ids[k],
                "predicted_class": lm.class_names[k],
                "confidence": round(float(p[k]), 6),
                "correct": int(ids[k] == rec.class_id),
                **{f"p_{cid}": round(float(v), 6) for cid, v in zip(ids, p, strict=True)},
            }
        )
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[*PREDICTION_COLUMNS, *(f"p_{c}" for c in ids)])
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out, buf.getvalue())
    return rows
