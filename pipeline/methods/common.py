"""Shared pieces of the explanation methods: baselines, upsampling, the explained scalar.

Conventions: images are N×3×H×W tensors in the model's normalised space; masks are N×1×r×r
with 1 = keep the image and 0 = show the baseline; saliency is "higher = more important".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.images import normalise

# score(inputs B×3×H×W, image_index B) -> B scalars: which quantity an explanation explains.
Score = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ClassProbability:
    """Softmax probability of one class per image: the quantity I-GOS, iGOS++ and RISE explain."""

    def __init__(self, model: nn.Module, classes: torch.Tensor) -> None:
        self.model = model
        self.classes = classes

    def __call__(self, x: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self.model(x), dim=1)
        return probs.gather(1, self.classes.to(x.device)[image_index].unsqueeze(1)).squeeze(1)


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients while explaining; the caller's settings come back after."""
    training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        model.train(training)
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def gaussian_kernel(size: int, sigma: float, device: torch.device | None = None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).float()


def gaussian_blur(x: torch.Tensor, size: int, sigma: float, border: str = "reflect") -> torch.Tensor:
    """Separable Gaussian blur of N×C×H×W. `reflect` mirrors without repeating the edge pixel,
    which is OpenCV's default border (BORDER_REFLECT_101) that the I-GOS authors' cv2.GaussianBlur used."""
    c = x.shape[1]
    k = gaussian_kernel(size, sigma, x.device).to(x.dtype)
    pad = size // 2
    if border == "zeros":
        y = F.conv2d(x, k.view(1, 1, 1, size).expand(c, 1, 1, size), padding=(0, pad), groups=c)
        return F.conv2d(y, k.view(1, 1, size, 1).expand(c, 1, size, 1), padding=(pad, 0), groups=c)
    y = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode=border), k.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    return F.conv2d(F.pad(y, (0, 0, pad, pad), mode=border), k.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)


def blurred_baseline(images_uint8: torch.Tensor, transform: dict[str, Any]) -> torch.Tensor:
    """The I-GOS baseline: Gaussian blur 51×51, σ 50, in pixel space, then normalised like the image."""
    return normalise(gaussian_blur(images_uint8.float() / 255.0, 51, 50.0), transform)


def black_baseline(images: torch.Tensor, transform: dict[str, Any]) -> torch.Tensor:
    """True black (0 in pixel space), normalised: not zero in normalised space, which is the mean colour."""
    return normalise(torch.zeros_like(images), transform)


def upsample(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear with align_corners=True, as the authors' UpsamplingBilinear2d: the mask geometry of
    I-GOS, iGOS++, SAG and the deletion/insertion metric."""
    if masks.shape[-2:] == size:
        return masks
    return F.interpolate(masks, size=size, mode="bilinear", align_corners=True)


def to_resolution(saliency: torch.Tensor, size: int) -> torch.Tensor:
    """N×h×w saliency → N×size×size: area-average when shrinking, bilinear when enlarging."""
    s = saliency.unsqueeze(1).float()
    if s.shape[-1] > size:
        s = F.adaptive_avg_pool2d(s, size)
    elif s.shape[-1] < size:
        s = upsample(s, (size, size))
    return s.squeeze(1)
