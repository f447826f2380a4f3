"""The renderer draws each species' marks where the segmentation says they are."""

import numpy as np
import pytest

from pipeline.data.gull import SEG
from pipeline.data.scene import CUB_PARTS, render_scene
from pipeline.data.species import BY_ID


def clean(cub_id: int, seed: int = 0, size: int = 224):
    return render_scene(BY_ID[cub_id], np.random.default_rng([seed, cub_id]), size=size, clean=True)


def colour_of(scene, label: str) -> np.ndarray:
    sel = scene.segmentation == SEG[label]
    assert sel.sum() > 0, f"no {label} pixels"
    return scene.image[sel].astype(float).mean(0) / 255


def test_same_seed_same_picture_other_seed_other_picture() -> None:
    a = render_scene(BY_ID[62], np.random.default_rng(5))
    b = render_scene(BY_ID[62], np.random.default_rng(5))
    c = render_scene(BY_ID[62], np.random.default_rng(6))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.segmentation, b.segmentation)
    assert not np.array_equal(a.image, c.image)


def test_every_part_of_a_standing_gull_is_segmented() -> None:
    s = clean(62)
    present = set(np.unique(s.segmentation).tolist())
    assert present == set(SEG.values())


def test_leg_colours_pink_yellow_black() -> None:
    pink, yellow, black = colour_of(clean(62), "legs"), colour_of(clean(64), "legs"), colour_of(clean(63), "legs")
    assert pink[0] > pink[1] + 0.1 and abs(pink[1] - pink[2]) < 0.06  # red over equal green and blue
    assert yellow[0] > 0.7 and yellow[1] > 0.6 and yellow[2] < 0.35  # red + green, no blue
    assert black.max() < 0.25


def test_eyes_pale_for_herring_and_slaty_dark_for_western() -> None:
    herring, slaty, western = (colour_of(clean(c), "eye").mean() for c in (62, 65, 66))
    assert herring > western + 0.15 and slaty > western + 0.15


def test_mantle_shades_rank_as_in_the_field() -> None:
    shade = {c: colour_of(clean(c), "mantle").mean() for c in (63, 62, 59, 66, 65)}
    assert shade[63] > shade[62] > shade[59] > shade[66]
    assert shade[65] < shade[62] - 0.25


def test_wingtips_grey_for_glaucous_winged_black_for_herring() -> None:
    assert colour_of(clean(60), "wingtips").mean() > 0.45
    assert colour_of(clean(62), "wingtips").mean() < 0.3


def test_bill_marks() -> None:
    def bill_pixels(cub_id: int) -> np.ndarray:
        s = clean(cub_id)
        return s.image[s.segmentation == SEG["bill"]].astype(float) / 255

    ring = bill_pixels(64)
    assert (ring.max(1) < 0.2).sum() >= 4  # a black ring across the bill
    herring = bill_pixels(62)
    red = (herring[:, 0] > 0.6) & (herring[:, 1] < 0.3)
    assert red.sum() >= 2 and (herring.max(1) < 0.2).sum() == 0  # red spot, no black
    heermann = bill_pixels(61)
    assert ((heermann[:, 0] > 0.6) & (heermann[:, 1] < 0.3)).mean() > 0.5  # mostly red


def test_part_locations_sit_on_the_bird_and_respect_facing() -> None:
    for seed in range(6):
        s = render_scene(BY_ID[66], np.random.default_rng(seed))
        names = dict(zip(CUB_PARTS, s.parts, strict=True))
        for name, (x, y, v) in names.items():
            if v:
                assert s.segmentation[int(y), int(x)] != SEG["background"], name
        hidden = "left eye" if s.info.facing == "right" else "right eye"
        assert names[hidden][2] == 0
        x, y, w, h = s.bbox
        ys, xs = np.nonzero(s.segmentation)
        assert xs.min() >= x and xs.max() < x + w and ys.min() >= y and ys.max() < y + h


def test_swimming_birds_hide_their_legs() -> None:
    for seed in range(40):
        s = render_scene(BY_ID[62], np.random.default_rng(seed), background="sea")
        if s.info.pose == "swimming":
            assert not s.info.legs_visible
            assert (s.segmentation == SEG["legs"]).sum() == 0
            assert all(s.parts[CUB_PARTS.index(p)][2] == 0 for p in ("left leg", "right leg"))
            return
    pytest.fail("no swimming bird in 40 sea scenes")


def test_small_marks_are_only_a_few_pixels_wide() -> None:
    """At 224 px the eye is a few pixels across: the task is fine-grained by construction."""
    widths = []
    for seed in range(10):
        s = render_scene(BY_ID[62], np.random.default_rng(seed))
        _, xs = np.nonzero(s.segmentation == SEG["eye"])
        if len(xs):
            widths.append(xs.max() - xs.min() + 1)
    assert widths and 2 <= np.median(widths) <= 8
