"""Structured attention graph diagrams: SVG for the browser, PNG for papers, from one layout.

One column per root. Each node is a thumbnail with only its patches bright (the rest dimmed),
its confidence as a number and a colour, and — for every edge into it — the patch just removed
outlined, thicker for a bigger drop. Edges carry the drop as a label. In the SVG each node is
focusable; hovering or focusing enlarges its thumbnail (CSS only, so it also works without
JavaScript, where the diagram is a static figure).
"""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.assets.manifest import SagGraph

THUMB = 104
PAD = 8
LABEL = 26
BOX_W, BOX_H = THUMB + 2 * PAD, THUMB + PAD + LABEL
GAP_X, GAP_Y = 18, 46
LEFT = 200  # the full image with its patch grid
TOP = 44
MAX_PER_ROW = 4
DIM = 0.22  # brightness of the patches that are not in a node
INK = "#22262e"
MUTED = "#606874"


def confidence_colour(c: float) -> tuple[int, int, int]:
    """Green when the model keeps its confidence, amber in between, grey when it is lost."""
    stops = [(0.0, (138, 143, 152)), (0.5, (208, 138, 28)), (0.9, (26, 127, 100)), (1.0, (26, 127, 100))]
    c = min(max(c, 0.0), 1.0)
    for (x0, c0), (x1, c1) in itertools.pairwise(stops):
        if c <= x1:
            t = (c - x0) / (x1 - x0) if x1 > x0 else 0.0
            return tuple(round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True))  # type: ignore[return-value]
    return stops[-1][1]


def hexcolour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def percent(c: float) -> str:
    """Confidence as shown: capped at 100 %, with a mark when the measured value is higher."""
    return "100%*" if c > 1.0 else f"{round(c * 100)}%"


def patch_weights(patches: Sequence[int], grid: int, size: int) -> np.ndarray:
    """The soft (bilinear, aligned-corner) coverage of a patch set at size×size."""
    g = np.zeros((grid, grid), np.float32)
    for p in patches:
        g[p // grid, p % grid] = 1.0
    axis = np.linspace(0, grid - 1, size)
    i0 = np.clip(np.floor(axis).astype(int), 0, grid - 2)
    t = axis - i0
    rows = g[i0] * (1 - t)[:, None] + g[i0 + 1] * t[:, None]
    return rows[:, i0] * (1 - t)[None, :] + rows[:, i0 + 1] * t[None, :]


def thumbnail(image: np.ndarray, patches: Sequence[int], grid: int, size: int = THUMB) -> Image.Image:
    """The image with only `patches` at full brightness."""
    w = patch_weights(patches, grid, image.shape[0])[..., None]
    out = image.astype(np.float32) * (DIM + (1 - DIM) * w)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)).resize((size, size), Image.Resampling.LANCZOS)


