"""The examples stage: each image's nearest training images in the penultimate feature space."""

from __future__ import annotations

import json
import time

import torch

from pipeline.errors import PipelineError
from pipeline.explain.features import split_features
from pipeline.explain.registry import Method
from pipeline.explain.work import Bar, Work
from pipeline.methods.examples import ExamplesParams, nearest
from pipeline.models.images import load_uint8
from pipeline.models.train import features_and_logits


def count(w: Work, method: Method) -> int:
    """All images at once when any is unfinished: the search is one batched distance matrix."""
    return len(w.recs) if _todo(w, method) else 0


def _todo(w: Work, method: Method) -> bool:
    """Any image not done yet, or done before examples kept to the predicted class (then redone)."""
    for rec in w.recs:
        record = w.run.record(method.name, rec.id, "predicted")
        if not record.is_file():
            return True
        predicted = w.entries[rec.id]["predicted_class"]
        if any(n["true_class"] != predicted for n in json.loads(record.read_text())["neighbours"]):
            return True
    return False


def run(w: Work, method: Method, params: ExamplesParams, bar: Bar) -> None:
    if not _todo(w, method):
        return
    if not w.ds.split("train"):
        raise PipelineError(f"{w.cfg.data} has no training images to draw examples from")
    run = w.run
    t0 = time.perf_counter()
    train, bank, _ = split_features(w, "train")
    queries, _ = features_and_logits(w.model, w.uint8, w.transform, w.device)
    pos = {r.id: j for j, r in enumerate(train)}
    exclude = torch.tensor([pos.get(r.id, -1) for r in w.recs])
    # The examples explain the prediction: the nearest training images of the class the model
    # predicted. Nearest images of any class would show, when the model is wrong, pictures
    # labelled with the true species: the answer key of a verify task.
    predicted = torch.tensor([w.entries[r.id]["predicted_class"] for r in w.recs])
    classes = torch.tensor([r.class_id for r in train])
    allowed = classes[None, :] == predicted[:, None]
    idx, dist = nearest(queries, bank, params.k, exclude, allowed)
    seconds = (time.perf_counter() - t0) / len(w.recs)
    needed = sorted({int(j) for j, d in zip(idx.flatten(), dist.flatten(), strict=True) if torch.isfinite(d)})
    pics = load_uint8([w.ds.image_path(train[j]) for j in needed], w.transform)
    for j, pic in zip(needed, pics, strict=True):
        run.write_picture(train[j].id, pic.permute(1, 2, 0).numpy())
    for q, rec in enumerate(w.recs):
        neighbours = [
            {
                "image_id": train[int(j)].id,
                "true_class": train[int(j)].class_id,
                "distance": round(float(d), 5),
                "image": run.image(train[int(j)].id),
            }
            for j, d in zip(idx[q], dist[q], strict=True)
            if torch.isfinite(d)
        ]
        run.write_json(
            run.record(method.name, rec.id, "predicted"),
            {
                "kind": "examples",
                "method": method.name,
                "target": "predicted",
                "neighbours": neighbours,
                "seconds": round(seconds, 4),
            },
        )
    bar.advance(len(w.recs), method.name)
