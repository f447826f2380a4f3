"""XNN pieces against known answers."""

import pytest
import torch
from torch import nn

from pipeline.methods.xnn import (
    SRAE,
    ConceptScore,
    XnnParams,
    faithfulness,
    hidden_sizes,
    log_penalty,
    pull_away,
    significant,
    train_xnn,
)


@pytest.mark.parametrize("pull", ["images", "features"])
def test_two_independent_factors_give_two_concepts_that_separate_them(pull: str) -> None:
    """Each image shows concept A, concept B, both or neither (independently, with varying
    strength); each drives its own block of features and the logit counts both. The XNN must
    give each factor its own x-feature, one that ignores the other factor."""
    gen = torch.Generator().manual_seed(0)
    n, d = 500, 32
    f = (torch.rand(n, 2, generator=gen) < 0.5).float() * (0.5 + torch.rand(n, 2, generator=gen))
    u = torch.zeros(2, d)
    u[0, :8], u[1, 8:16] = 1.0, 1.0
    x = torch.relu(f @ u * 3 + torch.randn(n, d, generator=gen) * 0.05)
    y = 2 * f[:, 0] + 2 * f[:, 1]
    trained = train_xnn(x, y, XnnParams(pull_away=pull))
    with torch.no_grad():
        z, y_hat, _ = trained.model(x)
    corr = torch.corrcoef(torch.cat([z.t(), f.t()]))[:5, 5:].nan_to_num(0.0)
    first, second = int(corr[:, 0].argmax()), int(corr[:, 1].argmax())
    assert first != second
    assert corr[first, 0] > 0.9 and corr[second, 1] > 0.9
    assert corr[first, 1] < 0.4 and corr[second, 0] < 0.4
    assert trained.accepted and (y_hat - y).pow(2).mean().sqrt() < 0.25  # the logit is rebuilt


def test_significant_concepts_cover_ninety_percent_of_the_positive_score() -> None:
    assert significant(torch.tensor([0.5, -1.0, 3.0, 1.0, 0.2]), 0.8) == [2, 3]
    assert significant(torch.tensor([5.0, 0.1, 0.0])) == [0]
    assert significant(torch.tensor([-1.0, 0.0])) == []


def test_significant_by_hand() -> None:
    # positive: 3.0, 1.0, 0.5, 0.2 = 4.7; 90 % = 4.23; 3.0 + 1.0 = 4.0 < 4.23, + 0.5 = 4.5 ≥ 4.23
    assert significant(torch.tensor([0.5, -1.0, 3.0, 1.0, 0.2]), 0.9) == [2, 3, 0]


def test_log_penalty_and_pull_away_by_hand() -> None:
    x = torch.zeros(2, 2)
    x_hat = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # dimension 0: mean error² 1 -> log(1 + 100) ; dimension 1: 0 -> log 1 = 0; mean over dims
    assert log_penalty(x_hat, x, 100.0).item() == pytest.approx(torch.log(torch.tensor(101.0)).item() / 2)
    same = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    assert pull_away(same, "images").item() == pytest.approx(1.0)
    assert pull_away(orthogonal, "images").item() == pytest.approx(0.0)
    assert pull_away(orthogonal, "features").item() == pytest.approx(0.0)


def test_srae_shapes_and_non_negative_concepts() -> None:
    assert hidden_sizes(4096) == (800, 100) and hidden_sizes(128) == (128, 64)
    m = SRAE(128, 5).eval()
    z, y, x_hat = m(torch.randn(7, 128))
    assert z.shape == (7, 5) and (z >= 0).all() and y.shape == (7,) and x_hat.shape == (7, 128)
    assert torch.allclose(m.contributions(z).sum(1) + m.out.bias, y, atol=1e-5)


def test_faithfulness_report() -> None:
    class Fixed(nn.Module):
        def __init__(self, value: torch.Tensor) -> None:
            super().__init__()
            self.value = value

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            return x, self.value, x

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    rebuilt = [Fixed(torch.tensor([2.0, 0.0, 0.0])), Fixed(torch.tensor([0.0, 1.0, 1.0]))]
    f = faithfulness(rebuilt, torch.zeros(3, 1), logits, torch.tensor([0, 1, 0]))  # type: ignore[arg-type]
    assert (
        f.accuracy_classifier == 1.0 and f.accuracy_xnn == pytest.approx(2 / 3) and f.agreement == pytest.approx(2 / 3)
    )
    assert f.rmse[0] == pytest.approx((1 / 3) ** 0.5) and f.logit_range == [2.0, 1.0]


def test_concept_score_is_relative_and_differentiable() -> None:
    class Net(nn.Module):
        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :4]

    xnns = [SRAE(4, 2).eval(), SRAE(4, 2).eval()]
    x = torch.rand(2, 1, 2, 2, requires_grad=True)
    with torch.no_grad():
        ref = torch.stack([xnns[0].encode(x[:1].flatten(1))[0, 1], xnns[1].encode(x[1:].flatten(1))[0, 0]])
    score = ConceptScore(Net(), xnns, torch.tensor([0, 1]), torch.tensor([1, 0]), ref.clamp(min=1e-3))
    out = score(x, torch.tensor([0, 1]))
    expected = torch.where(ref > 1e-6, torch.ones(2), torch.zeros(2))
    assert torch.allclose(out.detach(), expected, atol=1e-5)
