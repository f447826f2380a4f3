"""A whole photograph: background, the bird on it, light, lens blur and sensor noise.

`render_scene` is pure: a species, a random generator and a few switches in; pixels, the part
segmentation, CUB part locations, a bounding box and a record of every nuisance choice out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from pipeline.data import gull
from pipeline.data.raster import Array, Painter, Window
from pipeline.data.species import Species

Background = Literal["sky", "sea", "sand", "rocks"]
BACKGROUNDS: tuple[Background, ...] = ("sky", "sea", "sand", "rocks")
SHORTCUT_CUES = (*BACKGROUNDS, "mark")

# The 15 CUB-200-2011 parts, in CUB's id order (1-based ids).
CUB_PARTS = (
    "back",
    "beak",
    "belly",
    "breast",
    "crown",
    "forehead",
    "left eye",
    "left leg",
    "left wing",
    "nape",
    "right eye",
    "right leg",
    "right wing",
    "tail",
    "throat",
)
SUPERSAMPLE = 4


@dataclass(frozen=True)
class SceneInfo:
    """Everything random about one picture, for the data set's attribute table."""

    background: str
    pose: str
    facing: str
    scale_px: float
    exposure: float
    blur: float
    noise: float
    legs_visible: bool
    shortcut_mark: bool
    mantle_grey: float
    head_streaks: float

    def as_row(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Scene:
    image: Array  # H×W×3 uint8
    segmentation: Array  # H×W uint8, values index gull.SEG_LABELS
    parts: list[tuple[float, float, int]]  # 15 CUB parts: x, y, visible
    bbox: tuple[float, float, float, float]  # x, y, width, height
    info: SceneInfo
    anchors: dict[str, tuple[float, float]]  # named points on the bird (for field-mark guides)


def _noise(rng: np.random.Generator, h: int, w: int, cells_y: int, cells_x: int) -> Array:
    """Smooth value noise in [0, 1]: a random grid, bicubically enlarged."""
    grid = rng.random((cells_y + 3, cells_x + 3)).astype(np.float32)
    img = Image.fromarray(grid, mode="F").resize((w + 2 * w // cells_x, h + 2 * h // cells_y), Image.Resampling.BICUBIC)
    out = np.asarray(img)[h // cells_y : h // cells_y + h, w // cells_x : w // cells_x + w]
    return np.clip(out, 0.0, 1.0)


def _fbm(rng: np.random.Generator, h: int, w: int, base: int, octaves: int = 3) -> Array:
    total, amp, norm = np.zeros((h, w), np.float32), 1.0, 0.0
    for k in range(octaves):
        c = base * 2**k
        total += amp * _noise(rng, h, w, c, c)
        norm += amp
        amp *= 0.5
    return total / norm


def _vertical(h: int, w: int, top: Array, bottom: Array, y0: int = 0, y1: int | None = None) -> Array:
    y1 = h if y1 is None else y1
    t = np.clip((np.arange(h, dtype=np.float32) - y0) / max(1, y1 - y0), 0, 1)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).astype(np.float32)


def sky(rng: np.random.Generator, h: int, w: int) -> Array:
    top = np.array([0.30, 0.52, 0.84]) * rng.uniform(0.85, 1.1)
    low = np.array([0.74, 0.84, 0.95]) * rng.uniform(0.92, 1.05)
    img = _vertical(h, w, top, low).copy()
    cover = rng.uniform(0.0, 0.7)
    clouds = np.clip((_fbm(rng, h, w, 3, 4) - (0.75 - 0.35 * cover)) * 3.5, 0, 1)[..., None]
    return img * (1 - clouds) + np.array([0.95, 0.95, 0.97]) * clouds * rng.uniform(0.9, 1.0)


def sea(rng: np.random.Generator, h: int, w: int, y0: int) -> Array:
    """Water from row y0 down: hazy at the horizon, waves that get bigger towards the camera."""
    deep = np.array([0.10, 0.30, 0.42]) + rng.normal(0, 0.03, 3)
    far = np.array([0.45, 0.60, 0.68]) + rng.normal(0, 0.03, 3)
    img = _vertical(h, w, far, deep, y0, h).copy()
    waves = _noise(rng, h, w, 40, 6) * 0.6 + _noise(rng, h, w, 90, 14) * 0.4
    img *= (0.82 + 0.36 * waves)[..., None]
    glints = np.clip((_noise(rng, h, w, 80, 20) - 0.82) * 8, 0, 1)[..., None] * rng.uniform(0.2, 0.7)
    return np.clip(img * (1 - glints) + glints * 0.95, 0, 1)


def sand(rng: np.random.Generator, h: int, w: int) -> Array:
    base = np.array([0.80, 0.72, 0.56]) + rng.normal(0, 0.03, 3)
    img = np.broadcast_to(base, (h, w, 3)).astype(np.float32).copy()
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    warp = _noise(rng, h, w, 3, 3) * 25
    ripples = np.sin((y + warp + 0.15 * x) * rng.uniform(0.25, 0.45)) * 0.04
    grain = (rng.random((h, w)).astype(np.float32) - 0.5) * 0.09
    patches = (_fbm(rng, h, w, 4) - 0.5) * 0.18
    img *= (1 + ripples + grain + patches)[..., None]
    pil = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(5, 25))):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.6, 2.5)
        tone = int(rng.uniform(90, 240))
        draw.ellipse((cx - r, cy - r * 0.7, cx + r, cy + r * 0.7), fill=(tone, int(tone * 0.93), int(tone * 0.85)))
    return np.asarray(pil, np.float32) / 255.0


