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


def default_max_batch(device: torch.device) -> int:
    """Model inputs per forward pass when none is asked for. A GPU wants big batches; on a CPU a
    batch of more than a few dozen 224-px images falls out of cache and runs slower (I-GOS on the
    demo model, 2 cores: 3.8 s/image at 160 inputs per pass, 2.2 s/image at 40)."""
    return 160 if device.type == "cuda" else 40
