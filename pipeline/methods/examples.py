"""Example-based explanation: the training images nearest to an image in the classifier's feature space."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class ExamplesParams:
    k: int = 3  # neighbours shown
    space: str = "penultimate features"  # what is compared (recorded, not a choice yet)
    distance: str = "euclidean"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def nearest(
    queries: torch.Tensor,
    bank: torch.Tensor,
    k: int = 3,
    exclude: torch.Tensor | None = None,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (N×k) and Euclidean distances (N×k) of each query's k nearest rows of `bank`.

    `exclude` (N, bank index or -1) removes one row per query, e.g. the image itself when
    explaining a training image. `allowed` (N×M, bool) keeps only the rows a query may be shown,
    e.g. the training images of the class the model predicted; where fewer than k are allowed,
    the missing places have distance inf.
    """
    d = torch.cdist(queries.double(), bank.double())
    if exclude is not None:
        rows = torch.arange(len(queries))[exclude >= 0]
        d[rows, exclude[exclude >= 0]] = float("inf")
    if allowed is not None:
        d = d.masked_fill(~allowed, float("inf"))
    dist, idx = torch.topk(d, k=min(k, bank.shape[0]), dim=1, largest=False)
    return idx, dist.float()
