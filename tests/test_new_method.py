"""A new explanation method is one spec and one registration: this module adds one and runs it.

`gradient` is the plainest saliency there is, the size of the gradient of the class probability
at each pixel (Simonyan et al. 2014). Registered, `--methods` accepts it, the runner computes it
in batches with the heatmap stage (overlay, deletion/insertion curves, part scores), the run's
settings and the manifest list it with its parameters, and a study's heatmap condition can
show it. Nothing outside this file knows it exists.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.assets import manifest as schema
from app.studies import explanations
from app.studies.schema import Condition
from pipeline.data.cub import Dataset
from pipeline.errors import PipelineError
from pipeline.explain import ExplainConfig, Method, explain, parse_methods, register
from pipeline.explain.registry import unregister
from pipeline.methods.common import ClassProbability
from pipeline.models import checkpoint
from pipeline.models.images import load_uint8, normalise


@dataclass(frozen=True)
class GradientParams:
    reduce: str = "max"  # over colour channels: "max" (Simonyan et al.) or "sum"
    max_batch: int = 40

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def gradient(p: Any, model: torch.nn.Module, b: Any, transform: dict[str, Any]) -> torch.Tensor:
    x = b.x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ClassProbability(model, b.targets)(x, torch.arange(len(x))).sum(), x)
    size = grad.abs()
    return size.amax(1) if p.reduce == "max" else size.sum(1)


GRADIENT = Method(
    name="gradient",
    description="Gradient (Simonyan et al. 2014): size of the class probability's gradient at each pixel",
    kind="heatmap",
    stage="heatmap",
    params=lambda d: GradientParams(max_batch=d.max_batch),
    writes=("{stem}.npy", "{stem}.png", "{stem}.json"),
    saliency=gradient,
)


@pytest.fixture
def registered() -> Iterator[Method]:
    register(GRADIENT)
    yield GRADIENT
    unregister(GRADIENT.name)


def test_a_registered_method_runs_and_lands_in_the_manifest(
    registered: Method, tmp_path: Path, tiny_model: Path, tiny_gulls: Dataset
) -> None:
    out = tmp_path / "run"
    cfg = ExplainConfig(
        model=tiny_model,
        data=tiny_gulls.root,
        out=out,
        methods=parse_methods("gradient,gradcam"),
        images=[2, 6],
        protocols=("igos",),
        device="cpu",
        params={"gradient": {"reduce": "sum"}},
    )
    m = explain(cfg)
    assert m.methods["gradient"].description == GRADIENT.description
    assert m.methods["gradient"].params == {"reduce": "sum", "max_batch": 40}
    assert schema.load(out).missing_files(out) == []

    lm = checkpoint.load(tiny_model)
    by_id = {r.id: r for r in tiny_gulls.images}
    for entry in m.images:
        h = entry.explanation("gradient")
        assert isinstance(h, schema.Heatmap) and h.target_class == entry.predicted_class
        assert h.faithfulness[0].protocol == "igos" and "bill" in h.localisation
        stem = f"explanations/gradient/{entry.image_id}-predicted"
        assert all(
            any(fnmatch.fnmatch(f, w.format(stem=stem)) for w in GRADIENT.writes) for f in (h.raw, h.overlay, h.curves)
        )
        # the stored map is the registered function's answer on that image, not something else
        x = normalise(load_uint8([tiny_gulls.image_path(by_id[entry.image_id])], lm.transform), lm.transform)
        x.requires_grad_(True)
        target = torch.tensor([lm.class_ids.index(entry.predicted_class)])
        (grad,) = torch.autograd.grad(ClassProbability(lm.model.eval(), target)(x, torch.arange(1)).sum(), x)
        np.testing.assert_allclose(np.load(out / h.raw), grad.abs().sum(1)[0].numpy(), rtol=1e-4, atol=1e-7)
        # a study's heatmap condition shows it like any other heatmap
        condition = Condition(id="g", explanation="heatmap", method="gradient")
        assert explanations.explanation_for(entry, condition) == h
        assert explanations.files(condition, h) == [h.overlay]


def test_its_parameters_are_checked(registered: Method, tmp_path: Path, tiny_model: Path, tiny_gulls: Dataset) -> None:
    def run(params: dict[str, dict[str, object]]) -> None:
        explain(
            ExplainConfig(
                tiny_model, tiny_gulls.root, tmp_path / "r", ["gradient"], images=[2], device="cpu", params=params
            )
        )

    with pytest.raises(PipelineError, match="gradient has no parameter 'smooth'; it takes reduce, max_batch"):
        run({"gradient": {"smooth": 2}})
    with pytest.raises(PipelineError, match=r"gradient\.max_batch must be of type int"):
        run({"gradient": {"max_batch": "many"}})
    with pytest.raises(PipelineError, match="parameters given for 'gradients', which is not a method"):
        run({"gradients": {}})


def test_a_name_is_registered_once(registered: Method) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(GRADIENT)
    with pytest.raises(ValueError, match="needs a saliency function"):
        register(Method("flat", "no saliency", "heatmap", "heatmap", lambda d: GradientParams(), ()))
