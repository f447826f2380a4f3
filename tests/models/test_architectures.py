from pathlib import Path

import pytest
import torch
import torchvision

from pipeline.errors import PipelineError
from pipeline.models.architectures import LAST_CONV_LAYER, PENULTIMATE_LAYER, build


@pytest.mark.parametrize(("arch", "dim", "conv_hw"), [("compact", 128, 7), ("resnet18", 512, 7), ("resnet50", 2048, 7)])
def test_named_layers_and_shapes(arch: str, dim: int, conv_hw: int) -> None:
    model = build(arch, 8).eval()
    x = torch.randn(2, 3, 224, 224)
    named = dict(model.named_modules())
    assert LAST_CONV_LAYER in named and PENULTIMATE_LAYER in named
    with torch.no_grad():
        conv = named[LAST_CONV_LAYER](x)
        feats = model.features(x)
        logits = model(x)
    assert conv.shape[-2:] == (conv_hw, conv_hw) and conv.ndim == 4
    assert feats.shape == (2, dim) == (2, model.feature_dim)
    assert logits.shape == (2, 8)
    assert torch.allclose(model.head(feats), logits)


def test_vgg16_penultimate_is_the_4096_d_fc_layer() -> None:
    model = build("vgg16", 8)
    assert model.feature_dim == 4096
    assert [type(m).__name__ for m in model.penultimate] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout"]


def test_imagenet_weights_come_only_from_a_local_file(tmp_path: Path) -> None:
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    model = build("resnet18", 8, path)
    assert torch.equal(model.body[0].weight, ref.conv1.weight)  # the stem came from the file
    assert torch.equal(model.body[7][1].conv2.weight, ref.layer4[1].conv2.weight)


def test_wrong_or_missing_weight_files_are_explained(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"no such file.*nothing is downloaded"):
        build("resnet50", 8, tmp_path / "absent.pth")
    wrong = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), wrong)
    with pytest.raises(PipelineError, match="does not hold torchvision resnet50 weights"):
        build("resnet50", 8, wrong)
    junk = tmp_path / "junk.pth"
    junk.write_text("hello")
    with pytest.raises(PipelineError, match="not a PyTorch weight file"):
        build("resnet18", 8, junk)
    with pytest.raises(PipelineError, match="compact trains from scratch"):
        build("compact", 8, wrong)
    with pytest.raises(PipelineError, match="use one of compact"):
        build("alexnet", 8)
