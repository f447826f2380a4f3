"""One adult gull, drawn side-on: its individual look, its pose, its outline and its paint.

Geometry lives in a bird frame whose unit is the body length (breast to tail base), x towards
the bill and y up. A `Placement` maps that frame to image pixels (scale, position, pitch and
facing); legs stay vertical in the image whatever the body pitch, as a standing bird's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.data.raster import Array, Mask, Painter, Window, cubic, dome_shade, ellipse, path
from pipeline.data.species import RGB, Species

# Part segmentation labels written beside every synthetic image (index = pixel value).
SEG_LABELS = ("background", "body", "head", "mantle", "wingtips", "bill", "eye", "legs")
SEG = {name: i for i, name in enumerate(SEG_LABELS)}

Pose = Literal["standing", "wading", "swimming"]


@dataclass(frozen=True)
class Individual:
    """What this bird looks like: the species' marks with individual variation."""

    species: Species
    mantle: RGB
    body: RGB
    head: RGB
    wingtip: RGB
    tail: RGB
    bill: RGB
    legs: RGB
    iris: RGB
    orbital: RGB
    streaks: float  # 0 = clean white head, up to 1 = heavily streaked (winter adult)

    @classmethod
    def sample(cls, sp: Species, rng: np.random.Generator) -> Individual:
        def jitter(c: RGB, amount: float) -> RGB:
            v = np.clip(np.asarray(c) * (1 + rng.normal(0, amount, 3)), 0, 1)
            return (float(v[0]), float(v[1]), float(v[2]))

        def grey(lo_hi: tuple[float, float], tint: RGB = (1.0, 1.0, 1.0)) -> RGB:
            g = rng.uniform(*lo_hi)
            return (g * tint[0], g * tint[1], g * tint[2])

        body = grey(sp.body)
        head = (0.98, 0.98, 0.98) if sp.cub_id == 61 else body  # Heermann's: white head
        streaks = float(rng.uniform(0.2, 0.8)) if sp.cub_id != 63 and rng.random() < 0.25 else 0.0
        return cls(
            species=sp,
            mantle=grey(sp.mantle, sp.mantle_tint),
            body=body,
            head=head,
            wingtip=grey(sp.wingtip_grey, sp.mantle_tint if sp.wingtip == "grey" else (1, 1, 1)),
            tail=grey((sp.tail_grey * 0.95, sp.tail_grey)),
            bill=jitter(sp.bill, 0.04),
            legs=jitter(sp.legs, 0.05),
            iris=jitter(sp.iris, 0.04),
            orbital=jitter(sp.orbital, 0.05),
            streaks=streaks,
        )


@dataclass(frozen=True)
class Posture:
    pose: Pose
    body_pitch: float  # radians, + = breast up
    head_pitch: float  # radians, + = bill up
    neck: float  # 0 hunched .. 1 alert

    @classmethod
    def sample(cls, pose: Pose, rng: np.random.Generator) -> Posture:
        pitch = rng.uniform(-0.05, 0.05) if pose == "swimming" else rng.uniform(-0.12, 0.14)
        return cls(pose, float(pitch), float(rng.uniform(-0.28, 0.22)), float(rng.uniform(0.0, 1.0)))


@dataclass(frozen=True)
class Placement:
    scale: float  # pixels per body length
    x: float  # image position of the body centre
    y: float
    facing: int  # +1 bill to the right, -1 to the left
    pitch: float

    def __call__(self, pts: Array, upright: bool = False) -> Array:
        """Bird frame → image pixels. `upright` skips the body pitch (used for legs)."""
        p = np.asarray(pts, np.float64)
        if not upright:
            c, s = np.cos(self.pitch), np.sin(self.pitch)
            p = np.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1]], axis=1)
        return np.stack([self.x + self.facing * self.scale * p[:, 0], self.y - self.scale * p[:, 1]], axis=1)

    def point(self, x: float, y: float, upright: bool = False) -> tuple[float, float]:
        q = self(np.array([[x, y]]), upright)[0]
        return float(q[0]), float(q[1])


@dataclass
class Outline:
    """Every polygon of the bird in image pixels, plus the named anchor points."""

    polys: dict[str, Array]
    anchors: dict[str, tuple[float, float]]
    leg_top_y: float  # image y where the near leg leaves the belly
    foot_y: float  # image y of the soles


def _rot(v: tuple[float, float], a: float) -> Array:
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _leg_attach(place: Placement, x: float) -> Array:
    """Image position of a leg's top on the belly, expressed back in an upright bird frame."""
    px, py = place.point(x, -0.15)
    return np.array([(px - place.x) / (place.facing * place.scale), (place.y - py) / place.scale])


