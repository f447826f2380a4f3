"""Baseline saliency methods, one interface: images + target classes in, N×h×w saliency out.

Grad-CAM, Integrated Gradients and Occlusion come from Captum; each library default that
differs from the method's paper is set here explicitly. RISE has no maintained library
implementation, so it is written here. Every map is "higher = more important".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, LayerGradCam, Occlusion

from pipeline.methods.common import frozen
from pipeline.models.architectures import Classifier


def _probability(model: Classifier):  # type: ignore[no-untyped-def]
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(x), dim=1)

    return forward


@dataclass(frozen=True)
class GradCamParams:
    relu: bool = True  # Selvaraju et al. apply a ReLU; Captum's default does not
    layer: str = "body"  # the last convolutional feature map
    score: str = "logit"  # the class score before softmax, as in the paper

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def gradcam(
    model: Classifier, images: torch.Tensor, targets: torch.Tensor, p: GradCamParams = GradCamParams()
) -> torch.Tensor:
    """Grad-CAM at the last conv layer's resolution (e.g. 7×7); upsampling is the renderer's job."""
    with frozen(model):
        cam = LayerGradCam(model, model.get_submodule(p.layer))
        out = cam.attribute(images, target=targets, relu_attributions=p.relu)
    return out.detach().squeeze(1)


@dataclass(frozen=True)
class IgParams:
    baseline: str = "blur"  # "blur" (the I-GOS baseline) or "black"
    steps: int = 50
    method: str = "gausslegendre"  # Captum's most accurate rule; completeness error is logged
    score: str = "softmax"  # the class probability, as I-GOS explains
    reduce: str = "abs-sum over channels"
    max_batch: int = 64

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def integrated_gradients(
    model: Classifier, images: torch.Tensor, targets: torch.Tensor, baselines: torch.Tensor, p: IgParams = IgParams()
) -> tuple[torch.Tensor, torch.Tensor]:
    """IG saliency (N×H×W) and each image's completeness error |Σ attributions − (f(x) − f(baseline))|."""
    ig = IntegratedGradients(_probability(model))
    attr, delta = ig.attribute(
        images,
        baselines=baselines,
        target=targets,
        n_steps=p.steps,
        method=p.method,
        internal_batch_size=p.max_batch,
        return_convergence_delta=True,
    )
    return attr.detach().abs().sum(1), delta.detach().abs()


@dataclass(frozen=True)
class OcclusionParams:
    window: int = 32  # pixels; a patch about the size of a bird's head at 224 px
    stride: int = 16
    fill: str = "blur"  # occluded patches show the blurred image, as I-GOS deletes
    score: str = "softmax"
    max_batch: int = 64  # occluded copies per forward (Captum's default of 1 is ~10× slower)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def occlusion(
    model: Classifier,
    images: torch.Tensor,
    targets: torch.Tensor,
    baselines: torch.Tensor,
    p: OcclusionParams = OcclusionParams(),
) -> torch.Tensor:
    """Drop in class probability when a window is replaced, averaged over the windows covering a pixel."""
    occ = Occlusion(_probability(model))
    attr = occ.attribute(
        images,
        sliding_window_shapes=(3, p.window, p.window),
        strides=(3, p.stride, p.stride),
        baselines=baselines,
        target=targets,
        perturbations_per_eval=p.max_batch,
    )
    return attr.detach().mean(1)


@dataclass(frozen=True)
class RiseParams:
    masks: int = 4000  # N in Petsiuk et al.; 4000 for ResNet-50 there
    grid: int = 7  # s: cells per side of the random binary grid
    keep: float = 0.5  # p1: probability a cell is kept
    fill: str = "mean colour (0 in normalised space)"  # masks multiply the normalised image, as RISE does
    seed: int = 0
    max_batch: int = 128

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@lru_cache(maxsize=4)
def rise_masks(n: int, grid: int, keep: float, size: int, seed: int, device: str) -> torch.Tensor:
    """The seeded mask bank (n×1×size×size): random grids, bilinearly enlarged, randomly shifted."""
    gen = torch.Generator().manual_seed(seed)
    cell = -(-size // grid)
    cells = (torch.rand((n, 1, grid, grid), generator=gen) < keep).float()
    big = F.interpolate(cells, size=((grid + 1) * cell, (grid + 1) * cell), mode="bilinear", align_corners=False)
    dx = torch.randint(0, cell, (n,), generator=gen)
    dy = torch.randint(0, cell, (n,), generator=gen)
    out = torch.stack([big[i, :, dy[i] : dy[i] + size, dx[i] : dx[i] + size] for i in range(n)])
    return out.to(device)


@torch.no_grad()
def rise(model: Classifier, images: torch.Tensor, targets: torch.Tensor, p: RiseParams = RiseParams()) -> torch.Tensor:
    """RISE: Σ_k p_c(I ⊙ M_k) · M_k / (N · p1), target class only, masks scored in batches."""
    n, _, h, _ = images.shape
    bank = rise_masks(p.masks, p.grid, p.keep, h, p.seed, str(images.device))
    flat = bank.flatten(1)
    out = torch.zeros((n, h * h), device=images.device)
    with frozen(model):
        for i in range(n):
            for start in range(0, p.masks, p.max_batch):
                m = bank[start : start + p.max_batch]
                probs = torch.softmax(model(images[i : i + 1] * m), dim=1)[:, int(targets[i])]
                out[i] += probs @ flat[start : start + p.max_batch]  # a matrix product: deterministic
    return (out / (p.masks * p.keep)).view(n, h, h)
