"""A small supersampled painter: polygons in, anti-aliased premultiplied colour and labels out.

The bird is painted at SS× resolution inside its bounding window, with Pillow rasterising each
polygon and numpy doing the colour; box-filtering back to the output size gives the
anti-aliasing. Every layer is composited only inside its own bounding box, which keeps small
marks (an eye, a bill spot) cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

Array = np.ndarray


def cubic(p0: Array, p1: Array, p2: Array, p3: Array, n: int = 14) -> Array:
    """Points along a cubic Bézier segment, the start point excluded."""
    t = np.linspace(0.0, 1.0, n + 1)[1:, None]
    u = 1.0 - t
    return u**3 * p0 + 3 * u**2 * t * p1 + 3 * u * t**2 * p2 + t**3 * p3


def path(start: tuple[float, float], *segments: tuple[tuple[float, float], ...]) -> Array:
    """A polyline from a start point and cubic segments (c1, c2, end), like an SVG path."""
    pts = [np.asarray([start], dtype=np.float64)]
    cur = np.asarray(start, dtype=np.float64)
    for c1, c2, end in segments:
        seg = cubic(cur, np.asarray(c1), np.asarray(c2), np.asarray(end))
        pts.append(seg)
        cur = seg[-1]
    return np.concatenate(pts)


def ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0, n: int = 40) -> Array:
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


@dataclass
class Window:
    """The output-pixel rectangle [x0, x0+w) × [y0, y0+h) painted at ss× resolution."""

    x0: int
    y0: int
    w: int
    h: int
    ss: int

    @classmethod
    def around(cls, points: Array, image_w: int, image_h: int, ss: int, pad: int = 3) -> Window:
        x0 = max(0, int(np.floor(points[:, 0].min())) - pad)
        y0 = max(0, int(np.floor(points[:, 1].min())) - pad)
        x1 = min(image_w, int(np.ceil(points[:, 0].max())) + pad)
        y1 = min(image_h, int(np.ceil(points[:, 1].max())) + pad)
        return cls(x0, y0, max(1, x1 - x0), max(1, y1 - y0), ss)

    @property
    def shape(self) -> tuple[int, int]:
        return self.h * self.ss, self.w * self.ss

    def to_ss(self, points: Array) -> Array:
        return (points - np.array([self.x0, self.y0])) * self.ss


@dataclass
class Mask:
    """Coverage in [0, 1] of a region of the supersampled window (slices keep it small)."""

    alpha: Array  # float32, shape of the slice
    ys: slice
    xs: slice

    def times(self, other: Mask | None) -> Mask:
        """Intersection with another mask (coverage product over this mask's box)."""
        if other is None:
            return self
        full = np.zeros_like(self.alpha)
        oy0, ox0 = other.ys.start, other.xs.start
        y0, x0 = self.ys.start, self.xs.start
        ya, yb = max(y0, oy0), min(self.ys.stop, other.ys.stop)
        xa, xb = max(x0, ox0), min(self.xs.stop, other.xs.stop)
        if ya < yb and xa < xb:
            full[ya - y0 : yb - y0, xa - x0 : xb - x0] = other.alpha[ya - oy0 : yb - oy0, xa - ox0 : xb - ox0]
        return Mask(self.alpha * full, self.ys, self.xs)

    def minus(self, other: Mask) -> Mask:
        """This mask where the other is not."""
        inter = self.times(other)
        return Mask(self.alpha - inter.alpha, self.ys, self.xs)


class Painter:
    """Paints layers front-to-back order given (painter's order) into a supersampled window."""

    def __init__(self, window: Window, n_labels: int) -> None:
        self.win = window
        h, w = window.shape
        self.rgb = np.zeros((h, w, 3), np.float32)  # premultiplied colour
        self.alpha = np.zeros((h, w), np.float32)
        self.label = np.zeros((h, w), np.uint8)
        self.n_labels = n_labels

    def mask(self, polygon: Array) -> Mask | None:
        """Rasterise a polygon given in output-pixel coordinates; None if it misses the window."""
        pts = self.win.to_ss(polygon)
        h, w = self.win.shape
        x0 = max(0, int(np.floor(pts[:, 0].min())))
        y0 = max(0, int(np.floor(pts[:, 1].min())))
        x1 = min(w, int(np.ceil(pts[:, 0].max())) + 1)
        y1 = min(h, int(np.ceil(pts[:, 1].max())) + 1)
        if x1 <= x0 or y1 <= y0:
            return None
        img = Image.new("L", (x1 - x0, y1 - y0), 0)
        local = pts - np.array([x0, y0])
        ImageDraw.Draw(img).polygon([tuple(p) for p in local.tolist()], fill=255)
        return Mask(np.asarray(img, np.float32) / 255.0, slice(y0, y1), slice(x0, x1))

    def union(self, *masks: Mask | None) -> Mask | None:
        ms = [m for m in masks if m is not None]
        if not ms:
            return None
        ys = slice(min(m.ys.start for m in ms), max(m.ys.stop for m in ms))
        xs = slice(min(m.xs.start for m in ms), max(m.xs.stop for m in ms))
        out = np.zeros((ys.stop - ys.start, xs.stop - xs.start), np.float32)
        for m in ms:
            sub = out[m.ys.start - ys.start : m.ys.stop - ys.start, m.xs.start - xs.start : m.xs.stop - xs.start]
            np.maximum(sub, m.alpha, out=sub)
        return Mask(out, ys, xs)

    def paint(self, m: Mask | None, colour: Array, label: int | None = None) -> None:
        """Composite a colour (RGB, or an H×W×3 field over the mask's box) through a mask."""
        if m is None:
            return
        a = m.alpha[..., None]
        region = self.rgb[m.ys, m.xs]
        region *= 1.0 - a
        region += a * colour
        al = self.alpha[m.ys, m.xs]
        al *= 1.0 - m.alpha
        al += m.alpha
        if label is not None:
            self.label[m.ys, m.xs][m.alpha >= 0.5] = label

    def cut(self, keep: Array) -> None:
        """Multiply everything painted so far by a keep-coverage over the whole window."""
        self.rgb *= keep[..., None]
        self.alpha *= keep
        self.label[keep < 0.5] = 0

    def grid(self, m: Mask) -> tuple[Array, Array]:
        """Output-pixel coordinates (x, y) of the supersamples in a mask's box."""
        ss = self.win.ss
        ys = self.win.y0 + (np.arange(m.ys.start, m.ys.stop) + 0.5) / ss
        xs = self.win.x0 + (np.arange(m.xs.start, m.xs.stop) + 0.5) / ss
        return np.meshgrid(xs, ys)

    def resolve(self) -> tuple[Array, Array, Array]:
        """Box-filter to output resolution: premultiplied RGB, alpha, and labels (centre sample)."""
        ss, h, w = self.win.ss, self.win.h, self.win.w
        rgb = self.rgb.reshape(h, ss, w, ss, 3).mean(axis=(1, 3))
        alpha = self.alpha.reshape(h, ss, w, ss).mean(axis=(1, 3))
        label = self.label[ss // 2 :: ss, ss // 2 :: ss]
        return rgb, alpha, label


def dome_shade(m: Mask, radius: float, light: tuple[float, float], strength: float) -> Array:
    """Shading of a rounded body seen from the side: lit towards `light`, darker at the rim.

    A blurred silhouette behaves like a height field; its gradient gives a surface normal,
    which is enough to make flat shapes read as rounded without any 3-D model.
    """
    pad = int(2 * radius) + 2
    a = np.pad(m.alpha, pad)
    height = ndimage.gaussian_filter(a, radius, mode="constant")
    gy, gx = np.gradient(height)
    lx, ly = light
    # At a silhouette edge |grad| ≈ 0.4 / radius, so this term stays within about ±1.
    diffuse = np.tanh(-(gx * lx + gy * ly) * radius * 2.5)
    rim = np.clip(height * 2.0, 0.0, 1.0)
    shade = (1.0 + strength * diffuse) * (0.82 + 0.18 * rim)
    return shade[pad:-pad, pad:-pad].astype(np.float32)
