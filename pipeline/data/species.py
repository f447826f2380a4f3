"""The eight CUB-200-2011 gull species and the adult field marks that tell them apart.

Marks follow the adult field-mark table of the project's reference notes (seed-algorithms §7.3,
compiled from eBird, All About Birds, Crossley and regional guides). Colours are sRGB in [0, 1].
Every mark has a range: individual birds vary, and the renderer draws each bird's own value
inside it, so no single pixel value identifies a species.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

RGB = tuple[float, float, float]

WingtipPattern = Literal["black_mirrors", "black_pearls", "black_spots", "grey", "white", "dark"]
BillPattern = Literal["red_spot", "black_ring", "red_black_spots", "black_tip", "yellow_tip"]


@dataclass(frozen=True)
class Species:
    cub_id: int
    name: str  # CUB folder name without the number, e.g. "Herring_Gull"
    common: str
    scientific: str
    mantle: tuple[float, float]  # range of the grey value of back and upper wing
    mantle_tint: RGB  # multiplies the grey: slaty birds are faintly blue
    body: tuple[float, float]  # grey value of head, breast and belly (1 = white)
    wingtip: WingtipPattern
    wingtip_grey: tuple[float, float]  # grey value of the primaries
    bill: RGB
    bill_pattern: BillPattern
    legs: RGB
    iris: RGB
    orbital: RGB
    size: float  # relative body length (Herring = 1)
    leg_length: float  # in body lengths
    bill_length: float  # in body lengths
    bill_depth: float  # in body lengths, at the base
    gonys: float  # depth of the lower-mandible angle, in body lengths
    head_radius: float  # in body lengths
    wing_projection: float  # how far the primaries reach past the tail, in body lengths
    tail_grey: float = 1.0
    trailing_edge: float = 0.012  # width of the white tertial crescent / trailing edge
    mirror_count: int = 1  # white spots near the tip of black primaries
    mirror_size: float = 0.020  # radius, in body lengths
    marks: dict[str, str] = field(default_factory=dict)  # plain-words guide, mark -> text
    # Segmentation parts that tell it from its look-alikes (for "does the map point at the right mark?").
    discriminative: tuple[str, ...] = ()

    @property
    def folder(self) -> str:
        return f"{self.cub_id:03d}.{self.name}"


YELLOW: RGB = (0.96, 0.80, 0.18)
PINK: RGB = (0.93, 0.63, 0.62)
PALE_EYE: RGB = (0.96, 0.92, 0.62)
DARK_EYE: RGB = (0.20, 0.12, 0.08)
BLACK_LEGS: RGB = (0.10, 0.10, 0.11)
RED_RING: RGB = (0.82, 0.16, 0.12)
ORANGE_RING: RGB = (0.96, 0.62, 0.16)
BLUISH: RGB = (0.93, 0.96, 1.0)

SPECIES: tuple[Species, ...] = (
    Species(
        59,
        "California_Gull",
        "California Gull",
        "Larus californicus",
        mantle=(0.58, 0.66),
        mantle_tint=BLUISH,
        body=(0.97, 1.0),
        wingtip="black_spots",
        wingtip_grey=(0.08, 0.14),
        bill=(0.95, 0.84, 0.22),
        bill_pattern="red_black_spots",
        legs=(0.80, 0.82, 0.30),
        iris=DARK_EYE,
        orbital=RED_RING,
        size=0.92,
        leg_length=0.30,
        bill_length=0.17,
        bill_depth=0.056,
        gonys=0.012,
        head_radius=0.125,
        wing_projection=0.22,
        marks={
            "mantle": "medium grey back, a shade darker than Herring",
            "bill": "yellow bill with a red and a black spot near the tip",
            "legs": "greenish-yellow legs",
            "eye": "dark eye",
            "wingtips": "black wingtips with white spots",
        },
        discriminative=("bill", "legs"),
    ),
    Species(
        60,
        "Glaucous_winged_Gull",
        "Glaucous-winged Gull",
        "Larus glaucescens",
        mantle=(0.70, 0.78),
        mantle_tint=BLUISH,
        body=(0.97, 1.0),
        wingtip="grey",
        wingtip_grey=(0.58, 0.68),
        bill=(0.94, 0.80, 0.26),
        bill_pattern="red_spot",
        legs=PINK,
        iris=DARK_EYE,
        orbital=(0.85, 0.45, 0.55),
        size=1.08,
        leg_length=0.31,
        bill_length=0.21,
        bill_depth=0.072,
        gonys=0.018,
        head_radius=0.14,
        wing_projection=0.20,
        marks={
            "mantle": "pale grey back",
            "wingtips": "grey wingtips, about the shade of the back (no black)",
            "bill": "heavy yellow bill with a red spot",
            "legs": "pink legs",
            "eye": "dark eye",
        },
        discriminative=("wingtips",),
    ),
    Species(
        61,
        "Heermann_Gull",
        "Heermann's Gull",
        "Larus heermanni",
        mantle=(0.27, 0.34),
        mantle_tint=(0.98, 0.98, 1.0),
        body=(0.42, 0.52),
        wingtip="dark",
        wingtip_grey=(0.10, 0.16),
        bill=(0.86, 0.12, 0.10),
        bill_pattern="black_tip",
        legs=BLACK_LEGS,
        iris=DARK_EYE,
        orbital=RED_RING,
        size=0.86,
        leg_length=0.29,
        bill_length=0.18,
        bill_depth=0.052,
        gonys=0.008,
        head_radius=0.12,
        wing_projection=0.22,
        tail_grey=0.15,
        trailing_edge=0.016,
        marks={
            "body": "dark grey body, white head",
            "bill": "bright red bill with a black tip",
            "legs": "black legs",
            "mantle": "blackish-grey wings with a white trailing edge",
        },
        discriminative=("bill", "body"),
    ),
    Species(
        62,
        "Herring_Gull",
        "Herring Gull",
        "Larus argentatus",
        mantle=(0.68, 0.76),
        mantle_tint=BLUISH,
        body=(0.97, 1.0),
        wingtip="black_mirrors",
        wingtip_grey=(0.06, 0.12),
        bill=YELLOW,
        bill_pattern="red_spot",
        legs=PINK,
        iris=PALE_EYE,
        orbital=ORANGE_RING,
        size=1.0,
        leg_length=0.31,
        bill_length=0.20,
        bill_depth=0.064,
        gonys=0.015,
        head_radius=0.13,
        wing_projection=0.22,
        marks={
            "mantle": "pale grey back",
            "wingtips": "black wingtips with white mirrors",
            "eye": "pale yellow eye",
            "legs": "pink legs",
            "bill": "yellow bill with a red spot",
        },
        discriminative=("eye", "mantle", "wingtips", "legs"),
    ),
    Species(
        63,
        "Ivory_Gull",
        "Ivory Gull",
        "Pagophila eburnea",
        mantle=(0.97, 1.0),
        mantle_tint=(1.0, 1.0, 0.99),
        body=(0.98, 1.0),
        wingtip="white",
        wingtip_grey=(0.96, 1.0),
        bill=(0.50, 0.58, 0.64),
        bill_pattern="yellow_tip",
        legs=BLACK_LEGS,
        iris=(0.05, 0.05, 0.05),
        orbital=(0.12, 0.12, 0.12),
        size=0.80,
        leg_length=0.22,
        bill_length=0.15,
        bill_depth=0.052,
        gonys=0.008,
        head_radius=0.13,
        wing_projection=0.24,
        marks={
            "body": "all white, no grey anywhere",
            "bill": "blue-grey bill with a yellow tip",
            "legs": "short black legs",
            "eye": "black eye",
        },
        discriminative=("body", "mantle", "legs"),
    ),
    Species(
        64,
        "Ring_billed_Gull",
        "Ring-billed Gull",
        "Larus delawarensis",
        mantle=(0.70, 0.80),
        mantle_tint=BLUISH,
        body=(0.97, 1.0),
        wingtip="black_mirrors",
        wingtip_grey=(0.06, 0.12),
        bill=(0.96, 0.86, 0.24),
        bill_pattern="black_ring",
        legs=(0.96, 0.84, 0.20),
        iris=PALE_EYE,
        orbital=RED_RING,
        size=0.86,
        leg_length=0.29,
        bill_length=0.16,
        bill_depth=0.052,
        gonys=0.008,
        head_radius=0.118,
        wing_projection=0.22,
        mirror_count=2,
        mirror_size=0.014,
        marks={
            "bill": "yellow bill with a complete black ring",
            "legs": "yellow legs",
            "eye": "pale eye",
            "mantle": "pale grey back",
            "wingtips": "black wingtips with small white mirrors",
        },
        discriminative=("bill", "legs"),
    ),
    Species(
        65,
        "Slaty_backed_Gull",
        "Slaty-backed Gull",
        "Larus schistisagus",
        mantle=(0.26, 0.36),
        mantle_tint=(0.94, 0.95, 1.0),
        body=(0.97, 1.0),
        wingtip="black_pearls",
        wingtip_grey=(0.05, 0.10),
        bill=YELLOW,
        bill_pattern="red_spot",
        legs=(0.96, 0.56, 0.64),
        iris=PALE_EYE,
        orbital=(0.85, 0.35, 0.45),
        size=1.05,
        leg_length=0.28,
        bill_length=0.20,
        bill_depth=0.066,
        gonys=0.016,
        head_radius=0.135,
        wing_projection=0.21,
        trailing_edge=0.022,
        marks={
            "mantle": "darkest slaty-grey back with a broad white trailing edge",
            "eye": "pale yellow eye",
            "legs": "bright pink legs",
            "wingtips": "black wingtips with a 'string of pearls' of white spots",
        },
        discriminative=("mantle", "eye"),
    ),
    Species(
        66,
        "Western_Gull",
        "Western Gull",
        "Larus occidentalis",
        mantle=(0.32, 0.46),
        mantle_tint=BLUISH,
        body=(0.97, 1.0),
        wingtip="black_mirrors",
        wingtip_grey=(0.06, 0.12),
        bill=(0.98, 0.82, 0.14),
        bill_pattern="red_spot",
        legs=(0.96, 0.60, 0.62),
        iris=DARK_EYE,
        orbital=ORANGE_RING,
        size=1.05,
        leg_length=0.31,
        bill_length=0.21,
        bill_depth=0.076,
        gonys=0.020,
        head_radius=0.14,
        wing_projection=0.20,
        mirror_size=0.014,
        marks={
            "mantle": "dark grey back",
            "eye": "dark eye (Herring and Slaty-backed have pale eyes)",
            "bill": "very thick bright yellow bill with a red spot",
            "legs": "bright pink legs",
        },
        discriminative=("mantle", "eye"),
    ),
)

BY_ID: dict[int, Species] = {s.cub_id: s for s in SPECIES}


def resolve(token: str) -> Species:
    """Find a species by CUB id ("62", "062"), folder ("062.Herring_Gull") or name ("Herring").

    Raises ValueError naming the accepted spellings when nothing matches.
    """
    t = token.strip()
    if t.isdigit() and int(t) in BY_ID:
        return BY_ID[int(t)]
    key = t.split(".", 1)[-1].lower().replace("-", "_").replace("'s", "").replace(" ", "_")
    for s in SPECIES:
        names = {s.name.lower(), s.name.lower().removesuffix("_gull")}
        if key in names or key.removesuffix("_gull") in names:
            return s
    known = ", ".join(s.name.removesuffix("_Gull") for s in SPECIES)
    raise ValueError(f"unknown species {token!r}; use a CUB id (59-66) or one of: {known}")