def rocks(rng: np.random.Generator, h: int, w: int) -> Array:
    """Boulders as Voronoi cells: each its own tone, lit on one side, dark crevices between."""
    n = int(rng.integers(6, 14))
    seeds = np.stack([rng.uniform(-0.1 * w, 1.1 * w, n), rng.uniform(-0.1 * h, 1.1 * h, n)], 1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wx = xx + (_noise(rng, h, w, 5, 5) - 0.5) * 30  # warped coordinates: rounded, irregular edges
    wy = yy + (_noise(rng, h, w, 5, 5) - 0.5) * 30
    d = np.sqrt((wx[None] - seeds[:, 0, None, None]) ** 2 + (wy[None] - seeds[:, 1, None, None]) ** 2)
    order = np.argsort(d, axis=0)
    nearest = order[0]
    d_sorted = np.take_along_axis(d, order[:2], axis=0)
    crevice = np.clip((d_sorted[1] - d_sorted[0]) / 10.0, 0, 1) ** 0.7
    hue = np.array([0.52, 0.49, 0.45]) * rng.uniform(0.8, 1.15) + rng.normal(0, 0.012, 3)
    tones = rng.uniform(0.65, 1.2, n)
    img = hue * tones[nearest][..., None]
    centre_dy = (yy - seeds[nearest, 1]) / (0.25 * h)
    img *= (1.0 - 0.18 * np.clip(centre_dy, -1, 1))[..., None]
    img *= (0.45 + 0.55 * crevice)[..., None]
    tex = (_fbm(rng, h, w, 8) - 0.5) * 0.35 + (rng.random((h, w)) - 0.5) * 0.08
    img *= (1 + tex)[..., None]
    lichen = np.clip((_fbm(rng, h, w, 10) - 0.72) * 5, 0, 1)[..., None] * rng.uniform(0, 0.35)
    return np.clip(img * (1 - lichen) + lichen * np.array([0.78, 0.70, 0.35]), 0, 1)


def ledge(rng: np.random.Generator, h: int, w: int) -> Array:
    """A weathered wooden rail or concrete pier edge for birds photographed against the sky."""
    if rng.random() < 0.5:
        base = np.array([0.50, 0.38, 0.26]) * rng.uniform(0.8, 1.15)
        grain = _noise(rng, h, w, 60, 4) - 0.5
        img = base * (1 + 0.35 * grain)[..., None]
    else:
        base = np.array([0.62, 0.61, 0.58]) * rng.uniform(0.8, 1.1)
        img = base * (1 + 0.25 * (_fbm(rng, h, w, 10) - 0.5) + 0.08 * (rng.random((h, w)) - 0.5))[..., None]
    return img.astype(np.float32)


def _shadow(img: Array, cx: float, cy: float, rx: float, ry: float, strength: float) -> None:
    h, w, _ = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    img *= (1 - strength * np.exp(-r2 * 1.5))[..., None]


def _choose_pose(background: Background, rng: np.random.Generator) -> gull.Pose:
    if background == "sea":
        return "swimming" if rng.random() < 0.7 else "wading"
    return "standing"


def render_scene(
    sp: Species,
    rng: np.random.Generator,
    size: int = 224,
    background: Background | None = None,
    shortcut_mark: bool = False,
    clean: bool = False,
) -> Scene:
    """Render one picture of an adult of species `sp`.

    `background` forces the setting (used by the shortcut option); `clean` gives a large,
    evenly lit, noise-free bird on a plain backdrop for field-mark guides.
    """
    H = W = size
    bg: Background = background or BACKGROUNDS[int(rng.integers(4))]
    pose: gull.Pose = "standing" if clean else _choose_pose(bg, rng)
    ind = gull.Individual.sample(sp, rng)
    post = gull.Posture.sample(pose, rng)
    if clean:
        post = gull.Posture("standing", 0.0, 0.0, 0.6)
    facing = 1 if clean or rng.random() < 0.5 else -1
    scale = size * (0.46 if clean else rng.uniform(0.32, 0.47) * sp.size**0.4)
    angle = float(rng.uniform(-1.0, 1.0)) * 0.6 - np.pi / 2  # light from above, left or right
    light = (float(np.cos(angle)) * 0.8, float(np.sin(angle)))

    # Place the bird: find its extent at the origin, then shift it into the frame.
    probe = gull.Placement(scale, 0.0, 0.0, facing, post.body_pitch)
    pts = gull.extent(gull.outline(ind, post, probe))
    lo, hi = pts.min(0), pts.max(0)
    margin = 4.0
    span_x = W - (hi[0] - lo[0]) - 2 * margin
    span_y = H - (hi[1] - lo[1]) - 2 * margin
    fx = 0.5 if clean else rng.uniform(0.1, 0.9)
    fy = 0.5 if clean else rng.uniform(0.2, 0.8)
    ox = margin - lo[0] + max(0.0, span_x) * fx + min(0.0, span_x) / 2
    oy = margin - lo[1] + max(0.0, span_y) * fy + min(0.0, span_y) / 2
    place = gull.Placement(scale, float(ox), float(oy), facing, post.body_pitch)
    o = gull.outline(ind, post, place)

    # Where the water cuts the bird (swimming: at the belly; wading: part way up the legs).
    water_y: float | None = None
    if pose == "swimming":
        water_y = place.point(0.0, -0.09)[1]
    elif pose == "wading":
        water_y = o.foot_y - (o.foot_y - o.leg_top_y) * rng.uniform(0.3, 0.75)

    # Background.
    if clean:
        img = _vertical(H, W, np.array([0.86, 0.90, 0.94]), np.array([0.93, 0.94, 0.95])).copy()
    elif bg == "sky":
        img = sky(rng, H, W)
        top = int(np.clip(o.foot_y, 0, H))
        img[top:] = ledge(rng, H, W)[top:]
        if top < H:
            img[top : top + 2] *= 1.15
    else:
        # Sky above the horizon, sea below it; sand or rocks from a little below the horizon.
        horizon = int(rng.uniform(-0.1, 0.45) * H)
        ground = {"sand": sand, "rocks": rocks}.get(bg)
        strip = int(rng.uniform(0.04, 0.12) * H)
        if water_y is not None:
            horizon = min(horizon, int(water_y) - 12)
        if ground is not None:
            horizon = min(horizon, int(o.foot_y) - strip - 10)
        img = sky(rng, H, W)
        water = sea(rng, H, W, max(horizon, 0))
        img[max(horizon, 0) :] = water[max(horizon, 0) :]
        if ground is not None:
            start = max(horizon + strip, 0)
            img[start:] = ground(rng, H, W)[start:]
    if pose == "standing" and not clean:
        _shadow(img, o.anchors["leg_near_mid"][0] + light[0] * -8, o.foot_y, 0.45 * scale, 0.05 * scale, 0.35)

    # The bird, supersampled inside its window.
    win = Window.around(gull.extent(o), W, H, SUPERSAMPLE)
    pt = Painter(win, len(gull.SEG_LABELS))
    gull.paint(pt, ind, o, light, rng, show_legs=True)
    legs_visible = True
    if water_y is not None:
        ys = win.y0 + (np.arange(win.shape[0]) + 0.5) / win.ss
        keep = np.clip((water_y - ys) * win.ss, 0, 1).astype(np.float32)[:, None]
        pt.cut(np.broadcast_to(keep, win.shape).copy())
        legs_visible = pose == "wading"
    # A rock edge in front of the feet now and then.
    feet_hidden = False
    if bg == "rocks" and pose == "standing" and not clean and rng.random() < 0.3:
        feet_hidden = True
    rgb, alpha, labels = pt.resolve()
    sl = (slice(win.y0, win.y0 + win.h), slice(win.x0, win.x0 + win.w))
    img[sl] = img[sl] * (1 - alpha[..., None]) + rgb
    seg = np.zeros((H, W), np.uint8)
    seg[sl] = labels
    if water_y is not None:
        _ripples(img, o, water_y, scale, rng)
    if feet_hidden:
        _front_rock(img, seg, o, scale, rng)

    # Light, lens and sensor.
    exposure = 1.0 if clean else float(rng.uniform(0.72, 1.25))
    warmth = 0.0 if clean else float(rng.normal(0, 0.03))  # colour temperature: warm or cool
    tint = np.array([1 + warmth, 1.0, 1 - warmth])
    img = np.clip(img * exposure * tint, 0, 1)
    if shortcut_mark:
        img[H - 12 : H - 4, W - 12 : W - 4] = (0.98, 0.45, 0.05)
        img[H - 9 : H - 7, W - 9 : W - 7] = (1.0, 1.0, 1.0)
    blur = 0.0 if clean or rng.random() < 0.5 else float(rng.uniform(0.3, 1.1))
    if blur > 0:
        img = ndimage.gaussian_filter(img, (blur, blur, 0))
    noise = 0.0 if clean else float(rng.uniform(0.004, 0.03))
    if noise > 0:
        img = img + rng.normal(0, noise, img.shape).astype(np.float32)
    out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)

    parts = _cub_parts(o, seg, facing, legs_visible and not feet_hidden, water_y, W, H)
    ys_, xs_ = np.nonzero(seg)
    bbox = (
        (float(xs_.min()), float(ys_.min()), float(xs_.max() - xs_.min() + 1), float(ys_.max() - ys_.min() + 1))
        if len(xs_)
        else (0.0, 0.0, float(W), float(H))
    )
    info = SceneInfo(
        background="plain" if clean else bg,
        pose=pose,
        facing="right" if facing > 0 else "left",
        scale_px=round(float(scale), 2),
        exposure=round(exposure, 3),
        blur=round(blur, 3),
        noise=round(noise, 4),
        legs_visible=bool(legs_visible and not feet_hidden),
        shortcut_mark=shortcut_mark,
        mantle_grey=round(float(np.mean(ind.mantle)), 3),
        head_streaks=round(ind.streaks, 3),
    )
    return Scene(out, seg, parts, bbox, info, o.anchors)


