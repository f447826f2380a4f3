import pytest
import torch

from pipeline.devices import resolve_device
from pipeline.errors import PipelineError


def test_auto_and_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_explained() -> None:
    with pytest.raises(PipelineError, match="no CUDA device is available here; use --device cpu or auto"):
        resolve_device("cuda")


def test_unknown_device() -> None:
    with pytest.raises(PipelineError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