def outline(ind: Individual, post: Posture, place: Placement) -> Outline:
    sp = ind.species
    swim = post.pose == "swimming"
    P: dict[str, Array] = {}
    A: dict[str, tuple[float, float]] = {}

    body = path(
        (0.44, 0.04),
        ((0.44, 0.17), (0.28, 0.22), (0.05, 0.215)),
        ((-0.20, 0.21), (-0.40, 0.16), (-0.54, 0.09)),
        ((-0.54, 0.03), (-0.46, -0.05), (-0.32, -0.11)),
        ((-0.14, -0.21), (0.14, -0.22), (0.32, -0.15)),
        ((0.42, -0.10), (0.45, -0.03), (0.44, 0.04)),
    )
    rh = sp.head_radius
    hx, hy = 0.38 + 0.09 * post.neck, 0.25 + 0.15 * post.neck
    hp = post.head_pitch
    # Head: rounded crown, forehead sloping into the bill, fuller at the nape.
    head_local = path(
        (0.90, 0.06),
        ((0.84, 0.55), (0.45, 0.98), (0.0, 0.98)),
        ((-0.55, 0.98), (-0.98, 0.62), (-1.0, 0.05)),
        ((-1.0, -0.45), (-0.62, -0.88), (0.0, -0.9)),
        ((0.52, -0.9), (0.90, -0.52), (0.90, 0.06)),
    ) * np.array([1.08 * rh, rh])
    head = np.array([hx, hy]) + np.stack([_rot(tuple(q), hp) for q in head_local])
    neck = path(
        (0.06, 0.20),
        ((0.14, 0.24), (hx - 1.0 * rh, hy - 0.3 * rh), (hx - 0.7 * rh, hy + 0.1 * rh)),
        ((hx - 0.2 * rh, hy - 0.3 * rh), (hx + 0.2 * rh, hy - 0.5 * rh), (hx + 0.45 * rh, hy - 0.85 * rh)),
        ((0.47, hy - rh - 0.02), (0.47, 0.12), (0.44, 0.02)),
    )
    P["body"], P["neck"], P["head"] = place(body), place(neck), place(head)

    tail_up = 0.07 if swim else 0.0
    tail = np.array([(-0.46, 0.11), (-0.71, 0.08 + tail_up), (-0.72, 0.03 + tail_up), (-0.46, -0.01)])
    P["tail"] = place(tail)

    tip_x = -0.71 - sp.wing_projection
    tip_y = 0.04 + (0.10 if swim else 0.0)
    lift = tip_y - 0.04
    wing_base_top, wing_base_low = np.array([-0.52, 0.125]), np.array([-0.48, -0.02])
    tip = np.array([tip_x, tip_y])
    prim_top = cubic(wing_base_top, np.array([-0.68, 0.11 + 0.5 * lift]), np.array([-0.84, tip_y + 0.05]), tip)
    prim_low = cubic(wing_base_low, np.array([-0.64, -0.02 + 0.5 * lift]), np.array([-0.84, tip_y - 0.03]), tip)
    top_edge = path(
        (0.10, 0.236),
        ((-0.02, 0.244), (-0.28, 0.222), (-0.52, 0.125)),
    )
    low_edge = path((-0.48, -0.02), ((-0.30, -0.045), (0.00, -0.045), (0.22, 0.02)))
    front = path((0.22, 0.02), ((0.30, 0.07), (0.28, 0.19), (0.10, 0.236)))
    wing = np.concatenate([top_edge, prim_top, prim_low[::-1], low_edge, front])
    P["wing"] = place(wing)
    # Everything behind the tertials' edge is primaries: a generous region, clipped by the wing.
    edge = path((-0.42, 0.30), ((-0.50, 0.12), (-0.52, 0.04), (-0.47, -0.10)))
    P["primaries_region"] = place(np.concatenate([edge, [(-1.6, -0.2), (-1.6, 0.4)]]))
    te = sp.trailing_edge
    crescent = path((-0.41, 0.24), ((-0.49, 0.12), (-0.51, 0.04), (-0.46, -0.08)))
    P["tertials"] = place(np.concatenate([crescent, crescent[::-1] + np.array([te, 0.0])]))
    lower = low_edge[:-3]
    P["trailing_edge"] = place(np.concatenate([lower, lower[::-1] + np.array([0.0, te * 0.8])]))

    # Primary feather edges, white tips along the lower edge, and mirrors near the tip.
    def along(curve: Array, t: float) -> Array:
        return curve[min(len(curve) - 1, round(t * (len(curve) - 1)))]

    def centre(t: float, bias: float = 0.5) -> Array:
        return along(prim_top, t) * bias + along(prim_low, t) * (1 - bias)

    feathers = []
    for bias in (0.75, 0.5, 0.25):
        line = np.array([centre(t, bias) for t in np.linspace(0.0, 0.93, 8)])
        feathers.append(place(np.concatenate([line, line[::-1] + np.array([0.0, 0.006])])))
    P["feather_lines"] = np.stack(feathers)
    spots = []
    for t in (0.30, 0.45, 0.60, 0.74):
        x, y = along(prim_low, t) + np.array([0.0, 0.008])
        spots.append(place(ellipse(x, y, 0.02, 0.011, 0.0, 16)))
    P["primary_tips"] = np.stack(spots)
    mirrors = []
    if sp.wingtip == "black_pearls":
        for t in (0.22, 0.36, 0.50, 0.64):
            x, y = centre(t, 0.45)
            mirrors.append(place(ellipse(x, y, 0.018, 0.014, 0.0, 16)))
    elif sp.wingtip in ("black_mirrors", "black_spots"):
        for k in range(sp.mirror_count):
            x, y = centre(0.86 - 0.12 * k, 0.5)
            r = sp.mirror_size
            mirrors.append(place(ellipse(x, y, r * 1.4, r * 0.85, 0.0, 16)))
    P["mirrors"] = np.stack(mirrors) if mirrors else np.zeros((0, 16, 2))
    A["wingtip"] = place.point(*centre(0.6))

    # Bill: a frame (u along the bill, v across it) at the base of the head.
    base = np.array([hx, hy]) + _rot((0.88 * rh, -0.22 * rh), hp)
    a = hp - 0.07
    d, n = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    bl, bd, g = sp.bill_length, sp.bill_depth, sp.gonys

    def bill_pts(uv: Array | list[tuple[float, float]]) -> Array:
        q = np.asarray(uv, np.float64)
        return place(base + q[:, :1] * d + q[:, 1:] * n)

    bill = path(
        (-0.02, 0.5 * bd),
        ((0.35 * bl, 0.46 * bd), (0.78 * bl, 0.36 * bd), (0.93 * bl, 0.18 * bd)),
        ((0.98 * bl, 0.10 * bd), (1.0 * bl, -0.05 * bd), (0.97 * bl, -0.20 * bd)),
        ((0.92 * bl, -0.28 * bd), (0.82 * bl, -0.40 * bd - 0.5 * g), (0.72 * bl, -0.5 * bd - g)),
        ((0.50 * bl, -0.48 * bd - 0.3 * g), (0.20 * bl, -0.5 * bd), (-0.02, -0.5 * bd)),
    )
    P["bill"] = bill_pts(bill)
    gape = np.array([(0.0, -0.03 * bd), (0.88 * bl, -0.16 * bd)])
    P["gape"] = bill_pts(np.concatenate([gape, gape[::-1] + np.array([0.0, -0.11 * bd])]))
    P["lower_mandible"] = bill_pts([(-0.1, -0.06 * bd), (0.95 * bl, -0.17 * bd), (1.1 * bl, -3 * bd), (-0.1, -3 * bd)])
    P["bill_tip_region"] = bill_pts(
        [(0.80 * bl, 3 * bd), (1.2 * bl, 3 * bd), (1.2 * bl, -3 * bd), (0.80 * bl, -3 * bd)]
    )
    P["bill_yellow_tip"] = bill_pts(
        [(0.62 * bl, 3 * bd), (1.2 * bl, 3 * bd), (1.2 * bl, -3 * bd), (0.62 * bl, -3 * bd)]
    )
    P["bill_ring"] = bill_pts([(0.60 * bl, 3 * bd), (0.78 * bl, 3 * bd), (0.78 * bl, -3 * bd), (0.60 * bl, -3 * bd)])
    P["gonys_spot"] = bill_pts(ellipse(0.74 * bl, -0.36 * bd - 0.5 * g, 0.10 * bl, 0.26 * bd + 0.4 * g, 0.0, 24))
    P["black_spot"] = bill_pts(ellipse(0.82 * bl, -0.18 * bd, 0.065 * bl, 0.36 * bd, 0.0, 24))
    P["red_spot_small"] = bill_pts(ellipse(0.70 * bl, -0.38 * bd - 0.5 * g, 0.07 * bl, 0.22 * bd + 0.3 * g, 0.0, 24))

    # Eye: orbital ring, iris, pupil.
    ex, ey = np.array([hx, hy]) + _rot((0.30 * rh, 0.20 * rh), hp)
    re = 0.19 * rh
    P["orbital"] = place(ellipse(ex, ey, 1.35 * re, 1.35 * re))
    P["iris"] = place(ellipse(ex, ey, re, re))
    P["pupil"] = place(ellipse(ex, ey, 0.42 * re, 0.42 * re, 0.0, 16))

    # Legs, vertical in the image: near leg in front, far leg behind and a little darker.
    ground = -0.17 - sp.leg_length
    legs = {}
    for name, x in (("leg_near", 0.05), ("leg_far", -0.07)):
        top = _leg_attach(place, x)
        tx, ty = top
        dy = ground - ty
        tarsus = [
            (tx - 0.017, ty),
            (tx + 0.017, ty),
            (tx + 0.004, ty + 0.55 * dy),
            (tx + 0.018, ty + dy),
            (tx - 0.004, ty + dy),
            (tx - 0.016, ty + 0.55 * dy),
        ]
        gy = ty + dy
        foot = [
            (tx - 0.03, gy + 0.002),
            (tx + 0.002, gy + 0.02),
            (tx + 0.125, gy - 0.004),
            (tx + 0.115, gy - 0.02),
            (tx + 0.03, gy - 0.014),
            (tx - 0.012, gy - 0.012),
        ]
        legs[name] = (place(np.array(tarsus), upright=True), place(np.array(foot), upright=True))
        A[f"{name}_mid"] = place.point(tx, ty + 0.6 * dy, upright=True)
    for name, (tarsus_poly, foot_poly) in legs.items():
        P[f"{name}_tarsus"], P[f"{name}_foot"] = tarsus_poly, foot_poly
    near_top = _leg_attach(place, 0.05)
    leg_top_y = place.point(float(near_top[0]), float(near_top[1]), upright=True)[1]
    foot_y = place.point(float(near_top[0]), ground - 0.01, upright=True)[1]

    # Anchors for CUB part locations (bird frame → image).
    A["back"] = place.point(-0.12, 0.19)
    beak = bill_pts([(0.55 * bl, 0.0)])[0]
    A["beak"] = (float(beak[0]), float(beak[1]))
    A["belly"] = place.point(-0.02, -0.16)
    A["breast"] = place.point(0.38, -0.02)
    top = np.array([hx, hy]) + _rot((0.0, 0.93 * rh), hp)
    front = np.array([hx, hy]) + _rot((0.75 * rh, 0.62 * rh), hp)
    nape = np.array([hx, hy]) + _rot((-0.85 * rh, -0.2 * rh), hp)
    throat = np.array([hx, hy]) + _rot((0.55 * rh, -0.85 * rh), hp)
    A["crown"], A["forehead"] = place.point(*top), place.point(*front)
    A["nape"], A["throat"] = place.point(*nape), place.point(*throat)
    A["eye"] = place.point(float(ex), float(ey))
    A["wing"] = place.point(-0.20, 0.08)
    A["tail"] = place.point(-0.69, 0.045 + tail_up)
    return Outline(P, A, leg_top_y, foot_y)


