"""A confusion matrix as a PNG, drawn with Pillow (no plotting library)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

INK = (34, 38, 46)


def confusion_png(matrix: np.ndarray, names: list[str], title: str) -> Image.Image:
    """Cells shaded by the share of each true class (row), with the counts written in."""
    k = len(names)
    cell, left, top = 64, 230, 100
    bottom = 200
    font, small = ImageFont.load_default(size=15), ImageFont.load_default(size=13)
    img = Image.new("RGB", (left + k * cell + 30, top + k * cell + bottom), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.text((left, 20), title, fill=INK, font=ImageFont.load_default(size=18))
    d.text(
        (left, 50), "rows: true species · columns: predicted · shade: share of the row", fill=(96, 104, 116), font=small
    )
    rows = matrix.sum(1, keepdims=True).clip(min=1)
    share = matrix / rows
    for i in range(k):
        d.text((left - 10, top + i * cell + cell // 2), names[i], fill=INK, font=font, anchor="rm")
        for j in range(k):
            s = float(share[i, j])
            base = np.array([40, 110, 180]) if i == j else np.array([205, 70, 50])
            colour = tuple(int(255 - (255 - c) * min(1.0, s * 1.4)) for c in base)
            x0, y0 = left + j * cell, top + i * cell
            d.rectangle((x0, y0, x0 + cell - 2, y0 + cell - 2), fill=colour)
            if matrix[i, j]:
                ink = (255, 255, 255) if s > 0.45 else INK
                d.text(
                    (x0 + cell // 2 - 1, y0 + cell // 2 - 1), str(int(matrix[i, j])), fill=ink, font=font, anchor="mm"
                )
    for j in range(k):
        label = Image.new("RGBA", (bottom - 10, 20), (255, 255, 255, 0))
        ImageDraw.Draw(label).text((bottom - 12, 10), names[j], fill=INK, font=font, anchor="rm")
        rotated = label.rotate(60, expand=True, resample=Image.Resampling.BICUBIC)
        img.paste(rotated, (left + j * cell + cell // 2 - rotated.width + 8, top + k * cell + 4), rotated)
    return img