def _ripples(img: Array, o: gull.Outline, water_y: float, scale: float, rng: np.random.Generator) -> None:
    """Light and dark ripple lines hugging the waterline around the bird."""
    xs = o.polys["body"][:, 0]
    cx, half = (xs.min() + xs.max()) / 2, (xs.max() - xs.min()) / 2 + 0.1 * scale
    pil = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for k in range(3):
        y = water_y + 1.5 + 2.8 * k
        w = half * (1.0 + 0.25 * k) * rng.uniform(0.9, 1.1)
        tone = (235, 240, 245) if k % 2 == 0 else (40, 70, 90)
        draw.arc((cx - w, y - 2.5, cx + w, y + 2.5), 0, 180, fill=tone, width=1)
    img[:] = np.asarray(pil, np.float32) / 255.0


def _front_rock(img: Array, seg: Array, o: gull.Outline, scale: float, rng: np.random.Generator) -> None:
    """A foreground rock whose top edge hides the feet."""
    h, w, _ = img.shape
    cx = o.anchors["leg_near_mid"][0]
    top = o.foot_y - 0.06 * scale
    half = 0.7 * scale
    xs = np.linspace(cx - half, cx + half, 12)
    ys = top + np.abs(np.linspace(-1, 1, 12)) ** 2 * 0.25 * scale + rng.normal(0, 0.015 * scale, 12)
    poly = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)] + [(cx + half, h + 5), (cx - half, h + 5)]
    mask_img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask_img).polygon(poly, fill=255)
    m = np.asarray(mask_img, np.float32) / 255.0
    tex = rocks(rng, h, w)
    img[:] = img * (1 - m[..., None]) + tex * m[..., None]
    seg[m >= 0.5] = 0


