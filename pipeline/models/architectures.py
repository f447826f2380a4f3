"""Classifier architectures, all with the same named parts.

Every model is a `Classifier`: `body` (convolutions; its output is the last convolutional
feature map, which Grad-CAM hooks), `pool`, `penultimate` (the feature vector XNN attaches to)
and `head` (one logit per class). torchvision models load ImageNet weights only from a local file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.errors import PipelineError

ARCHS = ("compact", "resnet18", "resnet50", "vgg16")
LAST_CONV_LAYER = "body"  # module name whose output is the last conv feature map
PENULTIMATE_LAYER = "penultimate"  # module name whose output is the feature vector


class Classifier(nn.Module):
    def __init__(self, body: nn.Module, pool: nn.Module, penultimate: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.body = body
        self.pool = pool
        self.penultimate = penultimate
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate feature vector, one row per image."""
        return self.penultimate(torch.flatten(self.pool(self.body(x)), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @property
    def feature_dim(self) -> int:
        return self.head.in_features


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def compact(num_classes: int) -> Classifier:
    """A small CNN that trains on a 2-core CPU in minutes.

    A 4×4 patch stem takes 224 px to 56 px at once (cheap, and a 4 px patch still sees a
    2-px eye as a colour), then three stages halve the map to 28, 14 and 7: the 7×7 last
    conv map matches ResNet's, so Grad-CAM maps have the same grain.
    """
    body = nn.Sequential(
        nn.Conv2d(3, 32, 4, 4, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(inplace=True),
        _cbr(32, 32),
        _cbr(32, 48, 2),
        _cbr(48, 48),
        _cbr(48, 96, 2),
        _cbr(96, 96),
        _cbr(96, 128, 2),
    )
    penultimate = nn.Sequential(nn.Linear(128, 128), nn.ReLU(inplace=True), nn.Dropout(0.2))
    return Classifier(body, nn.AdaptiveAvgPool2d(1), penultimate, nn.Linear(128, num_classes))


def _imagenet_weights(model: nn.Module, arch: str, weights: Path) -> None:
    if not weights.is_file():
        raise PipelineError(
            f"--weights {weights}: no such file; give a local {arch} ImageNet weight file "
            f"(torchvision's .pth), nothing is downloaded"
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise PipelineError(f"--weights {weights}: not a PyTorch weight file ({type(exc).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise PipelineError(f"--weights {weights}: expected a state dict of {arch} weights")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches: another architecture's weights
        first = str(exc).split("\n\t")[1] if "\n\t" in str(exc) else str(exc)
        raise PipelineError(f"--weights {weights} does not hold torchvision {arch} weights ({first.strip()})") from None
    if missing or unexpected:
        sample = ", ".join([*missing[:3], *unexpected[:3]])
        raise PipelineError(
            f"--weights {weights} does not hold torchvision {arch} weights "
            f"({len(missing)} missing and {len(unexpected)} unexpected keys, e.g. {sample})"
        )


def build(arch: str, num_classes: int, weights: Path | None = None) -> Classifier:
    """Build an architecture; torchvision ones optionally start from ImageNet weights on disk."""
    if arch not in ARCHS:
        raise PipelineError(f"--arch {arch!r}: use one of {', '.join(ARCHS)}")
    if arch == "compact":
        if weights is not None:
            raise PipelineError("--weights applies to resnet18, resnet50 and vgg16; compact trains from scratch")
        return compact(num_classes)
    import torchvision

    if arch in ("resnet18", "resnet50"):
        net = getattr(torchvision.models, arch)(weights=None)
        if weights is not None:
            _imagenet_weights(net, arch, weights)
        body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
        return Classifier(body, nn.AdaptiveAvgPool2d(1), nn.Identity(), nn.Linear(net.fc.in_features, num_classes))
    net = torchvision.models.vgg16(weights=None)
    if weights is not None:
        _imagenet_weights(net, arch, weights)
    penultimate = nn.Sequential(*list(net.classifier.children())[:-1])  # fc6, fc7 (4096-d), as XNN used
    return Classifier(net.features, net.avgpool, penultimate, nn.Linear(4096, num_classes))
