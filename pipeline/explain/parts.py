"""Bird parts under a heatmap: the one reader of part segmentations and CUB part locations.

The heatmap stage scores each map's energy and pointing-game hit per part; XNN names a concept
by the part holding most of its heatmaps' mass. Both read the parts here, at the image's size.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pipeline.data.cub import Dataset, ImageRecord
from pipeline.data.species import BY_ID
from pipeline.metrics.localisation import TOLERANCE, energy, point_mask, pointing_hit


def segmentation(ds: Dataset, rec: ImageRecord, size: int) -> np.ndarray | None:
    """The part label of every pixel at size×size (nearest neighbour), or None without a segmentation."""
    path = ds.segmentation_path(rec)
    if path is None or not path.is_file():
        return None
    with Image.open(path) as im:
        return np.asarray(im.resize((size, size), Image.Resampling.NEAREST))


def at_image_size(saliency: torch.Tensor, size: int) -> np.ndarray:
    """A map (h×w, any resolution) upsampled to size×size, negative values cut: the mass to share out."""
    return (
        torch.nn.functional.interpolate(
            saliency[None, None].clamp(min=0), size=(size, size), mode="bilinear", align_corners=True
        )[0, 0]
        .cpu()
        .numpy()
    )


def part_masks(ds: Dataset, rec: ImageRecord, size: int, mode: str) -> tuple[dict[str, np.ndarray], int]:
    """Part name -> boolean mask at size×size, and the pointing-game tolerance that goes with them.

    With a segmentation (mode auto or segmentation) the parts are exact masks, plus
    'discriminative' (the species' field-mark parts) for the gulls, and the pointing game allows
    15 px; with CUB part locations a part is a 15 px disc around its point, which already is the
    tolerance.
    """
    masks: dict[str, np.ndarray] = {}
    seg = segmentation(ds, rec, size) if mode in ("auto", "segmentation") else None
    if seg is not None:
        for value, name in enumerate(ds.segmentation_labels):
            if name != "background":
                masks[name] = seg == value
        sp = BY_ID.get(rec.class_id)
        if sp and sp.discriminative:
            masks["discriminative"] = np.logical_or.reduce([masks[p] for p in sp.discriminative if p in masks])
        return masks, TOLERANCE
    with Image.open(ds.image_path(rec)) as im:
        w, h = im.size
    for name, (x, y, visible) in zip(ds.parts, rec.parts, strict=True):
        if visible:
            masks[name] = point_mask((size, size), x * size / w, y * size / h)
    return masks, 0


def part_scores(ds: Dataset, rec: ImageRecord, full: np.ndarray, mode: str) -> dict[str, dict[str, object]]:
    """Energy and pointing-game hit per part of a map at the image's size."""
    masks, tolerance = part_masks(ds, rec, full.shape[0], mode)
    return {
        name: {"energy": round(energy(full, m), 4), "hit": pointing_hit(full, m, tolerance)}
        for name, m in masks.items()
        if m.any()
    }


def part_shares(ds: Dataset, rec: ImageRecord, full: np.ndarray) -> dict[str, float]:
    """Share of a map's mass on each segmented part, background included (empty without a
    segmentation or without mass: such a map says nothing about where a concept lives)."""
    seg = segmentation(ds, rec, full.shape[0])
    if seg is None or full.sum() <= 0:
        return {}
    return {name: round(energy(full, seg == v), 4) for v, name in enumerate(ds.segmentation_labels)}