def _cub_parts(
    o: gull.Outline, seg: Array, facing: int, legs_visible: bool, water_y: float | None, w: int, h: int
) -> list[tuple[float, float, int]]:
    """The 15 CUB parts. A bird facing right shows its right side, so its left eye is hidden."""
    a = o.anchors
    near, far = ("right", "left") if facing > 0 else ("left", "right")
    where: dict[str, tuple[float, float] | None] = {
        "back": a["back"],
        "beak": a["beak"],
        "belly": a["belly"],
        "breast": a["breast"],
        "crown": a["crown"],
        "forehead": a["forehead"],
        "nape": a["nape"],
        "tail": a["tail"],
        "throat": a["throat"],
        f"{near} eye": a["eye"],
        f"{far} eye": None,
        f"{near} wing": a["wing"],
        f"{far} wing": None,
        f"{near} leg": a["leg_near_mid"] if legs_visible else None,
        f"{far} leg": a["leg_far_mid"] if legs_visible else None,
    }
    out = []
    for name in CUB_PARTS:
        p = where[name]
        if p is None:
            out.append((0.0, 0.0, 0))
            continue
        x, y = round(p[0], 1), round(p[1], 1)  # as written to part_locs.txt
        inside = 0 <= x < w and 0 <= y < h and (water_y is None or y < water_y)
        visible = inside and seg[int(y), int(x)] != 0
        out.append((x, y, 1) if visible else (0.0, 0.0, 0))
    return out
