"""Classifier checkpoints: weights plus everything needed to trust and reuse them."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import PipelineError
from pipeline.io import atomic_write_bytes
from pipeline.models.architectures import Classifier, build

FORMAT = "fieldmark-classifier/1"


@dataclass
class LoadedModel:
    model: Classifier
    meta: dict[str, Any]  # everything but the weights

    @property
    def class_ids(self) -> list[int]:
        return list(self.meta["class_ids"])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def transform(self) -> dict[str, Any]:
        return dict(self.meta["transform"])


def save(path: Path, model: Classifier, meta: dict[str, Any]) -> None:
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({**meta, "format": FORMAT, "state_dict": state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path) -> LoadedModel:
    """Load a checkpoint made by `fieldmark model train` (weights only: no code is unpickled)."""
    if not path.is_file():
        raise PipelineError(f"--model {path}: no such file; train one with 'fieldmark model train'")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise PipelineError(f"--model {path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise PipelineError(f"--model {path}: not a Fieldmark classifier checkpoint (expected format {FORMAT})")
    state = raw.pop("state_dict")
    model = build(raw["arch"], len(raw["class_ids"]))
    model.load_state_dict(state)
    model.eval()
    return LoadedModel(model, raw)
