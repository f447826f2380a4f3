"""XNN explanation cards and concept galleries as PNG (Pillow only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

INK = (34, 38, 46)
MUTED = (96, 104, 116)
BAR = (26, 127, 100)


def summary(concepts: list[int]) -> str:
    """Plain words for a card: which concepts carried the prediction."""
    if not concepts:
        return "No concept spoke for this species in this picture."
    names = [f"concept {c}" for c in concepts]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"The model saw mostly {listed}."


def card(image: Image.Image, items: Sequence[tuple[int, Image.Image, float]], text: str) -> Image.Image:
    """The picture, then each significant concept as a heatmap thumbnail with a bar for its share.

    The card never names the class, so a study can show it without giving away the model's answer.
    """
    font, small, title = (ImageFont.load_default(size=s) for s in (16, 13, 18))
    thumb, row = 112, 128
    width = 24 + 224 + 28 + thumb + 16 + 240 + 24
    height = max(24 + 224 + 70, 60 + row * max(1, len(items)) + 40)
    out = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(out)
    d.text((24, 16), "What the model saw in this picture", fill=INK, font=title)
    out.paste(image.convert("RGB").resize((224, 224), Image.Resampling.LANCZOS), (24, 48))
    total = sum(max(c, 0.0) for _, _, c in items) or 1.0
    x = 24 + 224 + 28
    for k, (concept, overlay, contribution) in enumerate(items):
        y = 48 + k * row
        out.paste(overlay.convert("RGB").resize((thumb, thumb), Image.Resampling.LANCZOS), (x, y))
        share = max(contribution, 0.0) / total
        d.text((x + thumb + 16, y + 8), f"Concept {concept}", fill=INK, font=font)
        d.rectangle((x + thumb + 16, y + 40, x + thumb + 16 + 220, y + 56), fill=(232, 235, 238))
        d.rectangle((x + thumb + 16, y + 40, x + thumb + 16 + round(220 * share), y + 56), fill=BAR)
        d.text((x + thumb + 16, y + 64), f"{share:.0%} of the evidence", fill=MUTED, font=small)
    d.text((24, height - 34), text, fill=INK, font=font)
    return out


def gallery_strip(items: Sequence[Image.Image], label: str, size: int = 140) -> Image.Image:
    """A row of overlays: where one concept fires on the training images where it is strongest."""
    font = ImageFont.load_default(size=15)
    out = Image.new("RGB", (12 + len(items) * (size + 8) + 4, size + 44), (255, 255, 255))
    ImageDraw.Draw(out).text((12, 10), label, fill=INK, font=font)
    for k, im in enumerate(items):
        out.paste(im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS), (12 + k * (size + 8), 34))
    return out


def hot_spot(saliency: np.ndarray, share: float = 0.2) -> np.ndarray:
    """The cells of a map among its most salient `share` and above half its range (a sparse map's
    spot is only its bright cells; a flat map has none)."""
    lo, hi = float(saliency.min()), float(saliency.max())
    if hi <= lo:
        return np.zeros(saliency.shape, bool)
    return (saliency >= np.quantile(saliency, 1 - share)) & (saliency > lo + 0.5 * (hi - lo))


def same_spots(maps: Sequence[np.ndarray], overlap: float = 0.5) -> list[int | None]:
    """For each concept map, the first earlier one lighting the same spot (their hot spots overlap
    by at least `overlap`, intersection over union), or None: two such concepts on one card look
    like one to a participant, so the card says so."""
    spots = [hot_spot(m) for m in maps]
    out: list[int | None] = []
    for k, s in enumerate(spots):
        match = None
        for j in range(k):
            union = (s | spots[j]).sum()
            if union and (s & spots[j]).sum() / union >= overlap:
                match = j
                break
        out.append(match)
    return out
