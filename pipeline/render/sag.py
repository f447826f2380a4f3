"""Structured attention graph diagrams: SVG for participants, PNG for papers.

Participants (`diagram_svg`) see each root as the picture itself with only the root's squares in
colour, the share of the model's confidence they keep, and beneath it what is left when one of
those squares is hidden as well (that square outlined in red). The SVG is one self-contained file
served under its own address and shown as an <img>: nothing in it to focus, nothing that names
the image or the class. Papers (`diagram_png`) get the whole graph, every level, drawn with Pillow.
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

from app.assets.manifest import SagGraph, SagNode

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


def cell_box(patch: int, grid: int, size: float) -> tuple[float, float, float, float]:
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


# -- the participants' diagram ---------------------------------------------------------------
# A lay reader sees, for each root, the picture itself with only the root's squares in colour and
# the share of confidence they keep, then what is left when one of those squares is hidden too.
# Deeper levels (two squares hidden) stay in the graph document and the paper figure: for a
# participant they repeat the same lesson at thumbnail size. Two layouts from one function: wide
# for a desktop column beside the picture, narrow for a phone; the page picks one with <picture>.
# Every number is a share of the model's confidence on the whole picture, as in the legend.

GREEN = "#1a7f64"
RED = "#d7263d"
TRACK = "#e4e7ea"
WIDE, NARROW = 516, 240  # design widths in CSS px: at most, beside the picture / scaled to a phone or a column


def shown_percent(c: float) -> str:
    """A share of the whole picture's confidence; more than the whole picture reads '100%+'."""
    return "100%+" if c > 1.0 else f"{round(c * 100)}%"


def reveal(image: np.ndarray, patches: Sequence[int], grid: int, size: int) -> Image.Image:
    """The picture with `patches` in full colour and the rest faded (dimmed, greyed, never black)."""
    w = patch_weights(patches, grid, image.shape[0])[..., None]
    img = image.astype(np.float32)
    grey = img.mean(axis=2, keepdims=True)
    faded = 0.4 * grey + 0.6 * 96.0  # towards one mid-dark grey: bright and dark pictures alike
    out = img * w + faded * (1 - w)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8)).resize((size, size), Image.Resampling.LANCZOS)


def outline(patches: Sequence[int], grid: int, size: float) -> list[tuple[float, float, float, float]]:
    """The border of the union of the patches' cells: the sides whose neighbour is not in the set."""
    cells = set(patches)
    out = []
    for p in sorted(cells):
        r, c = divmod(p, grid)
        x0, y0, x1, y1 = cell_box(p, grid, size)
        if r == 0 or p - grid not in cells:
            out.append((x0, y0, x1, y0))
        if r == grid - 1 or p + grid not in cells:
            out.append((x0, y1, x1, y1))
        if c == 0 or p - 1 not in cells:
            out.append((x0, y0, x0, y1))
        if c == grid - 1 or p + 1 not in cells:
            out.append((x1, y0, x1, y1))
    return out


@dataclass
class Branch:
    """A root and its children (the root with one square hidden), most confident child first."""

    root: SagNode
    children: list[tuple[SagNode, int]]  # (child, the patch hidden)


def branches(g: SagGraph) -> list[Branch]:
    nodes = {n.id: n for n in g.nodes}
    by_set = {tuple(n.patches): n for n in g.nodes}
    out = []
    for patches in g.roots:
        root = by_set[tuple(patches)]
        kids = [(nodes[e.child], e.removed_patch) for e in g.edges if e.parent == root.id]
        kids.sort(key=lambda k: (-k[0].confidence, k[1]))
        out.append(Branch(root, kids))
    return out


def _jpeg_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


class _Svg:
    """Drawing primitives of the diagram, in CSS px."""

    def __init__(self, image: np.ndarray, grid: int) -> None:
        self.image, self.grid = image, grid
        self.parts: list[str] = []

    def view(self, x: float, y: float, size: float, patches: Sequence[int], hidden: int | None) -> None:
        pic = reveal(self.image, patches, self.grid, round(size * 2))  # 2× for sharp phone screens
        self.parts.append(
            f'<image x="{x:.1f}" y="{y:.1f}" width="{size:.1f}" height="{size:.1f}" href="{_jpeg_uri(pic)}"/>'
        )
        if hidden is None:
            for x0, y0, x1, y1 in outline(patches, self.grid, size):
                self.parts.append(
                    f'<line x1="{x + x0:.1f}" y1="{y + y0:.1f}" x2="{x + x1:.1f}" y2="{y + y1:.1f}" '
                    f'stroke="{GREEN}" stroke-width="2.5" stroke-linecap="square"/>'
                )
        else:
            x0, y0, x1, y1 = cell_box(hidden, self.grid, size)
            self.parts.append(
                f'<rect x="{x + x0:.1f}" y="{y + y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
                f'fill="none" stroke="{RED}" stroke-width="3"/>'
            )

    def text(self, x: float, y: float, s: str, size: int, colour: str = INK, bold: bool = False) -> None:
        weight = ' font-weight="700"' if bold else ""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{colour}"{weight}>{escape(s)}</text>'
        )

    def bar(self, x: float, y: float, width: float, c: float) -> None:
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="6" rx="3" fill="{TRACK}"/>')
        fill = width * min(max(c, 0.0), 1.0)
        if fill > 0:
            colour = hexcolour(confidence_colour(c))
            self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{fill:.1f}" height="6" rx="3" fill="{colour}"/>')

    def share(self, x: float, y: float, width: float, c: float, size: int) -> None:
        """A share of confidence: the number, then a bar as long as the share."""
        self.text(x, y, shown_percent(c), size, hexcolour(confidence_colour(c)), bold=True)
        self.bar(x, y + 7, width, c)


