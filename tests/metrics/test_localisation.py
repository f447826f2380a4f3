import numpy as np

from pipeline.metrics.localisation import energy, point_mask, pointing_hit


def test_energy_is_the_share_of_mass_inside() -> None:
    s = np.zeros((10, 10))
    s[0, 0], s[5, 5] = 3.0, 1.0
    m = np.zeros((10, 10), bool)
    m[:2, :2] = True
    assert energy(s, m) == 0.75
    assert energy(np.zeros((4, 4)), m[:4, :4]) == 0.0


def test_pointing_game_tolerance() -> None:
    s = np.zeros((100, 100))
    s[50, 70] = 1.0
    m = np.zeros((100, 100), bool)
    m[40:60, 40:56] = True  # peak is 14 px to the right of the part
    assert pointing_hit(s, m, tolerance=15)
    assert not pointing_hit(s, m, tolerance=10)
    assert not pointing_hit(s, np.zeros_like(m))


def test_point_mask_is_a_disc() -> None:
    d = point_mask((50, 50), 25, 25, radius=15)
    assert d[25, 40] and not d[25, 41]
    assert abs(d.sum() - np.pi * 15**2) < 30
