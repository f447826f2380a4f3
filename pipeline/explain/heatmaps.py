"""The heatmap stage: every heatmap method's saliency in batches of images, with its overlay,
deletion/insertion curves and scores, and the energy and pointing game per bird part."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from pipeline.explain.parts import at_image_size, part_scores
from pipeline.explain.registry import Method
from pipeline.explain.work import Bar, Work
from pipeline.methods.common import ClassProbability, blurred_baseline
from pipeline.metrics.faithfulness import PROTOCOLS, deletion_insertion
from pipeline.models.images import normalise
from pipeline.render.heatmap import overlay


@dataclass
class Batch:
    """What one batch of images gives a heatmap method: tensors on the device."""

    x: torch.Tensor  # normalised images
    blurred: torch.Tensor
    targets: torch.Tensor  # class index per image


def count(w: Work, method: Method) -> int:
    return len(w.jobs(method))


def run(w: Work, method: Method, params: Any, bar: Bar) -> None:
    jobs = w.jobs(method)
    for start in range(0, len(jobs), w.cfg.batch):
        chunk = jobs[start : start + w.cfg.batch]
        _batch(w, method, chunk, params)
        bar.advance(len(chunk), method.name)


def _batch(w: Work, method: Method, chunk: list[tuple[int, str, int]], params: Any) -> None:
    assert method.saliency is not None
    pics = w.uint8[torch.tensor([i for i, _, _ in chunk])].to(w.device)
    b = Batch(
        normalise(pics, w.transform),
        blurred_baseline(pics, w.transform),
        torch.tensor([w.index[c] for *_, c in chunk], device=w.device),
    )
    t0 = time.perf_counter()
    sal = method.saliency(params, w.model, b, w.transform).float()
    seconds = (time.perf_counter() - t0) / len(chunk)
    score = ClassProbability(w.model, b.targets)
    # igos-native only where it differs from igos: maps not on the 28×28 grid.
    protocols = [p for p in w.protocols if p != "igos-native" or sal.shape[-1] != PROTOCOLS["igos"].resolution]
    curves = {p: deletion_insertion(score, b.x, sal, p, b.blurred, w.max_batch) for p in protocols}
    size = pics.shape[-1]
    run = w.run
    for k, (i, target, cls) in enumerate(chunk):
        rec = w.recs[i]
        raw = sal[k].cpu().numpy()
        stem = run.stem(method.name, rec.id, target)
        run.write_npy(f"{stem}.npy", raw)
        run.write_png(f"{stem}.png", overlay(pics[k].permute(1, 2, 0).cpu().numpy(), raw))
        curve_doc = {
            p: {
                "resolution": c.resolution,
                "removed": c.removed.tolist(),
                "deletion": c.deletion[k].tolist(),
                "insertion": c.insertion[k].tolist(),
            }
            for p, c in curves.items()
        }
        run.write_json(run.root / f"{stem}.json", curve_doc)
        local = part_scores(w.ds, rec, at_image_size(sal[k], size), w.cfg.parts_from)
        run.write_json(
            run.record(method.name, rec.id, target),
            {
                "kind": "heatmap",
                "method": method.name,
                "target": target,
                "target_class": cls,
                "raw": f"{stem}.npy",
                "overlay": f"{stem}.png",
                "curves": f"{stem}.json",
                "faithfulness": [
                    {
                        "protocol": p,
                        "resolution": c.resolution,
                        "deletion_auc": round(float(c.deletion_auc[k]), 5),
                        "insertion_auc": round(float(c.insertion_auc[k]), 5),
                    }
                    for p, c in curves.items()
                ],
                "localisation": local,
                "seconds": round(seconds, 4),
            },
        )
