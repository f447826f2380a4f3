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


def field_mark_guide(sp: Species, size: int = 520) -> Image.Image:
    """The species drawn cleanly at `size` px with its field marks numbered and listed."""
    scene = render_scene(sp, np.random.default_rng([0, sp.cub_id]), size=size, clean=True)
    panel_w = 470
    canvas = Image.new("RGB", (size + panel_w, size), (255, 255, 255))
    canvas.paste(Image.fromarray(scene.image), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = size + 28
    draw.text((x0, 28), sp.common, fill=INK, font=_font(30))
    draw.text((x0, 68), sp.scientific, fill=MUTED, font=_font(18))
    draw.text((x0, 96), f"CUB-200-2011 class {sp.cub_id}", fill=MUTED, font=_font(15))
    y = 140
    for number, (mark, text) in enumerate(sp.marks.items(), start=1):
        ax, ay = scene.anchors[MARK_ANCHOR[mark]]
        dx, dy = MARK_OFFSET[mark]
        bx, by = ax + dx, ay + dy
        draw.line((ax, ay, bx, by), fill=INK, width=2)
        draw.ellipse((ax - 3, ay - 3, ax + 3, ay + 3), outline=INK, width=2)
        draw.ellipse((bx - 13, by - 13, bx + 13, by + 13), fill=INK)
        draw.text((bx, by), str(number), fill=(255, 255, 255), font=_font(16), anchor="mm")
        draw.ellipse((x0, y, x0 + 24, y + 24), fill=INK)
        draw.text((x0 + 12, y + 12), str(number), fill=(255, 255, 255), font=_font(15), anchor="mm")
        for k, line in enumerate(_wrap(text, 38)):
            draw.text((x0 + 36, y + 2 + 22 * k), line, fill=INK, font=_font(17))
        y += 22 * len(_wrap(text, 38)) + 18
    return canvas


def _wrap(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
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
