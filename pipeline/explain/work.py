"""What every stage of one `explain` call shares: the configuration, the run, the model, the images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from pipeline.data.cub import Dataset, ImageRecord
from pipeline.explain.config import ExplainConfig
from pipeline.explain.registry import Defaults, Method, Params, nested_params
from pipeline.explain.run_folder import Run
from pipeline.models import checkpoint
from pipeline.models.architectures import Classifier

Progress = Callable[[int, int, str], None]  # done, total, phase


@dataclass
class Bar:
    """The shared progress of one call: stages advance it; a stage with phases of its own (XNN)
    reports them as separate bars."""

    progress: Progress | None
    total: int = 0
    done: int = 0

    def advance(self, n: int, phase: str) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total, phase)

    def phase(self, name: str) -> Callable[[int, int], None] | None:
        progress = self.progress
        return (lambda done, total: progress(done, total, name)) if progress else None


@dataclass
class Work:
    cfg: ExplainConfig
    run: Run
    ds: Dataset
    lm: checkpoint.LoadedModel
    model: Classifier  # on `device`, frozen while the stages run
    device: torch.device
    max_batch: int  # model inputs per forward pass
    protocols: tuple[str, ...]  # faithfulness protocols to score
    defaults: Defaults  # what the configuration decides about every method's parameters
    recs: list[ImageRecord]  # the images to explain
    uint8: torch.Tensor  # the same images, as the model sees them (N×3×S×S)
    entries: dict[int, dict[str, Any]]  # predictions per image id

    @property
    def transform(self) -> dict[str, Any]:
        return self.lm.transform

    @cached_property
    def index(self) -> dict[int, int]:
        """Class id -> the model's output index."""
        return {c: i for i, c in enumerate(self.lm.class_ids)}

    def nested(self, method: Method, group: str) -> Params:
        """A method's own group of parameters (XNN's concept heatmaps) under this configuration."""
        return nested_params(method, group, self.defaults, self.cfg.params.get(method.name, {}))

    def targets(self, rec: ImageRecord, method: Method) -> list[tuple[str, int]]:
        """(target, class id) to explain for this image: the prediction, and the truth when the model is wrong."""
        pred = int(self.entries[rec.id]["predicted_class"])
        out = [("predicted", pred)]
        if "true" in method.targets and self.cfg.explain_true and pred != rec.class_id:
            out.append(("true", rec.class_id))
        return out

    def jobs(self, method: Method) -> list[tuple[int, str, int]]:
        """(row in recs, target, class id) not finished yet in the run."""
        return [
            (i, target, cls)
            for i, rec in enumerate(self.recs)
            for target, cls in self.targets(rec, method)
            if not self.run.done(method.name, rec.id, target)
        ]