def model_view(image: np.ndarray, baseline: np.ndarray, patches: Sequence[int], grid: int) -> Image.Image:
    """What the model saw for a patch set: the image where the patches are, the baseline elsewhere."""
    w = patch_weights(patches, grid, image.shape[0])[..., None]
    out = image.astype(np.float32) * w + baseline.astype(np.float32) * (1 - w)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def cell_box(patch: int, grid: int, size: int) -> tuple[float, float, float, float]:
    """The square where a patch dominates (its tent is highest), in a size×size thumbnail."""
    step = (size - 1) / (grid - 1)
    cy, cx = (patch // grid) * step, (patch % grid) * step
    h = step / 2
    return max(0.0, cx - h), max(0.0, cy - h), min(size - 1.0, cx + h), min(size - 1.0, cy + h)


def drop_stroke(drop: float) -> float:
    """Outline width by confidence drop, in the original's three strengths."""
    return 1.5 if drop < 0.2 else 3.0 if drop < 0.6 else 5.0


@dataclass
class Placed:
    node: int
    x: float  # top-left of the node box
    y: float


@dataclass
class Layout:
    placed: dict[int, Placed]
    width: int
    height: int
    columns: list[tuple[float, float]]  # x range of each root's column
    hidden: int  # nodes left out of a crowded row (still in the graph document)


def layout(g: SagGraph) -> Layout:
    """Columns by root, rows by depth; a node reached from two roots sits in the first one's column."""
    children: dict[int, list[int]] = {}
    for e in g.edges:
        children.setdefault(e.parent, []).append(e.child)
    by_set = {tuple(n.patches): n.id for n in g.nodes}
    column_of: dict[int, int] = {}
    rows: list[dict[int, list[int]]] = []
    for c, root in enumerate(g.roots):
        rid = by_set[tuple(root)]
        levels: dict[int, list[int]] = {}
        queue = [(rid, 0)]
        while queue:
            nid, depth = queue.pop(0)
            if nid in column_of:
                continue
            column_of[nid] = c
            levels.setdefault(depth, []).append(nid)
            queue += [(k, depth + 1) for k in children.get(nid, [])]
        rows.append(levels)
    placed: dict[int, Placed] = {}
    columns: list[tuple[float, float]] = []
    hidden = 0
    x: float = LEFT
    depth_max = max((max(levels) for levels in rows if levels), default=0)
    for levels in rows:
        width = max(min(len(v), MAX_PER_ROW) for v in levels.values()) * (BOX_W + GAP_X) - GAP_X
        for depth, ids in levels.items():
            shown = ids[:MAX_PER_ROW]
            hidden += len(ids) - len(shown)
            row_w = len(shown) * (BOX_W + GAP_X) - GAP_X
            x0 = x + (width - row_w) / 2
            for k, nid in enumerate(shown):
                placed[nid] = Placed(nid, x0 + k * (BOX_W + GAP_X), TOP + depth * (BOX_H + GAP_Y))
        columns.append((x, x + width))
        x += width + 2 * GAP_X
    height = TOP + (depth_max + 1) * (BOX_H + GAP_Y) + 24
    return Layout(placed, int(x), int(max(height, TOP + 200)), columns, hidden)


def _png_b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


def diagram_svg(g: SagGraph, image: np.ndarray, class_name: str | None = None) -> str:
    """A self-contained SVG (thumbnails embedded) of the graph next to the full image.

    Without `class_name` it never names the class, so a study can show it without giving away
    the model's answer; the confidences are always relative to the model's own answer.
    """
    answer = f'"{escape(class_name)}"' if class_name else "its answer"
    lay = layout(g)
    nodes = {n.id: n for n in g.nodes}
    over = any(n.confidence > 1 for n in g.nodes if n.id in lay.placed)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sag" width="{lay.width}" height="{lay.height}" '
        f'viewBox="0 0 {lay.width} {lay.height}" role="img" aria-labelledby="sag-title-{g.image_id} '
        f'sag-desc-{g.image_id}" font-family="system-ui, sans-serif">',
        f'<title id="sag-title-{g.image_id}">How the model keeps its confidence in {answer}: '
        f"{len(g.roots)} small set{'s' if len(g.roots) != 1 else ''} of patches</title>",
        f'<desc id="sag-desc-{g.image_id}">Each column starts from a set of patches that alone keeps at least '
        f"{round(g.threshold * 100)}% of the model's confidence; each step down removes one patch "
        "(outlined in red) and shows how much confidence is left.</desc>",
        "<style>.sag-node{cursor:zoom-in;outline:none}.sag-node image{transform-box:fill-box;"
        "transform-origin:center;transition:transform .15s}.sag-node:hover image,.sag-node:focus image"
        "{transform:scale(2.2)}.sag-node:focus .frame{stroke-width:4}.sag-edge text{font-size:12px}</style>",
    ]
    img = Image.fromarray(image).resize((168, 168), Image.Resampling.LANCZOS)
    out.append(f'<text x="16" y="{TOP - 14}" fill="{INK}" font-size="14" font-weight="600">Full image</text>')
    out.append(f'<image x="16" y="{TOP}" width="168" height="168" href="data:image/png;base64,{_png_b64(img)}"/>')
    step = 167 / (g.grid - 1)
    for k in range(g.grid - 1):  # the patch grid: where one patch's influence gives way to the next
        edge_at = (k + 0.5) * step
        out.append(
            f'<line x1="{16 + edge_at:.1f}" y1="{TOP}" x2="{16 + edge_at:.1f}" y2="{TOP + 168}" stroke="#fff" '
            'stroke-opacity=".5" stroke-width="1"/>'
        )
        out.append(
            f'<line x1="16" y1="{TOP + edge_at:.1f}" x2="184" y2="{TOP + edge_at:.1f}" stroke="#fff" '
            'stroke-opacity=".5" stroke-width="1"/>'
        )
    caption = f"{escape(class_name)}: p = {g.p_full:.2f} (100%)" if class_name else "the model's confidence: 100%"
    out.append(f'<text x="16" y="{TOP + 190}" fill="{MUTED}" font-size="12">{caption}</text>')
    for e in g.edges:
        if e.parent not in lay.placed or e.child not in lay.placed:
            continue
        a, b = lay.placed[e.parent], lay.placed[e.child]
        x1, y1, x2, y2 = a.x + BOX_W / 2, a.y + BOX_H, b.x + BOX_W / 2, b.y
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        width = 1 + 3 * min(max(e.drop, 0.0), 1.0)
        out.append(
            f'<g class="sag-edge"><line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{MUTED}" stroke-width="{width:.1f}"/><text x="{mx + 6:.1f}" y="{my + 4:.1f}" '
            f'fill="#b3261e">−{round(max(e.drop, 0.0) * 100)}%</text></g>'
        )
    incoming: dict[int, list[tuple[int, float]]] = {}
    for e in g.edges:
        incoming.setdefault(e.child, []).append((e.removed_patch, e.drop))
    for nid, pl in lay.placed.items():
        n = nodes[nid]
        colour = hexcolour(confidence_colour(n.confidence))
        thumb = thumbnail(image, n.patches, g.grid)
        label = ", ".join(str(p) for p in n.patches) or "none"
        out.append(
            f'<g class="sag-node" id="sag-node-{g.image_id}-{nid}" tabindex="0" data-node="{nid}" '
            f'data-confidence="{n.confidence:.4f}" data-patches="{label}">'
        )
        out.append(
            f"<title>patches {label}: {percent(n.confidence)} of the full image's confidence"
            f"{' (measured ' + str(round(n.confidence * 100)) + '%)' if n.confidence > 1 else ''}</title>"
        )
        out.append(
            f'<rect class="frame" x="{pl.x:.1f}" y="{pl.y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="6" '
            f'fill="#fff" stroke="{colour}" stroke-width="{3 if n.root else 2}"/>'
        )
        ix, iy = pl.x + PAD, pl.y + PAD
        out.append(
            f'<image x="{ix:.1f}" y="{iy:.1f}" width="{THUMB}" height="{THUMB}" '
            f'href="data:image/png;base64,{_png_b64(thumb)}"/>'
        )
        for patch, drop in incoming.get(nid, []):
            x0, y0, x1, y1 = cell_box(patch, g.grid, THUMB)
            out.append(
                f'<rect x="{ix + x0:.1f}" y="{iy + y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
                f'fill="none" stroke="#d7263d" stroke-width="{drop_stroke(drop)}"/>'
            )
        out.append(
            f'<text x="{pl.x + BOX_W / 2:.1f}" y="{pl.y + BOX_H - 8:.1f}" text-anchor="middle" '
            f'font-size="16" font-weight="700" fill="{colour}">{percent(n.confidence)}</text></g>'
        )
    notes = []
    if over:
        notes.append("* the model was more confident on these patches alone than on the full image")
    if lay.hidden:
        notes.append(f"{lay.hidden} more nodes are in the graph data but not drawn")
    for k, note in enumerate(notes):
        out.append(
            f'<text x="{LEFT}" y="{lay.height - 8 - 16 * (len(notes) - 1 - k)}" fill="{MUTED}" '
            f'font-size="12">{escape(note)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def diagram_png(g: SagGraph, image: np.ndarray, class_name: str) -> Image.Image:
    """The same diagram drawn with Pillow (no SVG renderer needed), for papers."""
    lay = layout(g)
    nodes = {n.id: n for n in g.nodes}
    scale = 2  # print resolution
    canvas = Image.new("RGB", (lay.width * scale, lay.height * scale), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14 * scale)
    small = ImageFont.load_default(size=12 * scale)
    bold = ImageFont.load_default(size=16 * scale)

    def s(v: float) -> int:
        return round(v * scale)

    d.text((s(16), s(TOP - 24)), "Full image", fill=INK, font=font)
    canvas.paste(Image.fromarray(image).resize((s(168), s(168)), Image.Resampling.LANCZOS), (s(16), s(TOP)))
    d.text((s(16), s(TOP + 180)), f"{class_name}: p = {g.p_full:.2f} (100%)", fill=MUTED, font=small)
    for e in g.edges:
        if e.parent in lay.placed and e.child in lay.placed:
            a, b = lay.placed[e.parent], lay.placed[e.child]
            x1, y1, x2, y2 = a.x + BOX_W / 2, a.y + BOX_H, b.x + BOX_W / 2, b.y
            d.line((s(x1), s(y1), s(x2), s(y2)), fill=MUTED, width=s(1 + 3 * min(max(e.drop, 0.0), 1.0)))
            d.text(
                (s((x1 + x2) / 2 + 6), s((y1 + y2) / 2 - 6)),
                f"-{round(max(e.drop, 0.0) * 100)}%",
                fill="#b3261e",
                font=small,
            )
    incoming: dict[int, list[tuple[int, float]]] = {}
    for e in g.edges:
        incoming.setdefault(e.child, []).append((e.removed_patch, e.drop))
    for nid, pl in lay.placed.items():
        n = nodes[nid]
        colour = confidence_colour(n.confidence)
        d.rounded_rectangle(
            (s(pl.x), s(pl.y), s(pl.x + BOX_W), s(pl.y + BOX_H)),
            radius=s(6),
            fill="white",
            outline=colour,
            width=s(3 if n.root else 2),
        )
        ix, iy = pl.x + PAD, pl.y + PAD
        canvas.paste(thumbnail(image, n.patches, g.grid, s(THUMB)), (s(ix), s(iy)))
        for patch, drop in incoming.get(nid, []):
            x0, y0, x1, y1 = cell_box(patch, g.grid, THUMB)
            d.rectangle(
                (s(ix + x0), s(iy + y0), s(ix + x1), s(iy + y1)), outline=(215, 38, 61), width=s(drop_stroke(drop))
            )
        d.text((s(pl.x + BOX_W / 2), s(pl.y + BOX_H - 14)), percent(n.confidence), fill=colour, font=bold, anchor="mm")
    if any(n.confidence > 1 for n in g.nodes if n.id in lay.placed):
        d.text(
            (s(LEFT), s(lay.height - 20)),
            "* the model was more confident on these patches alone than on the full image",
            fill=MUTED,
            font=small,
        )
    return canvas
