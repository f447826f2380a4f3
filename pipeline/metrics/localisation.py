"""Does a saliency map point at a known part? Energy-based pointing game and pointing game.

Part masks come from the synthetic gulls' segmentation (exact) or from CUB part locations (a
disc around each visible point). Saliency is non-negative and at the image's resolution.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 15  # pixels: the usual pointing-game tolerance


def energy(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Share of the saliency mass inside the mask (Wang et al.'s energy-based pointing game)."""
    s = np.clip(saliency, 0, None)
    total = float(s.sum())
    return float(s[mask].sum() / total) if total > 0 else 0.0


def pointing_hit(saliency: np.ndarray, mask: np.ndarray, tolerance: int = TOLERANCE) -> bool:
    """The saliency peak (first in row-major order on ties) lies within `tolerance` px of the mask."""
    if not mask.any():
        return False
    y, x = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    if mask[y, x]:
        return True
    if tolerance <= 0:
        return False
    # distance from the peak to the nearest mask pixel (a disc of radius `tolerance` around the part)
    ys, xs = np.nonzero(mask)
    return bool(((ys - y) ** 2 + (xs - x) ** 2).min() <= tolerance**2)


def point_mask(shape: tuple[int, int], x: float, y: float, radius: int = TOLERANCE) -> np.ndarray:
    """A disc around a part location (for CUB, where parts are points)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
