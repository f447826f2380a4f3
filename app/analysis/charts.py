"""SVG charts for the analysis report: drawn by hand, small, readable, with no plotting library.

Every chart scales to its container (viewBox), names itself for screen readers (<title>), uses
a colour-blind-safe palette (Okabe and Ito) with one colour per condition throughout a report,
and writes its numbers where a reader needs them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
INK, MUTED, GRID, TARGET = "#22262e", "#606874", "#e1e4e8", "#b3261e"


def colours(conditions: Sequence[str]) -> dict[str, str]:
    return {c: PALETTE[k % len(PALETTE)] for k, c in enumerate(conditions)}


def _open(width: float, height: float, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="100%" style="max-width:{width:.0f}px" role="img" aria-label="{escape(title)}" '
        f'font-family="system-ui, sans-serif"><title>{escape(title)}</title>'
    ]


def _text(x: float, y: float, s: str, fill: str = INK, anchor: str = "start", size: int = 12, extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{extra}>'
        f"{escape(s)}</text>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str = INK, extra: str = "") -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"{extra}/>'


def _rect(x: float, y: float, w: float, h: float, fill: str, extra: str = "") -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}"{extra}/>'


def _num(v: float | None) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def interval_bars(
    rows: Sequence[tuple[str, str, float, float, float, str]], title: str, value_label: str = "accuracy"
) -> str:
    """Horizontal bars with 95 % intervals on a 0-100 % axis. rows: (group, label, value, low, high,
    colour); each new group starts a labelled band."""
    if not rows:
        return ""
    left, width, row_h, top = 190, 400, 26, 34
    bands = len({r[0] for r in rows if r[0]})
    height = top + row_h * len(rows) + 22 * bands + 16
    out = _open(left + width + 70, height, title)
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = left + tick * width
        out.append(_line(x, top - 8, x, height - 18, GRID) + _text(x, top - 14, f"{int(tick * 100)}%", MUTED, "middle"))
    y = top
    current = None
    for group, label, v, lo, hi, colour in rows:
        if group and group != current:
            out.append(_text(8, y + 14, group, size=13, extra=' font-weight="600"'))
            y += 22
        current = group
        out.append(_text(left - 8, y + 17, label, anchor="end", size=13))
        if _num(v):
            out.append(_rect(left, y + 5, v * width, 16, colour, ' rx="2"'))
            if _num(lo) and _num(hi):
                a, b = left + lo * width, left + hi * width
                out.append(_line(a, y + 13, b, y + 13, extra=' stroke-width="1.5"'))
                out.append(_line(a, y + 8, a, y + 18) + _line(b, y + 8, b, y + 18))
            out.append(_text(left + width + 8, y + 17, f"{100 * v:.0f}%"))
        else:
            out.append(_text(left + 6, y + 17, "no trials", MUTED))
        y += row_h
    out.append(_text(left + width / 2, height - 2, f"{value_label} (lines: 95 % Wilson interval)", MUTED, "middle"))
    return "".join([*out, "</svg>"])


def lines(
    series: dict[str, list[tuple[float, float, float, float]]],
    palette: dict[str, str],
    title: str,
    x_label: str,
    y_label: str = "accuracy",
    target: tuple[float, str] | None = None,
    ticks: dict[float, str] | None = None,
) -> str:
    """One line per series of (x, y, low, high) points on a 0-100 % axis, with a shaded 95 % band;
    `target` draws a dashed line at a value (e.g. 80 % power); `ticks` names x values."""
    points = [p for s in series.values() for p in s]
    if not points:
        return ""
    w, h, left, right, top, bottom = 620, 300, 52, 150, 16, 44
    xs = sorted({p[0] for p in points})
    lo_x, hi_x = xs[0], xs[-1]

    def x(v: float) -> float:
        return left + (v - lo_x) / max(1e-9, hi_x - lo_x) * (w - left - right)

    def y(v: float) -> float:
        return top + (1 - v) * (h - top - bottom)

    out = _open(w, h, title)
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(
            _line(left, y(t), w - right, y(t), GRID) + _text(left - 6, y(t) + 4, f"{int(t * 100)}%", MUTED, "end")
        )
    for v in xs[:: max(1, math.ceil(len(xs) / 12))]:
        out.append(_text(x(v), h - bottom + 16, (ticks or {}).get(v, f"{v:g}"), MUTED, "middle"))
    out.append(_text((left + w - right) / 2, h - 8, x_label, MUTED, "middle"))
    mid = (top + h - bottom) / 2
    out.append(_text(14, mid, y_label, MUTED, "middle", extra=f' transform="rotate(-90 14 {mid:.0f})"'))
    if target is not None:
        out.append(_line(left, y(target[0]), w - right, y(target[0]), TARGET, ' stroke-dasharray="4 3"'))
        out.append(_text(w - right - 4, y(target[0]) - 4, target[1], TARGET, "end"))
    for k, (name, pts) in enumerate(series.items()):
        c = palette.get(name, PALETTE[k % len(PALETTE)])
        pts = sorted(p for p in pts if _num(p[1]))
        if not pts:
            continue
        band = [f"{x(p[0]):.1f},{y(p[3]):.1f}" for p in pts] + [f"{x(p[0]):.1f},{y(p[2]):.1f}" for p in reversed(pts)]
        out.append(f'<polygon points="{" ".join(band)}" fill="{c}" opacity="0.08"/>')
        out.append(
            f'<polyline points="{" ".join(f"{x(p[0]):.1f},{y(p[1]):.1f}" for p in pts)}" fill="none" '
            f'stroke="{c}" stroke-width="2.5"/>'
        )
        out += [f'<circle cx="{x(p[0]):.1f}" cy="{y(p[1]):.1f}" r="3" fill="{c}"/>' for p in pts]
        out.append(_text(w - right + 10, top + 14 + 18 * k, name, c, size=13, extra=' font-weight="600"'))
    return "".join([*out, "</svg>"])


def heat_grid(cells: dict[tuple[str, str], tuple[int, float]], rows: list[str], cols: list[str], title: str) -> str:
    """A confusion matrix: rows the true species, columns the answers; each cell its count, shaded
    by its share of the row (the diagonal is outlined)."""
    if not rows or not cols:
        return ""
    cell, left, top = 46, 150, 130
    w, h = left + cell * len(cols) + 90, top + cell * len(rows) + 48  # room for the slanted last label
    out = _open(w, h, title)
    for j, c in enumerate(cols):
        cx = left + j * cell + cell / 2
        out.append(_text(cx, top - 8, c, extra=f' transform="rotate(-45 {cx:.0f} {top - 8})"'))
    for i, r in enumerate(rows):
        y = top + i * cell
        out.append(_text(left - 8, y + cell / 2 + 4, r, anchor="end"))
        for j, c in enumerate(cols):
            n, share = cells.get((r, c), (0, 0.0))
            shade = f"rgba(0,114,178,{0.08 + 0.85 * share:.2f})" if n else "#ffffff"
            edge = f' stroke="{INK if r == c else GRID}" stroke-width="{2 if r == c else 1}"'
            out.append(_rect(left + j * cell, y, cell - 2, cell - 2, shade, edge))
            if n:
                ink = "#ffffff" if share > 0.55 else INK
                out.append(_text(left + j * cell + cell / 2 - 1, y + cell / 2 + 4, str(n), ink, "middle"))
    out.append(_text(8, h - 26, "rows: the species shown · columns: the answer given", MUTED))
    out.append(_text(8, h - 8, "darker: a larger share of the row · outlined: right answers", MUTED))
    return "".join([*out, "</svg>"])


def quartile_rows(rows: Sequence[tuple[str, float, float, float, float, float, str]], title: str) -> str:
    """Response times per condition: whiskers 10th-90th percentile, box the quartiles, line the median.
    rows: (label, p10, q1, median, q3, p90, colour), in milliseconds."""
    if not rows:
        return ""
    top_ms = max(r[5] for r in rows) * 1.05
    left, width, row_h, top = 150, 420, 34, 30
    height = top + row_h * len(rows) + 30

    def px(ms: float) -> float:
        return left + ms / top_ms * width

    out = _open(left + width + 80, height, title)
    step = _nice_step(top_ms)
    t = 0.0
    while t <= top_ms:
        out.append(_line(px(t), top - 8, px(t), height - 26, GRID))
        out.append(_text(px(t), top - 12, _duration(t, step), MUTED, "middle"))
        t += step
    for k, (label, p10, q1, med, q3, p90, colour) in enumerate(rows):
        y = top + k * row_h
        out.append(_text(left - 8, y + 17, label, anchor="end", size=13) + _line(px(p10), y + 12, px(p90), y + 12))
        out.append(_rect(px(q1), y + 3, max(1.0, px(q3) - px(q1)), 18, colour, ' opacity="0.8" rx="2"'))
        out.append(_line(px(med), y + 1, px(med), y + 23, extra=' stroke-width="2.5"'))
        out.append(_text(left + width + 8, y + 17, _duration(med, step, ".1f")))
    legend = "box: middle half of the trials · line: median · whiskers: 10th-90th percentile"
    out.append(_text(left, height - 6, legend, MUTED))
    return "".join([*out, "</svg>"])


def _nice_step(span_ms: float) -> float:
    """A round tick step in ms giving at most 8 ticks over the span (milliseconds for a fast task)."""
    for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 30_000, 60_000):
        if span_ms / s <= 8:
            return float(s)
    return 120_000.0


def _duration(ms: float, step: float, seconds_format: str = "g") -> str:
    """Seconds on a scale of half seconds or more, milliseconds below (a fast task, or the server clock of a bot)."""
    return f"{ms / 1000:{seconds_format}} s" if step >= 500 else f"{ms:.0f} ms"


def power_curves(series: dict[str, list[tuple[float, float]]], title: str = "Power by number of participants") -> str:
    """Power against participants, one line per comparison, with the usual 80 % line."""
    points = {k: [(x, p, p, p) for x, p in v] for k, v in series.items()}
    return lines(points, colours(list(series)), title, "participants", "power", target=(0.8, "80 %"))
