"""The built-in explanation methods, one spec each (pipeline/explain/registry.py says what a spec holds).

Defaults are the papers' (see docs/explanations.md); a run's configuration sets the mask size,
the seed and the batch limit, and `ExplainConfig.params` changes any parameter by name.
Algorithms live in pipeline/methods/; the saliency functions here only adapt them to a batch.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pipeline.explain.registry import METHODS, Defaults, Method, Params, alias, register

if TYPE_CHECKING:
    import torch

    from pipeline.explain.heatmaps import Batch

HEATMAP_FILES = ("{stem}.npy", "{stem}.png", "{stem}.json")  # raw saliency, overlay, deletion/insertion curves


# -- parameters under a configuration ---------------------------------------------------------
def _igos_params(d: Defaults) -> Params:
    from pipeline.methods.igos import IgosParams

    return IgosParams(size=d.resolution, seed=d.seed, max_batch=d.max_batch)


def _igospp_params(d: Defaults) -> Params:
    from pipeline.methods.igos import IGOSPP_DEFAULTS

    return dataclasses.replace(IGOSPP_DEFAULTS, size=d.resolution, seed=d.seed, max_batch=d.max_batch)


def _igospp_authors_params(d: Defaults) -> Params:
    from pipeline.methods.igos import IGOSPP_AUTHORS

    return dataclasses.replace(IGOSPP_AUTHORS, size=d.resolution, seed=d.seed, max_batch=d.max_batch)


def _gradcam_params(d: Defaults) -> Params:
    from pipeline.methods.baselines import GradCamParams

    return GradCamParams()


def _ig_params(baseline: str) -> Any:
    def make(d: Defaults) -> Params:
        from pipeline.methods.baselines import IgParams

        return IgParams(baseline=baseline, max_batch=min(d.max_batch, 64))

    return make


def _occlusion_params(d: Defaults) -> Params:
    from pipeline.methods.baselines import OcclusionParams

    return OcclusionParams(max_batch=min(d.max_batch, 64))


def _rise_params(d: Defaults) -> Params:
    from pipeline.methods.baselines import RiseParams

    return RiseParams(seed=d.seed, max_batch=d.max_batch)


def _sag_params(d: Defaults) -> Params:
    from pipeline.methods.sag import SagParams

    return SagParams(seed=d.seed, max_batch=max(d.max_batch, 64))  # one image per search: fill the batch


def _xnn_params(d: Defaults) -> Params:
    from pipeline.methods.xnn import XnnParams

    return XnnParams(seed=d.seed)


def _examples_params(d: Defaults) -> Params:
    from pipeline.methods.examples import ExamplesParams

    return ExamplesParams()


# -- saliency of a batch: N×h×w, higher = more important ----------------------------------------
def _igos(p: Any, model: torch.nn.Module, b: Batch, transform: dict[str, Any]) -> torch.Tensor:
    from pipeline.methods.common import ClassProbability
    from pipeline.methods.igos import igos

    return (1 - igos(ClassProbability(model, b.targets), b.x, b.blurred, p)).squeeze(1)


def _igospp(p: Any, model: torch.nn.Module, b: Batch, transform: dict[str, Any]) -> torch.Tensor:
    from pipeline.methods.common import ClassProbability
    from pipeline.methods.igos import igos_pp

    m_del, m_ins = igos_pp(ClassProbability(model, b.targets), b.x, b.blurred, p)
    return (1 - m_del * m_ins).squeeze(1)


def _gradcam(p: Any, model: torch.nn.Module, b: Batch, transform: dict[str, Any]) -> torch.Tensor:
    from pipeline.methods.baselines import gradcam

    return gradcam(model, b.x, b.targets, p)  # type: ignore[arg-type]


def _ig(p: Any, model: torch.nn.Module, b: Batch, transform: dict[str, Any]) -> torch.Tensor:
    from pipeline.methods.baselines import integrated_gradients
    from pipeline.methods.common import black_baseline

    base = b.blurred if p.baseline == "blur" else black_baseline(b.x, transform)
    sal, _delta = integrated_gradients(model, b.x, b.targets, base, p)  # type: ignore[arg-type]
    return sal


def _occlusion(p: Any, model: torch.nn.Module, b: Batch, transform: dict[str, Any]) -> torch.Tensor:
    from pipeline.methods.baselines import occlusion

    return occlusion(model, b.x, b.targets, b.blurred, p)  # type: ignore[arg-type]


def _rise(p: Any, model: torch.nn.Module, b: Batch, transform: dict[str, Any]) -> torch.Tensor:
    from pipeline.methods.baselines import rise

    return rise(model, b.x, b.targets, p)  # type: ignore[arg-type]


def _heatmap(name: str, description: str, params: Any, saliency: Any, default: bool = True) -> Method:
    return Method(name, description, "heatmap", "heatmap", params, HEATMAP_FILES, saliency=saliency, default=default)


for _m in (
    _heatmap(
        "igos",
        "I-GOS (Qi et al. 2020): mask optimised with integrated-gradient descent; saliency = 1 - mask",
        _igos_params,
        _igos,
    ),
    _heatmap(
        "igospp",
        "iGOS++ (Khorram et al. 2021): deletion and insertion masks with bilateral TV; saliency = 1 - Md*Mi",
        _igospp_params,
        _igospp,
    ),
    _heatmap(
        "igospp-authors",
        "iGOS++ with the authors' line search (noisy integrated sums, product of upsampled masks)",
        _igospp_authors_params,
        _igospp,
        default=False,  # a comparison for the benchmark: asked for by name
    ),
    _heatmap(
        "gradcam",
        "Grad-CAM (Selvaraju et al. 2017) via Captum LayerGradCam at the last conv layer, with ReLU",
        _gradcam_params,
        _gradcam,
    ),
    _heatmap(
        "ig-blur",
        "Integrated Gradients (Sundararajan et al. 2017) via Captum, blurred-image baseline",
        _ig_params("blur"),
        _ig,
    ),
    _heatmap(
        "ig-black",
        "Integrated Gradients (Sundararajan et al. 2017) via Captum, black baseline",
        _ig_params("black"),
        _ig,
    ),
    _heatmap(
        "occlusion",
        "Occlusion (Zeiler and Fergus 2014) via Captum: probability drop when a window is blurred",
        _occlusion_params,
        _occlusion,
    ),
    _heatmap(
        "rise",
        "RISE (Petsiuk et al. 2018): probability-weighted average of random masks",
        _rise_params,
        _rise,
    ),
    Method(
        "sag",
        "structured attention graph (Shitole et al. 2021): minimal sufficient patch sets by beam search",
        "sag",
        "sag",
        _sag_params,
        (
            "{stem}.json",
            "{stem}.svg",
            "{stem}-phone.svg",
            "{stem}.png",
            "{stem}/node-*.png",
            "{stem}/question-*-[ab].png",
        ),
    ),
    Method(
        "xnn",
        "XNN (Qi et al.): per-class sparse reconstruction autoencoders; concepts with I-GOS maps",
        "concepts",
        "xnn",
        _xnn_params,
        ("{stem}/card.png", "{stem}/concept-*.npy", "{stem}/concept-*.png"),
        nested={"heatmap": _igos_params},  # the concept heatmaps' I-GOS settings are part of the method
        default=False,  # trains an autoencoder per class: asked for by name
    ),
    Method(
        "examples",
        "the k training images of the predicted class nearest in the classifier's penultimate feature space",
        "examples",
        "examples",
        _examples_params,
        ("images/*.png",),  # the neighbours' pictures, shared with every other record
        targets=("predicted",),
    ),
):
    register(_m)
alias("ig", ("ig-blur", "ig-black"))

HEATMAP_METHODS = tuple(name for name, m in METHODS.items() if m.kind == "heatmap")  # the built-in ones
