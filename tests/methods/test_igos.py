"""I-GOS and iGOS++ on models whose answer is known."""

import torch
from torch import nn

from pipeline.methods.common import ClassProbability, frozen, gaussian_blur
from pipeline.methods.igos import IgosParams, bilateral_weights, btv_norm, igos, igos_pp, tv_norm
from tests.toys import QuadrantModel, quadrant_images, top_left_share

P = IgosParams(size=14)
PP = IgosParams(size=14, alpha0=1000.0)


def setup(n: int = 2) -> tuple[ClassProbability, torch.Tensor, torch.Tensor]:
    images = quadrant_images(n)
    return ClassProbability(QuadrantModel(), torch.zeros(n, dtype=torch.long)), images, gaussian_blur(images, 25, 25.0)


def test_igos_finds_the_quadrant_the_model_looks_at() -> None:
    score, images, blurred = setup()
    with frozen(score.model):
        mask = igos(score, images, blurred, P)
    assert mask.shape == (2, 1, 14, 14) and mask.min() >= 0 and mask.max() <= 1
    assert (top_left_share(1 - mask.squeeze(1)) >= 0.8).all()
    # Deleting what I-GOS found must lower the probability.
    up = torch.nn.functional.interpolate(mask, size=112, mode="bilinear", align_corners=True)
    with torch.no_grad():
        before = score(images, torch.arange(2))
        after = score(images * up + blurred * (1 - up), torch.arange(2))
    assert (after < before - 0.3).all()


def test_igos_pp_finds_the_quadrant_the_model_looks_at() -> None:
    score, images, blurred = setup()
    with frozen(score.model):
        m_del, m_ins = igos_pp(score, images, blurred, PP)
    assert (top_left_share(1 - (m_del * m_ins).squeeze(1)) >= 0.8).all()


def test_batched_equals_one_image_at_a_time_and_is_deterministic() -> None:
    score, images, blurred = setup(3)
    with frozen(score.model):
        batched = igos(score, images, blurred, P)
        again = igos(score, images, blurred, P)
        for i in range(3):
            single = ClassProbability(score.model, torch.zeros(1, dtype=torch.long))
            alone = igos(single, images[i : i + 1], blurred[i : i + 1], P)
            assert torch.allclose(alone, batched[i : i + 1], atol=1e-4)
    assert torch.equal(batched, again)
    with frozen(score.model):
        other_seed = igos(score, images, blurred, IgosParams(size=14, seed=7))
    assert not torch.equal(other_seed, batched)


def test_small_forward_batches_give_the_same_masks() -> None:
    score, images, blurred = setup()
    with frozen(score.model):
        big = igos_pp(score, images, blurred, PP)
        small = igos_pp(score, images, blurred, IgosParams(size=14, alpha0=1000.0, max_batch=7))
    assert torch.allclose(big[0] * big[1], small[0] * small[1], atol=1e-4)


def test_the_callers_model_is_left_as_it_was() -> None:
    model = QuadrantModel().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    score = ClassProbability(model, torch.zeros(2, dtype=torch.long))
    images = quadrant_images()
    with frozen(model):
        igos(score, images, gaussian_blur(images, 25, 25.0), IgosParams(size=14, iterations=2, steps=3))
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_total_variation_by_hand() -> None:
    m = torch.tensor([[0.0, 1.0], [1.0, 1.0]]).view(1, 1, 2, 2)
    # vertical pairs: (0,1) and (1,1) -> mean of 1 and 0 = 0.5; horizontal likewise 0.5
    assert torch.allclose(tv_norm(m), torch.tensor([1.0]))


def test_bilateral_tv_is_free_along_image_edges() -> None:
    """A mask edge that follows an image edge costs less than the same edge in a flat image."""
    flat = torch.zeros(1, 3, 28, 28)
    edged = flat.clone()
    edged[..., :, 14:] = 2.0
    mask = torch.ones(1, 1, 28, 28)
    mask[..., :, 14:] = 0.0
    along_edge = btv_norm(mask, bilateral_weights(edged, 0.01))
    in_flat = btv_norm(mask, bilateral_weights(flat, 0.01))
    assert along_edge < in_flat
    assert torch.allclose(along_edge, 0.5 * tv_norm(mask), atol=1e-6)  # the image-space terms vanish


class Linear(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.mean((1, 2, 3)) * 3, torch.zeros(len(x))], 1)


def test_masks_stay_at_one_when_nothing_can_be_gained() -> None:
    """If the baseline scores as high as the image, no cell is worth deleting."""
    images = torch.ones(1, 3, 28, 28)
    score = ClassProbability(Linear(), torch.zeros(1, dtype=torch.long))
    with frozen(score.model):
        mask = igos(score, images, images.clone(), IgosParams(size=7, iterations=3, steps=4))
    assert torch.allclose(mask, torch.ones_like(mask))
