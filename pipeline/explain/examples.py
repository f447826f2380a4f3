"""The examples stage: each image's nearest training images in the penultimate feature space."""

from __future__ import annotations

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
    return len(w.recs) if w.jobs(method) else 0


def run(w: Work, method: Method, params: ExamplesParams, bar: Bar) -> None:
    if not w.jobs(method):
        return
    if not w.ds.split("train"):
        raise PipelineError(f"{w.cfg.data} has no training images to draw examples from")
    run = w.run
    t0 = time.perf_counter()
    train, bank, _ = split_features(w, "train")
    queries, _ = features_and_logits(w.model, w.uint8, w.transform, w.device)
    pos = {r.id: j for j, r in enumerate(train)}
    exclude = torch.tensor([pos.get(r.id, -1) for r in w.recs])
    idx, dist = nearest(queries, bank, params.k, exclude)
    seconds = (time.perf_counter() - t0) / len(w.recs)
    needed = sorted({int(j) for j in idx.flatten()})
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
