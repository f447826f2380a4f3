"""`fieldmark data preview`: a contact sheet of a data set and one field-mark guide per species.

The guides are study material: a clean, evenly lit bird with its identifying marks numbered
and explained, for the instructions page of a study.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.data import cub
from pipeline.data.scene import render_scene
from pipeline.data.species import BY_ID, Species
from pipeline.io import atomic_write_bytes

INK = (34, 38, 46)
MUTED = (96, 104, 116)
MARK_ANCHOR = {
    "mantle": "wing",
    "wingtips": "wingtip",
    "bill": "beak",
    "legs": "leg_near_mid",
    "eye": "eye",
    "body": "breast",
}
MARK_OFFSET = {
    "mantle": (-10, -70),
    "wingtips": (0, 50),
    "bill": (34, -44),
    "legs": (56, 6),
    "eye": (-8, -58),
    "body": (52, 44),
}


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _png(img: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(path, buf.getvalue())


def contact_sheet(ds: cub.Dataset, per_row: int = 6, split: str = "test") -> Image.Image:
    """A row per species: its name, then `per_row` images from the split (train if test is empty)."""
    label_w, tile, gap = 210, 224, 4
    rows = []
    for cid in ds.class_ids:
        recs = [r for r in ds.split(split) if r.class_id == cid] or [r for r in ds.images if r.class_id == cid]
        rows.append((cid, recs[:per_row]))
    width = label_w + per_row * (tile + gap)
    height = len(rows) * (tile + gap) + gap
    sheet = Image.new("RGB", (width, height), (250, 250, 248))
    draw = ImageDraw.Draw(sheet)
    for i, (cid, recs) in enumerate(rows):
        y = gap + i * (tile + gap)
        name = ds.class_label(cid)
        draw.text((12, y + tile // 2 - 22), name, fill=INK, font=_font(20))
        draw.text((12, y + tile // 2 + 4), f"CUB class {cid}", fill=MUTED, font=_font(14))
        for j, rec in enumerate(recs):
            with Image.open(ds.image_path(rec)) as im:
                sheet.paste(
                    im.convert("RGB").resize((tile, tile), Image.Resampling.BICUBIC), (label_w + j * (tile + gap), y)
                )
    return sheet


GUIDE_WIDTH = 520
GUIDE_TEXT = 21  # px at full size: about 15 px on a 390 px phone, where the guide is shown ~370 px wide


def field_mark_guide(sp: Species, size: int = 520) -> Image.Image:
    """The species drawn cleanly at `size` px with its field marks numbered, and below it the
    name and the numbered marks. Portrait, so that a phone shows it at most of its width and the
    text stays readable; no data-set ids (participants see this)."""
    scene = render_scene(sp, np.random.default_rng([0, sp.cub_id]), size=size, clean=True)
    width = max(size, GUIDE_WIDTH)
    x_pic, pad = (width - size) // 2, 24
    body = _font(GUIDE_TEXT)
    lines = [_wrap_px(text, body, width - 2 * pad - 40) for text in sp.marks.values()]
    height = size + pad + 40 + 30 + 16 + sum(28 * len(ls) + 16 for ls in lines) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(Image.fromarray(scene.image), (x_pic, 0))
    draw = ImageDraw.Draw(canvas)
    for number, mark in enumerate(sp.marks, start=1):
        ax, ay = scene.anchors[MARK_ANCHOR[mark]]
        dx, dy = MARK_OFFSET[mark]
        ax, ay = ax + x_pic, ay
        bx, by = ax + dx * size / 520, ay + dy * size / 520
        r = max(8, round(13 * size / 520))
        draw.line((ax, ay, bx, by), fill=INK, width=2)
        draw.ellipse((ax - 3, ay - 3, ax + 3, ay + 3), outline=INK, width=2)
        draw.ellipse((bx - r, by - r, bx + r, by + r), fill=INK)
        draw.text((bx, by), str(number), fill=(255, 255, 255), font=_font(max(11, round(16 * size / 520))), anchor="mm")
    y = size + pad
    draw.text((pad, y), sp.common, fill=INK, font=_font(34))
    draw.text((pad, y + 44), sp.scientific, fill=MUTED, font=_font(21))
    y += 44 + 30 + 16
    for number, ls in enumerate(lines, start=1):
        draw.ellipse((pad, y, pad + 28, y + 28), fill=INK)
        draw.text((pad + 14, y + 14), str(number), fill=(255, 255, 255), font=_font(18), anchor="mm")
        for k, line in enumerate(ls):
            draw.text((pad + 40, y + 2 + 28 * k), line, fill=INK, font=body)
        y += 28 * len(ls) + 16
    return canvas


def _wrap_px(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Words in lines no wider than `width` px in this font."""
    lines, cur = [], ""
    for word in text.split():
        trial = f"{cur} {word}".strip()
        if cur and font.getlength(trial) > width:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    return [*lines, cur] if cur else lines


def write_previews(ds: cub.Dataset, out: Path, per_row: int = 6) -> list[Path]:
    """Write the contact sheet and, for the gull species present, their field-mark guides."""
    written = [out / "contact_sheet.png"]
    _png(contact_sheet(ds, per_row), written[0])
    for cid in ds.class_ids:
        if cid in BY_ID:
            sp = BY_ID[cid]
            path = out / f"guide_{sp.cub_id:03d}_{sp.name}.png"
            _png(field_mark_guide(sp), path)
            written.append(path)
    return written
