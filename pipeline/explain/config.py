"""What one `fieldmark explain` call is asked to do: the one configuration object of the runner.

Every setting that changes the assets is here, including the methods' parameters (`params`:
method name -> changes to its defaults, checked against the method's parameter class; XNN's
concept heatmaps are its nested group `heatmap`). Nothing below reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

RESOLUTIONS = (7, 14, 28, 56, 112, 224)  # I-GOS mask sizes that divide the 224-px input


@dataclass(frozen=True)
class ExplainConfig:
    model: Path
    data: Path
    out: Path
    methods: list[str]
    split: str = "test"
    resolution: int = 28
    device: str = "auto"
    images: list[int] | None = None  # explicit image ids (any split)
    per_class: int | None = None  # else: the first N images of each class in the split
    explain_true: bool = True  # also explain the true class when the model is wrong
    seed: int = 0
    batch: int = 8  # images per method call
    max_batch: int | None = None  # model inputs per forward pass; None: devices.default_max_batch
    parts_from: str = "auto"  # "segmentation", "points" or "auto"
    protocols: tuple[str, ...] | None = None  # faithfulness protocols to score; None: all of them
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # method -> parameter changes

    def check(self) -> None:
        """Refuse settings no method could run with, before any work (one-line errors)."""
        from pipeline.explain.registry import METHODS

        if self.resolution not in RESOLUTIONS:
            raise PipelineError(f"--resolution must be one of {', '.join(map(str, RESOLUTIONS))}")
        for name in self.params:
            if name not in METHODS:
                raise PipelineError(
                    f"parameters given for {name!r}, which is not a method; use any of {', '.join(METHODS)}"
                )


def parse_ids(text: str) -> list[int]:
    """`--images`: ids and ranges, e.g. 1,5,10-20."""
    ids: list[int] = []
    try:
        for chunk in (c.strip() for c in text.split(",")):
            if "-" in chunk:
                lo, hi = (int(v) for v in chunk.split("-", 1))
                ids.extend(range(lo, hi + 1))
            elif chunk:
                ids.append(int(chunk))
    except ValueError:
        raise PipelineError(f"--images {text!r}: write image ids and ranges, e.g. 1,5,10-20") from None
    return ids
