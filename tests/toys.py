"""Tiny models whose right answer is known by construction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIZE = 112
PATCH = 16


def checker(size: int = PATCH, period: int = 2) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((yy // period + xx // period) % 2).float() * 2 - 1


class QuadrantModel(nn.Module):
    """Class 0 = "a checkerboard patch somewhere in the top-left quadrant"; it ignores the rest.

    A soft maximum of the template correlation over the quadrant, so evidence is local: one
    patch decides. The images put the same patch in all four quadrants, so a method that
    points at the top-left does so because of the model, not the picture.
    """

    def __init__(self) -> None:
        super().__init__()
        self.kernel = nn.Parameter((checker() / PATCH**2).view(1, 1, PATCH, PATCH))
        self.body = nn.Sequential(nn.Identity())  # a named "last conv" stand-in for Grad-CAM-style hooks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x[:, :, : SIZE // 2, : SIZE // 2].mean(1, keepdim=True)
        r = F.conv2d(q, self.kernel).flatten(1)
        s = torch.logsumexp(r * 20, 1) / 20
        return torch.stack([10 * (s - 0.5), torch.zeros_like(s)], 1)


def quadrant_images(n: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn((n, 3, SIZE, SIZE), generator=gen) * 0.2
    for y, x in ((20, 20), (75, 20), (20, 75), (75, 75)):
        img[:, :, y : y + PATCH, x : x + PATCH] += checker()
    return img


class KeptShareModel(nn.Module):
    """Softmax probability of class 0 equals the mean of channel 0 (clipped): with an image of
    ones and a baseline of zeros, the score is exactly the share of the image kept."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x[:, 0].mean((1, 2)).clamp(1e-6, 1 - 1e-6)
        return torch.stack([p.log(), (1 - p).log()], 1)


def top_left_share(saliency: torch.Tensor) -> torch.Tensor:
    """Share of each map's (non-negative) mass in its top-left quadrant."""
    s = saliency.clamp(min=0)
    h, w = s.shape[-2:]
    return s[..., : h // 2, : w // 2].flatten(1).sum(1) / s.flatten(1).sum(1)


SMALL = 8  # a pattern that one SAG patch (a tent of ±18 px at 112 px) shows almost whole


class RegionsModel(nn.Module):
    """Class 0 = "a small checkerboard at any of these grid cells" (7×7 grid over 112 px).

    A soft maximum over the cells: each cell alone is sufficient, and every cell gets gradient
    (so the I-GOS ordering sees them all). With two cells the model has two disjoint ways to be
    confident; with one, only one.
    """

    def __init__(self, cells: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self.centres = [(round(r * (SIZE - 1) / 6), round(c * (SIZE - 1) / 6)) for r, c in cells]
        self.kernel = nn.Parameter(checker(SMALL, 2) / SMALL**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.mean(1)
        h = SMALL // 2
        corr = torch.stack(
            [(g[:, y - h : y + h, x0 - h : x0 + h] * self.kernel).sum((1, 2)) for y, x0 in self.centres], 1
        )
        s = torch.logsumexp(corr * 5, 1) / 5
        return torch.stack([10 * (s - 0.5), torch.zeros_like(s)], 1)


def regions_image(cells: tuple[tuple[int, int], ...], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn((1, 3, SIZE, SIZE), generator=gen) * 0.2
    h = SMALL // 2
    for r, c in cells:
        y, x = round(r * (SIZE - 1) / 6), round(c * (SIZE - 1) / 6)
        img[:, :, y - h : y + h, x - h : x + h] += checker(SMALL, 2)
    return img


class BlurKeepsClassModel(nn.Module):
    """Class 0 = "bright top-left quadrant": a logistic of the mean of channel 0 there.

    `centre` is set so the image of `blur_keeps_class_images` scores 0.8. Its first baseline keeps
    `keep` of the brightness (as a blurred gull keeps its grey) and still scores about 0.5-0.65, so
    deleting the quadrant gains less than the L1 prior costs at λ1 = 1 — the case the I-GOS
    authors' L1 schedule is for; the second baseline is dark (≈ 0).
    """

    def __init__(self, slope: float = 10.0) -> None:
        super().__init__()
        self.slope = slope
        self.centre = 1 - 1.3863 / slope  # logit(0.8) = 1.3863

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x[:, 0, : SIZE // 2, : SIZE // 2].mean((1, 2))
        return torch.stack([self.slope * (q - self.centre), torch.zeros_like(q)], 1)


def blur_keeps_class_images(keep: float = 0.85) -> tuple[torch.Tensor, torch.Tensor]:
    """Two identical images (bright top-left quadrant) and their baselines: [keeps `keep`, dark]."""
    images = torch.zeros((2, 3, SIZE, SIZE))
    images[:, 0, : SIZE // 2, : SIZE // 2] = 1.0
    baselines = torch.zeros_like(images)
    baselines[0, 0, : SIZE // 2, : SIZE // 2] = keep
    return images, baselines
