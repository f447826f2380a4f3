"""Baselines through one interface, checked on toy models with known answers."""

import torch
from torch import nn

from pipeline.methods import baselines as bl
from pipeline.methods.common import black_baseline, gaussian_blur
from pipeline.methods.examples import nearest
from tests.toys import QuadrantModel, quadrant_images, top_left_share


class TinyCNN(nn.Module):
    """A named `body` conv stack like our classifiers, with a head: what Grad-CAM needs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3)))


def test_gradcam_is_non_negative_at_layer_resolution() -> None:
    sal = bl.gradcam(TinyCNN(), torch.randn(2, 3, 16, 16), torch.tensor([0, 2]))  # type: ignore[arg-type]
    assert sal.shape == (2, 16, 16) and sal.min() >= 0


def test_integrated_gradients_completeness_and_location() -> None:
    images = quadrant_images()
    model = QuadrantModel()
    sal, delta = bl.integrated_gradients(
        model, images, torch.tensor([0, 0]), gaussian_blur(images, 25, 25.0), bl.IgParams(steps=32)
    )  # type: ignore[arg-type]
    assert sal.shape == (2, 112, 112)
    assert (delta < 0.02).all()  # attributions add up to the score difference
    assert (top_left_share(sal) > 0.8).all()


def test_occlusion_points_at_the_quadrant() -> None:
    images = quadrant_images()
    blurred = gaussian_blur(images, 25, 25.0)
    p = bl.OcclusionParams(window=16, stride=8)
    sal = bl.occlusion(QuadrantModel(), images, torch.tensor([0, 0]), blurred, p)  # type: ignore[arg-type]
    assert (top_left_share(sal.clamp(min=0)) > 0.9).all()


def test_rise_points_at_the_quadrant_and_is_seeded() -> None:
    images = quadrant_images(1)
    model = QuadrantModel()
    p = bl.RiseParams(masks=600, grid=7, seed=3)
    a = bl.rise(model, images, torch.tensor([0]), p)  # type: ignore[arg-type]
    b = bl.rise(model, images, torch.tensor([0]), p)  # type: ignore[arg-type]
    assert torch.equal(a, b)
    above_mean = (a - a.mean()).clamp(min=0)
    assert top_left_share(above_mean).item() > 0.6


def test_rise_mask_bank_is_seeded_and_soft() -> None:
    m1 = bl.rise_masks(20, 7, 0.5, 64, 1, "cpu")
    m2 = bl.rise_masks(20, 7, 0.5, 64, 1, "cpu")
    m3 = bl.rise_masks(20, 7, 0.5, 64, 2, "cpu")
    assert m1.shape == (20, 1, 64, 64) and torch.equal(m1, m2) and not torch.equal(m1, m3)
    assert 0.3 < m1.mean() < 0.7 and ((m1 > 0.05) & (m1 < 0.95)).any()  # bilinear, not binary


def test_black_is_black_in_pixel_space() -> None:
    t = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    b = black_baseline(torch.zeros(1, 3, 2, 2), t)
    assert torch.allclose(b[0, :, 0, 0], torch.tensor([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]))


def test_nearest_examples_by_hand() -> None:
    bank = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    idx, dist = nearest(torch.tensor([[0.9, 0.1]]), bank, k=3)
    assert idx.tolist() == [[1, 0, 2]]
    assert torch.allclose(dist, torch.tensor([[0.1414, 0.9055, 2.1024]]), atol=1e-4)
    idx, _ = nearest(torch.tensor([[1.0, 0.0]]), bank, k=1, exclude=torch.tensor([1]))
    assert idx.tolist() == [[0]]  # the image itself is not its own example
