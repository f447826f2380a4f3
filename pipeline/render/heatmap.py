"""Heatmap overlays as PNG: numpy and Pillow only, one colour map, one fixed value range.

Each map is min-max normalised (0 is the image's least salient point, 1 its most salient, as
the I-GOS authors display them) and then coloured on the fixed range [0, 1]: cool and
transparent where nothing matters, warm and opaque where the model looked. The raw map is
stored beside the picture, so rendering can change without recomputing anything.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pipeline.methods.common import upsample

# Anchors of a perceptually ordered dark-blue → purple → orange → yellow map (like "inferno").
_ANCHORS = np.array(
    [
        [0.00, 0.05, 0.03, 0.20],
        [0.20, 0.25, 0.05, 0.45],
        [0.40, 0.55, 0.10, 0.45],
        [0.60, 0.85, 0.28, 0.20],
        [0.80, 0.98, 0.58, 0.05],
        [1.00, 0.99, 0.93, 0.45],
    ]
)
LUT = np.stack([np.interp(np.linspace(0, 1, 256), _ANCHORS[:, 0], _ANCHORS[:, c]) for c in (1, 2, 3)], axis=1)
GAMMA = 0.8  # the authors' overlay exponent: lifts middling values into view


def normalised(saliency: np.ndarray, size: int) -> np.ndarray:
    """Enlarged bilinearly to size×size and min-max scaled to [0, 1] (all zeros if the map is flat)."""
    t = torch.from_numpy(saliency.astype(np.float32))[None, None]
    s = upsample(t, (size, size))[0, 0].numpy()
    lo, hi = float(s.min()), float(s.max())
    if hi - lo <= 1e-6 * max(abs(hi), abs(lo), 1e-12):  # flat (up to interpolation rounding)
        return np.zeros_like(s)
    return (s - lo) / (hi - lo)


def overlay(image: np.ndarray, saliency: np.ndarray) -> Image.Image:
    """The image (H×W×3 uint8) with the saliency map laid over it."""
    h = normalised(saliency, image.shape[0])
    colour = LUT[np.clip((h * 255).round().astype(int), 0, 255)]
    alpha = (h**GAMMA * 0.85)[..., None]
    out = image.astype(np.float32) / 255 * (1 - alpha) + colour * alpha
    return Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))


def css_ramp() -> str:
    """The colour scale as a CSS gradient (the stops of the map, with the overlay's opacity), as
    static/explanations.css shows it beside every heatmap; a test keeps the two the same."""
    stops = (
        f"rgba({round(r * 255)}, {round(g * 255)}, {round(b * 255)}, {t**GAMMA * 0.85:.2f}) {round(t * 100)}%"
        for t, r, g, b in _ANCHORS
    )
    return f"linear-gradient(to right, {', '.join(stops)})"