def extent(o: Outline) -> Array:
    """All outline points that bound the drawing (for placement and the paint window)."""
    keys = ("body", "head", "wing", "bill", "tail", "leg_near_foot", "leg_far_foot")
    return np.concatenate([o.polys[k] for k in keys])


def paint(
    pt: Painter,
    ind: Individual,
    o: Outline,
    light: tuple[float, float],
    rng: np.random.Generator,
    show_legs: bool = True,
) -> None:
    """Paint the bird in back-to-front order. Field marks are separate layers with labels."""
    sp = ind.species
    P = o.polys
    ss = pt.win.ss
    scale = float(np.linalg.norm(P["body"][0] - P["body"][len(P["body"]) // 2]))  # ~ body length px
    px = max(1.0, scale) * ss  # supersampled pixels per body length

    if show_legs:
        for name, dim in (("leg_far", 0.78), ("leg_near", 1.0)):
            m = pt.union(pt.mask(P[f"{name}_tarsus"]), pt.mask(P[f"{name}_foot"]))
            if m is not None:
                shade = dome_shade(m, 0.012 * px, light, 0.3)[..., None]
                pt.paint(m, np.asarray(ind.legs) * dim * shade, SEG["legs"])

    tail = pt.mask(P["tail"])
    if tail is not None:
        pt.paint(tail, np.asarray(ind.tail) * dome_shade(tail, 0.03 * px, light, 0.2)[..., None], SEG["body"])

    body = pt.union(pt.mask(P["body"]), pt.mask(P["neck"]), pt.mask(P["head"]))
    if body is not None:
        shade = dome_shade(body, 0.10 * px, light, 0.3)[..., None]
        pt.paint(body, np.asarray(ind.body) * shade, SEG["body"])
        head = pt.mask(P["head"])
        if head is not None:
            head_shade = dome_shade(head, 0.06 * px, light, 0.2)[..., None]
            colour = np.broadcast_to(np.asarray(ind.head, np.float32), (*head.alpha.shape, 3)).copy()
            if ind.streaks > 0:
                x, y = pt.grid(head)
                noise = np.sin(x * 1.7 + rng.uniform(0, 6)) * np.sin(y * 2.3 + rng.uniform(0, 6))
                streak = np.clip(noise * 1.5 - 0.6, 0, 1) * ind.streaks * 0.35
                colour *= 1 - streak[..., None] * np.array([0.55, 0.62, 0.75])
            pt.paint(head, colour * head_shade, SEG["head"])

    wing = pt.mask(P["wing"])
    if wing is not None:
        wshade = dome_shade(wing, 0.05 * px, light, 0.12)[..., None]
        pt.paint(wing, np.asarray(ind.mantle) * wshade, SEG["mantle"])
        white = np.array([0.97, 0.97, 0.97])
        edge = pt.mask(P["trailing_edge"])
        if edge is not None:
            pt.paint(edge.times(wing), white * dome_shade(edge, 0.01 * px, light, 0.3)[..., None], SEG["mantle"])
        prim_region = pt.mask(P["primaries_region"])
        if prim_region is not None:
            prim = wing.times(prim_region)
            pshade = dome_shade(prim, 0.025 * px, light, 0.15)[..., None]
            pt.paint(prim, np.asarray(ind.wingtip) * pshade, SEG["wingtips"])
            line_col = np.asarray(ind.wingtip) * 0.55 if sp.wingtip in ("grey", "white") else np.full(3, 0.28)
            for poly in P["feather_lines"]:
                m = pt.mask(poly)
                if m is not None:
                    pt.paint(m.times(prim), line_col * 0.8 + np.asarray(ind.wingtip) * 0.2)
            if sp.wingtip != "white":
                for poly in P["primary_tips"]:
                    m = pt.mask(poly)
                    if m is not None:
                        pt.paint(m.times(prim), white)
            for poly in P["mirrors"]:
                m = pt.mask(poly)
                if m is not None:
                    pt.paint(m.times(prim), white)
        tert = pt.mask(P["tertials"])
        if tert is not None:
            pt.paint(tert.times(wing), white, SEG["mantle"])

    bill = pt.mask(P["bill"])
    if bill is not None:
        pt.paint(bill, np.asarray(ind.bill) * dome_shade(bill, 0.012 * px, light, 0.2)[..., None], SEG["bill"])
        red, black = np.array([0.86, 0.13, 0.09]), np.array([0.07, 0.07, 0.07])
        lower = pt.mask(P["lower_mandible"])
        if sp.bill_pattern == "red_spot":
            spot = pt.mask(P["gonys_spot"])
            pt.paint(spot.times(bill).times(lower) if spot else None, red)
        elif sp.bill_pattern == "black_ring":
            ring = pt.mask(P["bill_ring"])
            pt.paint(ring.times(bill) if ring else None, black)
        elif sp.bill_pattern == "red_black_spots":
            r = pt.mask(P["red_spot_small"])
            pt.paint(r.times(bill).times(lower) if r else None, red)
            k = pt.mask(P["black_spot"])
            pt.paint(k.times(bill) if k else None, black)
        elif sp.bill_pattern == "black_tip":
            tip = pt.mask(P["bill_tip_region"])
            pt.paint(tip.times(bill) if tip else None, black)
        elif sp.bill_pattern == "yellow_tip":
            tip = pt.mask(P["bill_yellow_tip"])
            pt.paint(tip.times(bill) if tip else None, np.array([0.94, 0.82, 0.24]))
        gape = pt.mask(P["gape"])
        pt.paint(gape.times(bill) if gape else None, np.asarray(ind.bill) * 0.45)

    for key, rgb in (("orbital", ind.orbital), ("iris", ind.iris), ("pupil", (0.02, 0.02, 0.02))):
        pt.paint(pt.mask(P[key]), np.asarray(rgb), SEG["eye"])


def bird_mask(pt: Painter, o: Outline) -> Mask | None:
    """The bird's silhouette (used for water lines and the bounding box)."""
    return pt.union(*(pt.mask(o.polys[k]) for k in ("body", "neck", "head", "wing", "tail", "bill")))


__all__ = ["SEG", "SEG_LABELS", "Individual", "Outline", "Placement", "Posture", "Window", "outline", "paint"]
