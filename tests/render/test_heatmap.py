import numpy as np

from pipeline.render.heatmap import LUT, normalised, overlay


def test_min_max_normalisation_and_flat_maps() -> None:
    s = normalised(np.array([[1.0, 3.0], [2.0, 5.0]], np.float32), 2)
    assert s.min() == 0 and s.max() == 1 and abs(s[0, 1] - 0.5) < 1e-6
    assert not normalised(np.full((2, 2), 7.0, np.float32), 4).any()


def test_overlay_is_warm_where_salient_and_untouched_where_not() -> None:
    image = np.full((64, 64, 3), 128, np.uint8)
    sal = np.zeros((8, 8), np.float32)
    sal[0, 0] = 1.0
    out = np.asarray(overlay(image, sal)).astype(int)
    assert out.shape == (64, 64, 3)
    assert out[0, 0, 0] > out[0, 0, 2] + 60  # warm: red well above blue at the peak
    assert (out[-1, -1] == 128).all()  # no saliency, no change
    assert LUT[-1, 0] > LUT[-1, 2] and LUT[0, 2] > LUT[0, 0]  # warm at the top, cool at the bottom
