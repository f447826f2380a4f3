"""Deletion and insertion AUCs equal hand-computed values on a constructed case."""

import itertools

import pytest
import torch

from pipeline.methods.common import ClassProbability
from pipeline.metrics.faithfulness import PROTOCOLS, deletion_insertion, ranking
from tests.toys import KeptShareModel


def kept_share(size: int, n: int = 1) -> tuple[ClassProbability, torch.Tensor, torch.Tensor]:
    images = torch.zeros(n, 3, size, size)
    images[:, 0] = 1.0  # the model's score is the share of channel 0 still showing the image
    return ClassProbability(KeptShareModel(), torch.zeros(n, dtype=torch.long)), images, torch.zeros_like(images)


def test_igos_protocol_by_hand() -> None:
    """At 28×28 with an image of ones and a baseline of zeros, the deletion score after removing
    c cells is 1 − c/784 and the insertion score is c/784, whatever the ranking."""
    score, images, blurred = kept_share(28)
    curves = deletion_insertion(score, images, torch.rand(1, 28, 28), "igos", blurred)
    counts = [*range(0, 784, 15), 784]  # steps of 784 // 50 = 15 cells, the last one 4 cells
    assert curves.removed.tolist() == pytest.approx([c / 784 for c in counts])
    expected_del = sum((1 - c / 784) * (c - prev) / 784 for prev, c in itertools.pairwise(counts))
    expected_ins = sum((c / 784) * (c - prev) / 784 for prev, c in itertools.pairwise(counts))
    assert curves.deletion_auc.item() == pytest.approx(expected_del, abs=1e-5)
    assert curves.insertion_auc.item() == pytest.approx(expected_ins, abs=1e-5)
    assert expected_del == pytest.approx(0.4904, abs=1e-4) and expected_ins == pytest.approx(0.5096, abs=1e-4)
    # the original code's last step added (784 - 780) = 4 instead of score × 4 cells
    buggy = sum((1 - c / 784) * 15 / 784 for c in counts[1:-1]) + 4
    assert curves.deletion_auc.item() != pytest.approx(buggy)
    assert curves.deletion[0, 0].item() == pytest.approx(1.0, abs=1e-5)
    assert curves.insertion[0, 0].item() == pytest.approx(0.0, abs=1e-5)


def test_rise_protocol_by_hand() -> None:
    """Pixel steps of 224 from a full score of 1 to 0 in equal steps: the trapezoid AUC is 1/2."""
    score, images, _ = kept_share(224)
    curves = deletion_insertion(score, images, torch.rand(1, 224, 224), "rise")
    assert curves.deletion.shape == (1, 225)
    assert curves.deletion_auc.item() == pytest.approx(0.5, abs=1e-4)
    assert curves.insertion[0, -1].item() == pytest.approx(1.0, abs=1e-5)  # everything inserted: the image itself
    assert curves.insertion[0, 0].item() < 1.0  # starts from the mildly blurred image


def test_a_good_map_beats_a_bad_one() -> None:
    """Score = share of the top-left quadrant kept; a map on that quadrant deletes faster."""

    class TopLeft(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p = x[:, 0, :14, :14].mean((1, 2)).clamp(1e-6, 1 - 1e-6)
            return torch.stack([p.log(), (1 - p).log()], 1)

    images = torch.zeros(1, 3, 28, 28)
    images[:, 0] = 1.0
    score = ClassProbability(TopLeft(), torch.zeros(1, dtype=torch.long))
    good = torch.zeros(1, 28, 28)
    good[:, :14, :14] = 1.0
    bad = 1.0 - good
    g = deletion_insertion(score, images, good, "igos", torch.zeros_like(images))
    b = deletion_insertion(score, images, bad, "igos", torch.zeros_like(images))
    assert g.deletion_auc < b.deletion_auc and g.insertion_auc > b.insertion_auc


def test_ties_are_broken_by_position() -> None:
    order = ranking(torch.tensor([[[0.5, 1.0], [0.5, 0.5]]]))
    assert order.tolist() == [[1, 0, 2, 3]]


def test_protocols_are_described() -> None:
    assert set(PROTOCOLS) == {"igos", "igos-native", "rise"}
    assert PROTOCOLS["igos"].resolution == 28 and PROTOCOLS["rise"].unit == "pixel"


def test_igos_protocol_needs_the_blurred_baseline() -> None:
    score, images, _ = kept_share(28)
    with pytest.raises(ValueError, match="blurred baseline"):
        deletion_insertion(score, images, torch.rand(1, 28, 28), "igos")


def test_igos_native_ranks_the_maps_own_grid() -> None:
    """A 7×7 map under igos-native: 49 cells, one per step (49 // 50 rounds up to 1); with the
    kept-share model deletion after c cells scores 1 − c/49, so the AUC is 24/49. Under `igos` the
    same map is enlarged to 28×28 first and that resolution is what the score records."""
    score, images, blurred = kept_share(7)
    native = deletion_insertion(score, images, torch.rand(1, 7, 7), "igos-native", blurred)
    assert native.resolution == 7 and len(native.removed) == 50
    assert native.removed.tolist() == pytest.approx([c / 49 for c in range(50)])
    assert native.deletion_auc.item() == pytest.approx(24 / 49, abs=1e-5)
    assert native.insertion_auc.item() == pytest.approx(25 / 49, abs=1e-5)
    score28, images28, blurred28 = kept_share(28)
    assert deletion_insertion(score28, images28, torch.rand(1, 7, 7), "igos", blurred28).resolution == 28
    assert PROTOCOLS["igos-native"].resolution == 0  # "the map's own", recorded with each score
