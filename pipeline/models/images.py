"""Images to tensors, the one way every model and explanation method sees them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_transform(size: int = 224) -> dict[str, Any]:
    """Squash to size×size (no crop, as the I-GOS and SAG authors do), ImageNet normalisation."""
    return {"resize": "squash", "size": size, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def load_uint8(
    paths: Sequence[Path], transform: dict[str, Any], progress: Callable[[int, int], None] | None = None
) -> torch.Tensor:
    """Read and resize images into one N×3×S×S uint8 tensor (compact enough to keep in memory)."""
    size = int(transform["size"])
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            rgb = im.convert("RGB")
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            out[i] = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)
        if progress and (i + 1) % 50 == 0:
            progress(i + 1, len(paths))
    if progress:
        progress(len(paths), len(paths))
    return out


def normalise(x: torch.Tensor, transform: dict[str, Any]) -> torch.Tensor:
    """uint8 (or [0,1] float) N×3×H×W → the model's normalised float input."""
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    mean = torch.tensor(transform["mean"], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(transform["std"], device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