def diagram_svg(g: SagGraph, image: np.ndarray, narrow: bool = False) -> str:
    """The participants' diagram: a self-contained SVG (pictures embedded) served as one file.

    It never names the class, the image or the file, so a study can show it without giving away
    the model's answer; it has no ids and nothing to focus (a page shows it as an <img>).
    """
    svg = _Svg(image, g.grid)
    bs = branches(g)
    height = _narrow(svg, bs) if narrow else _wide(svg, bs)
    if any(n.confidence > 1 for b in bs for n in [b.root, *(k for k, _ in b.children)]):
        height += 8
        svg.text(0, height + 14, "100%+: even more sure than", 13, MUTED)
        svg.text(0, height + 31, "on the whole picture", 13, MUTED)
        height += 39
    width = NARROW if narrow else _wide_width(len(bs))
    roots = len(bs)
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" font-family="system-ui, -apple-system, sans-serif">',
        f"<title>{roots} small part{'s' if roots != 1 else ''} of the picture that each keep the model "
        "nearly as sure as the whole picture, and what is left when one square of them is hidden</title>",
    ]
    return "\n".join([*head, *svg.parts, "</svg>"])


WIDE_GAP, WIDE_MAX_COLUMN = 14, 220.0


def _wide_column(n: int) -> float:
    return min(WIDE_MAX_COLUMN, (WIDE - WIDE_GAP * (max(1, n) - 1)) / max(1, n))


def _wide_width(n: int) -> int:
    """As wide as its columns (at most WIDE): one root does not claim the whole column."""
    return round(max(1, n) * _wide_column(n) + WIDE_GAP * (max(1, n) - 1))


def _wide(svg: _Svg, bs: list[Branch]) -> float:
    """Roots side by side, each with its children two by two beneath."""
    col = _wide_column(len(bs))
    bottom = 0.0
    for k, b in enumerate(bs):
        x = k * (col + WIDE_GAP)
        svg.view(x, 0, col, b.root.patches, None)
        y = col + 22
        svg.share(x, y, col, b.root.confidence, 20)
        if not b.root.patches:  # the blurred picture alone is enough: say so, there is nothing outlined
            y += 32
            svg.text(x, y, "with every square hidden", 14, MUTED)
        if b.children:
            y += 34
            svg.text(x, y, "Hide one square:", 14, MUTED)
            y += 8
            cw = (col - 8) / 2
            for j, (child, hidden) in enumerate(b.children):
                cx, cy = x + (j % 2) * (cw + 8), y + (j // 2) * (cw + 36)
                svg.view(cx, cy, cw, child.patches, hidden)
                svg.share(cx, cy + cw + 17, cw, child.confidence, 15)
            y += ((len(b.children) + 1) // 2) * (cw + 36) - 8
        bottom = max(bottom, y + 10)
    return bottom


def _narrow(svg: _Svg, bs: list[Branch]) -> float:
    """One root per block: its picture across the width, its share, its children three in a row.

    Designed at 240 px: a page scales it up to a phone's width (about 1.5×) and shows it nearly
    1:1 in a narrow desktop column (the counterfactual task's), where its smallest text stays 12 px.
    """
    gap = 8.0
    y = 0.0
    for k, b in enumerate(bs):
        if k:
            svg.parts.append(f'<line x1="0" y1="{y - 12:.1f}" x2="{NARROW}" y2="{y - 12:.1f}" stroke="{TRACK}"/>')
        svg.view(0, y, NARROW, b.root.patches, None)
        y += NARROW + 24
        svg.share(0, y, NARROW, b.root.confidence, 22)
        if not b.root.patches:
            y += 32
            svg.text(0, y, "with every square hidden", 13, MUTED)
        if b.children:
            y += 34
            svg.text(0, y, "Hide one square:", 13, MUTED)
            y += 8
            cw = (NARROW - 2 * gap) / 3
            for j, (child, hidden) in enumerate(b.children):
                cx, cy = (j % 3) * (cw + gap), y + (j // 3) * (cw + 34)
                svg.view(cx, cy, cw, child.patches, hidden)
                svg.share(cx, cy + cw + 17, cw, child.confidence, 14)
            y += ((len(b.children) + 2) // 3) * (cw + 34) - 8
        y += 36
    return y - 26


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
