"""Deletion and insertion curves and their AUCs, under named protocols.

A score means something only with its protocol, so each result carries the protocol's name
and `PROTOCOLS` describes them: what is ranked, what fills deleted regions, where insertion
starts, and how the area is summed.

- `igos` (Qi et al.'s and Khorram et al.'s code): the saliency is ranked over the cells of a
  28×28 grid; about 50 steps; cells are removed on a binary grid that is bilinearly upsampled;
  deleted cells show the blurred image (51×51, σ 50) and insertion starts from it; softmax
  probability; AUC = Σ score_k · (cells removed at step k) / cells. The original code added a
  constant instead of the score for the last, partial step; here every step is weighted by its
  own score.
- `igos-native`: the `igos` protocol ranking the cells of the map's own grid (7×7 for Grad-CAM,
  224×224 for pixel maps) instead of 28×28, as the papers' per-resolution tables do. Scored only
  for maps whose resolution is not 28; each score records the side it ranked.
- `rise` (Petsiuk et al.): pixels of the 224×224 image ranked, 224 per step; deleted pixels take
  the mean colour (0 in normalised space); insertion starts from a mild blur (11×11, σ 5, on the
  normalised image); softmax probability; AUC by the trapezoid rule on [0, 1].

Ties in a saliency map are broken by position (row-major), so results are deterministic.
Steps × images go through the model in shared batches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from pipeline.methods.common import Score, gaussian_blur, to_resolution, upsample


@dataclass(frozen=True)
class Protocol:
    name: str
    unit: str  # "cell" or "pixel"
    resolution: int
    deletion_fill: str
    insertion_start: str
    score: str
    steps: int
    auc: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


PROTOCOLS = {
    "igos": Protocol(
        "igos",
        "cell",
        28,
        "blurred image (51×51, σ 50)",
        "blurred image (51×51, σ 50)",
        "softmax probability of the explained class",
        50,
        "Σ score_k · cells removed at step k / cells (right Riemann sum; last-step bug fixed)",
    ),
    "igos-native": Protocol(
        "igos-native",
        "cell",
        0,  # the map's own resolution; each score records it
        "blurred image (51×51, σ 50)",
        "blurred image (51×51, σ 50)",
        "softmax probability of the explained class",
        50,
        "Σ score_k · cells removed at step k / cells (right Riemann sum; last-step bug fixed)",
    ),
    "rise": Protocol(
        "rise",
        "pixel",
        224,
        "mean colour (0 in normalised space)",
        "blurred image (11×11, σ 5, normalised space)",
        "softmax probability of the explained class",
        224,
        "trapezoid rule over steps, x in [0, 1]",
    ),
}


@dataclass
class Curves:
    deletion: torch.Tensor  # N × (K+1), start point included
    insertion: torch.Tensor
    deletion_auc: torch.Tensor  # N
    insertion_auc: torch.Tensor
    removed: torch.Tensor  # K+1: share of units removed/inserted at each point
    resolution: int  # cells or pixels per side that were ranked


def ranking(saliency: torch.Tensor) -> torch.Tensor:
    """Units from most to least salient; ties in row-major order."""
    flat = saliency.flatten(1)
    return torch.sort(flat, dim=1, descending=True, stable=True).indices


def _masks_for(order: torch.Tensor, counts: torch.Tensor, side: int) -> torch.Tensor:
    """Keep-masks (N×P×side×side, 1 = keep) with the first counts[p] units of `order` removed."""
    n, units = order.shape
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(units, device=order.device).expand(n, units))
    keep = rank.unsqueeze(1) >= counts.view(1, -1, 1)
    return keep.float().view(n, len(counts), side, side)


def _scores(
    score: Score,
    images: torch.Tensor,
    start: torch.Tensor,
    fill: torch.Tensor,
    keep: torch.Tensor,
    upsampled: bool,
    max_batch: int,
) -> torch.Tensor:
    """Score of start·K + fill·(1−K) for every image and step, in batches of max_batch."""
    n, points = keep.shape[:2]
    size = (images.shape[-2], images.shape[-1])
    out = torch.empty((n, points), device=images.device)
    rows = torch.arange(n * points, device=images.device)
    for s in range(0, len(rows), max_batch):
        r = rows[s : s + max_batch]
        i, k = r // points, r % points
        m = keep[i, k].unsqueeze(1)
        if upsampled:
            m = upsample(m, size)
        x = start[i] * m + fill[i] * (1 - m)
        out[i, k] = score(x, i)
    return out


@torch.no_grad()
def deletion_insertion(
    score: Score,
    images: torch.Tensor,
    saliency: torch.Tensor,
    protocol: str,
    blurred: torch.Tensor | None = None,
    max_batch: int = 256,
) -> Curves:
    """Both curves and AUCs for N images under `protocol` ("igos", "igos-native" or "rise").

    `saliency` is N×h×w at any resolution; it is brought to the protocol's resolution first
    (area-averaged when finer, bilinearly enlarged when coarser) — except under igos-native, which
    ranks the map's own grid. `blurred` is the 51×51, σ 50 baseline the igos protocols use.
    """
    p = PROTOCOLS[protocol]
    side = saliency.shape[-1] if p.name == "igos-native" else p.resolution
    sal = to_resolution(saliency.to(images.device), side)
    units = side**2
    order = ranking(sal)
    if p.name in ("igos", "igos-native"):
        if blurred is None:
            raise ValueError("the igos protocol needs the blurred baseline")
        step = max(1, units // p.steps)
        counts = torch.cat([torch.arange(0, units, step), torch.tensor([units])]).to(images.device)
        keep = _masks_for(order, counts, side)
        deletion = _scores(score, images, images, blurred, keep, True, max_batch)
        insertion = _scores(score, images, blurred, images, keep, True, max_batch)
        widths = (counts[1:] - counts[:-1]).float() / units
        del_auc = (deletion[:, 1:] * widths).sum(1)
        ins_auc = (insertion[:, 1:] * widths).sum(1)
    else:
        counts = torch.cat([torch.arange(0, units, p.steps), torch.tensor([units])]).to(images.device)
        keep = _masks_for(order, counts, side)
        mean_colour = torch.zeros_like(images)
        mild = gaussian_blur(images, 11, 5.0, border="zeros")
        deletion = _scores(score, images, images, mean_colour, keep, False, max_batch)
        insertion = _scores(score, images, mild, images, keep, False, max_batch)
        del_auc = (deletion.sum(1) - deletion[:, 0] / 2 - deletion[:, -1] / 2) / (deletion.shape[1] - 1)
        ins_auc = (insertion.sum(1) - insertion[:, 0] / 2 - insertion[:, -1] / 2) / (insertion.shape[1] - 1)
    return Curves(deletion, insertion, del_auc, ins_auc, counts.float() / units, side)
