"""I-GOS and iGOS++ on models whose answer is known."""

import pytest
import torch
from torch import nn

from pipeline.methods.common import ClassProbability, frozen, gaussian_blur
from pipeline.methods.igos import (
    IgosParams,
    adapt_l1,
    bilateral_weights,
    btv_norm,
    igos,
    igos_pp,
    igos_trace,
    tv_norm,
)
from tests.toys import BlurKeepsClassModel, QuadrantModel, blur_keeps_class_images, quadrant_images, top_left_share

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


def _schedule_run(slope: float, keep: float, schedule: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images, baselines = blur_keeps_class_images(keep)
    score = ClassProbability(BlurKeepsClassModel(slope), torch.zeros(2, dtype=torch.long))
    with frozen(score.model):
        mask, l1 = igos_trace(score, images, baselines, IgosParams(size=14, l1_schedule=schedule))
        up = torch.nn.functional.interpolate(mask, size=112, mode="bilinear", align_corners=True)
        with torch.no_grad():
            deleted = score(images * up + baselines * (1 - up), torch.arange(2))
    return mask, l1, deleted


def test_adaptive_l1_rescues_an_image_whose_blur_keeps_the_class() -> None:
    """Known answer: image 0's baseline keeps the class (0.47 vs 0.80), so at λ1 = 1 deleting the
    quadrant the model reads costs more than it gains and the mask stays all ones. The authors'
    schedule divides λ1 by 10 after iteration ⌊15/2⌋ = 7 for that image only (image 1, with a
    dark baseline, moved at once) and the mask then deletes the quadrant."""
    mask, l1, deleted = _schedule_run(10.0, 0.85, schedule=True)
    assert torch.allclose(l1[0], torch.tensor([1.0] * 8 + [0.1] * 7))  # moved > 0.01 by ⌊15/1.25⌋: no ÷5
    assert torch.equal(l1[1], torch.ones(15))
    sal = 1 - mask.squeeze(1)
    assert sal[0].max() > 0.1 and top_left_share(sal[:1]) >= 0.8
    assert deleted[0] < 0.8 - 0.02
    without, l1_off, deleted_off = _schedule_run(10.0, 0.85, schedule=False)
    assert torch.equal(l1_off, torch.ones(2, 15))
    assert (1 - without[0]).max() < 1e-4  # the L1 prior wins: nothing deleted
    assert torch.allclose(without[1], mask[1])  # the schedule did not touch image 1
    assert torch.isclose(deleted_off[0], torch.tensor(0.8006), atol=1e-3)


def test_adaptive_l1_second_cut_at_the_authors_iteration() -> None:
    """A flatter model (slope 8, baseline keeps 90 %): the score still moves ≤ 0.01 by ⌊15/1.25⌋ = 12,
    so λ1 is divided again, by 5, from iteration 13."""
    _, l1, _ = _schedule_run(8.0, 0.9, schedule=True)
    assert torch.allclose(l1[0], torch.tensor([1.0] * 8 + [0.1] * 5 + [0.02] * 2))


def test_adapt_l1_needs_more_than_three_iterations() -> None:
    scores = [torch.tensor([0.5])] * 3
    assert torch.equal(adapt_l1(torch.ones(1), scores, 1, 3), torch.ones(1))
    assert torch.allclose(adapt_l1(torch.ones(1), scores * 2, 2, 4), torch.tensor([0.1]))


def test_igos_pp_authors_line_search_finds_the_quadrant_and_repeats() -> None:
    """The authors' line search (noisy integrated sums, product of upsampled masks): same answer on
    the toy, the same masks on a rerun and one image at a time, and not the same masks as ours."""
    score, images, blurred = setup()
    authors = IgosParams(size=14, alpha0=1000.0, line_search="integrated", iterations=8, steps=8)
    with frozen(score.model):
        m_del, m_ins = igos_pp(score, images, blurred, authors)
        again = igos_pp(score, images, blurred, authors)
        single = ClassProbability(score.model, torch.zeros(1, dtype=torch.long))
        alone = igos_pp(single, images[1:], blurred[1:], authors)
        ours = igos_pp(score, images, blurred, IgosParams(size=14, alpha0=1000.0, iterations=8, steps=8))
    assert (top_left_share(1 - (m_del * m_ins).squeeze(1)) >= 0.8).all()
    assert torch.equal(m_del * m_ins, again[0] * again[1])
    assert torch.allclose(alone[0] * alone[1], (m_del * m_ins)[1:], atol=1e-4)
    assert not torch.allclose(ours[0] * ours[1], m_del * m_ins, atol=1e-3)


def test_unknown_line_search_is_refused() -> None:
    score, images, blurred = setup(1)
    with pytest.raises(ValueError, match="line_search"):
        igos_pp(score, images, blurred, IgosParams(size=7, line_search="nope"))
