"""`--device auto|cpu|cuda` → a torch device, with a clear error when CUDA is asked for but absent."""

from __future__ import annotations

import torch

from pipeline.errors import PipelineError

CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    if name not in CHOICES and not name.startswith("cuda:"):
        raise PipelineError(f"--device {name!r}: use auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError(f"--device {name}: no CUDA device is available here; use --device cpu or auto")
    return torch.device(name)
