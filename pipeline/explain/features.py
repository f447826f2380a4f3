"""Penultimate features and logits of a data split, computed once per run and cached in it.

Nearest examples compare images in this space and XNN learns its concepts from it; both read
the same cache (features/SPLIT.npz, keyed by the split's image ids).
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.data.cub import ImageRecord
from pipeline.explain.work import Work
from pipeline.io import write_npz
from pipeline.models.images import load_uint8
from pipeline.models.train import features_and_logits


def split_features(w: Work, which: str) -> tuple[list[ImageRecord], torch.Tensor, torch.Tensor]:
    """The split's records, features (N×D) and logits (N×classes), from the cache when it matches."""
    recs = w.ds.split(which)
    cache = w.run.root / "features" / f"{which}.npz"
    if cache.is_file():
        z = np.load(cache)
        if z["ids"].tolist() == [r.id for r in recs]:
            return recs, torch.from_numpy(z["features"]), torch.from_numpy(z["logits"])
    uint8 = load_uint8([w.ds.image_path(r) for r in recs], w.transform)
    feats, logits = features_and_logits(w.model, uint8, w.transform, w.device)
    write_npz(cache, ids=np.array([r.id for r in recs]), features=feats.numpy(), logits=logits.numpy())
    return recs, feats, logits
