"""`fieldmark explain`: turn a model and a data set into a run of explanation assets.

The run folder holds, per image, the picture as the model saw it and, per method, the raw
saliency (.npy), an overlay (.png), the deletion/insertion curves (.json) and a record with
the scores; `manifest.json` (validated by the app's schema) lists it all with provenance.

Work is done in batches of images per method; each finished (image, method, target) leaves a
record, so a rerun skips it. Every file is written atomically.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from app.assets import manifest as schema
from pipeline import provenance
from pipeline.data.cub import Dataset, ImageRecord, atomic_write_bytes, atomic_write_text, dataset_hash, read_dataset
from pipeline.data.species import BY_ID
from pipeline.devices import default_max_batch, resolve_device
from pipeline.errors import PipelineError
from pipeline.methods import baselines as bl
from pipeline.methods.common import ClassProbability, black_baseline, blurred_baseline, frozen, gaussian_blur
from pipeline.methods.deviations import DEVIATIONS, REFERENCE_CODE
from pipeline.methods.examples import nearest
from pipeline.methods.igos import IGOSPP_AUTHORS, IGOSPP_DEFAULTS, IgosParams, igos, igos_pp
from pipeline.methods.sag import SagParams, search
from pipeline.methods.xnn import XnnParams
from pipeline.metrics.faithfulness import PROTOCOLS, deletion_insertion
from pipeline.metrics.localisation import TOLERANCE, energy, point_mask, pointing_hit
from pipeline.models import checkpoint
from pipeline.models.images import load_uint8, normalise
from pipeline.models.train import predict_probs
from pipeline.render.heatmap import overlay
from pipeline.render.refresh import refresh, sag_diagrams

HEATMAP_METHODS = ("igos", "igospp", "igospp-authors", "gradcam", "ig-blur", "ig-black", "occlusion", "rise")
METHODS = (*HEATMAP_METHODS, "sag", "xnn", "examples")
ALIASES = {"ig": ("ig-blur", "ig-black")}
DEFAULT_METHODS = "igos,igospp,gradcam,ig,occlusion,rise,sag,xnn,examples"
DESCRIPTIONS = {
    "igos": "I-GOS (Qi et al. 2020): mask optimised with integrated-gradient descent; saliency = 1 - mask",
    "igospp": "iGOS++ (Khorram et al. 2021): deletion and insertion masks with bilateral TV; saliency = 1 - Md*Mi",
    "igospp-authors": "iGOS++ with the authors' line search (noisy integrated sums, product of upsampled masks)",
    "gradcam": "Grad-CAM (Selvaraju et al. 2017) via Captum LayerGradCam at the last conv layer, with ReLU",
    "ig-blur": "Integrated Gradients (Sundararajan et al. 2017) via Captum, blurred-image baseline",
    "ig-black": "Integrated Gradients (Sundararajan et al. 2017) via Captum, black baseline",
    "occlusion": "Occlusion (Zeiler and Fergus 2014) via Captum: probability drop when a window is blurred",
    "rise": "RISE (Petsiuk et al. 2018): probability-weighted average of random masks",
    "sag": "structured attention graph (Shitole et al. 2021): minimal sufficient patch sets by beam search",
    "xnn": "XNN (Qi et al.): per-class sparse reconstruction autoencoders; concepts with I-GOS maps",
    "examples": "the k training images of the predicted class nearest in the classifier's penultimate feature space",
}


# Parameters added after runs existed, with the behaviour those runs had: a run made before a
# parameter existed matches new settings only if the new value keeps that behaviour.
LEGACY_PARAMS: dict[str, object] = {"l1_schedule": False, "line_search": "end-point", "children": "salient"}


def parse_methods(text: str) -> list[str]:
    out: list[str] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        names = ALIASES.get(token, (token,))
        for name in names:
            if name not in METHODS:
                raise PipelineError(
                    f"--methods: unknown method {token!r}; use any of {', '.join((*METHODS, *ALIASES))}"
                )
            if name not in out:
                out.append(name)
    if not out:
        raise PipelineError("--methods is empty; e.g. --methods igos,gradcam")
    return out


def parse_ids(text: str) -> list[int]:
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


@dataclass
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
    protocols: tuple[str, ...] = tuple(PROTOCOLS)  # faithfulness protocols to score
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> param changes (tests, benches)


def method_params(name: str, cfg: ExplainConfig) -> Any:
    """The parameter object of a method under this configuration (paper defaults unless overridden)."""
    o = cfg.overrides.get(name, {})
    max_batch = cfg.max_batch or default_max_batch(resolve_device(cfg.device))
    if name == "igos":
        return IgosParams(**{"size": cfg.resolution, "seed": cfg.seed, "max_batch": max_batch, **o})
    if name in ("igospp", "igospp-authors"):
        defaults = IGOSPP_DEFAULTS if name == "igospp" else IGOSPP_AUTHORS
        base: dict[str, Any] = defaults.as_dict() | {
            "size": cfg.resolution,
            "seed": cfg.seed,
            "max_batch": max_batch,
        }
        return IgosParams(**(base | o))
    if name == "gradcam":
        return bl.GradCamParams(**o)
    if name in ("ig-blur", "ig-black"):
        return bl.IgParams(**{"baseline": name.split("-")[1], "max_batch": min(max_batch, 64), **o})
    if name == "occlusion":
        return bl.OcclusionParams(**{"max_batch": min(max_batch, 64), **o})
    if name == "rise":
        return bl.RiseParams(**{"seed": cfg.seed, "max_batch": max_batch, **o})
    if name == "sag":
        return SagParams(**{"seed": cfg.seed, "max_batch": max(max_batch, 64), **o})
    if name == "xnn":
        return XnnParams(**{"seed": cfg.seed, **o})
    if name == "xnn-heatmap":
        return IgosParams(**{"size": cfg.resolution, "seed": cfg.seed, "max_batch": max_batch, **o})
    return {"k": 3, "space": "penultimate features", "distance": "euclidean", **o}


def _params_dict(p: Any) -> dict[str, object]:
    return p.as_dict() if hasattr(p, "as_dict") else dict(p)


@dataclass
class Batch:
    """What one batch of images gives a method: tensors on the device."""

    x: torch.Tensor  # normalised images
    blurred: torch.Tensor
    targets: torch.Tensor  # class index per image


def saliency(name: str, params: Any, model: torch.nn.Module, b: Batch, transform: dict[str, Any]) -> torch.Tensor:
    """Run one heatmap method: N×h×w, higher = more important."""
    if name in ("igos", "igospp", "igospp-authors"):
        score = ClassProbability(model, b.targets)
        if name == "igos":
            return (1 - igos(score, b.x, b.blurred, params)).squeeze(1)
        m_del, m_ins = igos_pp(score, b.x, b.blurred, params)
        return (1 - m_del * m_ins).squeeze(1)
    if name == "gradcam":
        return bl.gradcam(model, b.x, b.targets, params)  # type: ignore[arg-type]
    if name in ("ig-blur", "ig-black"):
        base = b.blurred if params.baseline == "blur" else black_baseline(b.x, transform)
        sal, _delta = bl.integrated_gradients(model, b.x, b.targets, base, params)  # type: ignore[arg-type]
        return sal
    if name == "occlusion":
        return bl.occlusion(model, b.x, b.targets, b.blurred, params)  # type: ignore[arg-type]
    if name == "rise":
        return bl.rise(model, b.x, b.targets, params)  # type: ignore[arg-type]
    raise PipelineError(f"unknown heatmap method {name!r}")


@dataclass
class Work:
    """What every method runner of one `explain` call shares."""

    cfg: ExplainConfig
    run: Run
    ds: Dataset
    lm: checkpoint.LoadedModel
    model: torch.nn.Module
    device: torch.device
    recs: list[ImageRecord]
    uint8: torch.Tensor  # the selected images, as the model sees them
    entries: dict[int, dict[str, Any]]  # predictions per image id

    def unpack(
        self,
    ) -> tuple[
        Run,
        Dataset,
        list[ImageRecord],
        torch.nn.Module,
        torch.Tensor,
        dict[str, Any],
        dict[int, int],
        torch.device,
        ExplainConfig,
    ]:
        index = {c: i for i, c in enumerate(self.lm.class_ids)}
        return (self.run, self.ds, self.recs, self.model, self.uint8, self.lm.transform, index, self.device, self.cfg)


class Run:
    """The run folder: paths, settings, records."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def image(self, image_id: int) -> str:
        return f"images/{image_id}.png"

    def record(self, method: str, image_id: int, target: str) -> Path:
        return self.root / "records" / method / f"{image_id}-{target}.json"

    def stem(self, method: str, image_id: int, target: str) -> str:
        return f"explanations/{method}/{image_id}-{target}"

    def write_png(self, rel: str, img: Image.Image) -> None:
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=False)
        atomic_write_bytes(self.root / rel, buf.getvalue())

    def write_npy(self, rel: str, arr: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, arr.astype(np.float32))
        atomic_write_bytes(self.root / rel, buf.getvalue())

    def write_json(self, path: Path, obj: Any) -> None:
        atomic_write_text(path, json.dumps(obj, indent=1))

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Refuse to mix assets made from another model, data set, seed or parameters into one run."""
        path = self.root / "settings.json"
        if path.is_file():
            old = json.loads(path.read_text())
            for key in ("model_hash", "data_hash", "seed", "resolution", "transform"):
                if old.get(key) != settings.get(key):
                    raise PipelineError(
                        f"{self.root} was made with another {key} ({old.get(key)!r}); "
                        "give a new --out folder for a new run"
                    )
            for name, params in settings["methods"].items():
                if name in old["methods"] and {**LEGACY_PARAMS, **old["methods"][name]} != {**LEGACY_PARAMS, **params}:
                    raise PipelineError(
                        f"{self.root} has {name} assets made with other parameters; give a new --out folder"
                    )
            settings = {**settings, "methods": {**old["methods"], **settings["methods"]}}
        elif self.root.exists() and any(self.root.iterdir()):
            raise PipelineError(f"{self.root} exists and is not an asset run; give an empty or new --out folder")
        self.write_json(path, settings)


def select(ds: Dataset, cfg: ExplainConfig) -> list[ImageRecord]:
    by_id = {r.id: r for r in ds.images}
    if cfg.images:
        missing = [i for i in cfg.images if i not in by_id]
        if missing:
            raise PipelineError(f"--images: image ids {missing[:10]} are not in {cfg.data}")
        return [by_id[i] for i in dict.fromkeys(cfg.images)]
    try:
        recs = ds.split(cfg.split)
    except ValueError as exc:
        raise PipelineError(f"--split: {exc}") from None
    if cfg.per_class:
        chosen: list[ImageRecord] = []
        for cid in ds.class_ids:
            chosen += [r for r in recs if r.class_id == cid][: cfg.per_class]
        recs = chosen
    if not recs:
        raise PipelineError(f"{cfg.data} has no {cfg.split} images to explain")
    return recs


def _part_scores(ds: Dataset, rec: ImageRecord, full: np.ndarray, mode: str) -> dict[str, dict[str, Any]]:
    """Energy and pointing-game hit per part (and 'discriminative' for the gulls).

    With a segmentation the parts are exact masks and the pointing game allows 15 px; with CUB
    part locations a part is a 15 px disc around its point, which already is the tolerance.
    """
    size = full.shape[0]
    masks, tolerance = _part_masks(ds, rec, size, mode)
    return {
        name: {"energy": round(energy(full, m), 4), "hit": pointing_hit(full, m, tolerance)}
        for name, m in masks.items()
        if m.any()
    }


def _part_masks(ds: Dataset, rec: ImageRecord, size: int, mode: str) -> tuple[dict[str, np.ndarray], int]:
    """Part name -> boolean mask at size×size, and the pointing-game tolerance that goes with them."""
    masks: dict[str, np.ndarray] = {}
    seg_path = ds.segmentation_path(rec)
    if mode in ("auto", "segmentation") and seg_path is not None and seg_path.is_file():
        with Image.open(seg_path) as im:
            seg = np.asarray(im.resize((size, size), Image.Resampling.NEAREST))
        for value, name in enumerate(ds.segmentation_labels):
            if name != "background":
                masks[name] = seg == value
        sp = BY_ID.get(rec.class_id)
        if sp and sp.discriminative:
            masks["discriminative"] = np.logical_or.reduce([masks[p] for p in sp.discriminative if p in masks])
        return masks, TOLERANCE
    with Image.open(ds.image_path(rec)) as im:
        w, h = im.size
    for name, (x, y, visible) in zip(ds.parts, rec.parts, strict=True):
        if visible:
            masks[name] = point_mask((size, size), x * size / w, y * size / h)
    return masks, 0


def _targets(rec_pred: int, rec_true: int, explain_true: bool) -> list[tuple[str, int]]:
    out = [("predicted", rec_pred)]
    if explain_true and rec_pred != rec_true:
        out.append(("true", rec_true))
    return out


Progress = Callable[[int, int, str], None]


def explain(cfg: ExplainConfig, progress: Progress | None = None) -> schema.Manifest:
    """Run every requested method on the selected images and write the run and its manifest."""
    lm = checkpoint.load(cfg.model)
    ds = read_dataset(cfg.data)
    if ds.class_ids != lm.class_ids:
        raise PipelineError(
            f"{cfg.model} was trained on classes {lm.class_ids}, but {cfg.data} has "
            f"{ds.class_ids}; explain the data set the model was trained for"
        )
    if cfg.resolution not in (7, 14, 28, 56, 112, 224):
        raise PipelineError("--resolution must be one of 7, 14, 28, 56, 112, 224")
    device = resolve_device(cfg.device)
    recs = select(ds, cfg)
    run = Run(cfg.out)
    params = {m: method_params(m, cfg) for m in cfg.methods}
    saved_params = {m: _params_dict(p) for m, p in params.items()}
    if "xnn" in params:  # the concept heatmaps' I-GOS settings are part of the method
        saved_params["xnn"] = {**saved_params["xnn"], "heatmap": method_params("xnn-heatmap", cfg).as_dict()}
    model_hash = provenance.file_hash(cfg.model)
    settings = {
        "model": str(cfg.model),
        "model_hash": model_hash,
        "data": str(cfg.data),
        "data_hash": dataset_hash(ds),
        "seed": cfg.seed,
        "resolution": cfg.resolution,
        "transform": lm.transform,
        "methods": saved_params,
        "protocols": {k: v.as_dict() for k, v in PROTOCOLS.items()},
    }
    run.check_settings(settings)

    transform = lm.transform
    model = lm.model.to(device)
    uint8 = load_uint8([ds.image_path(r) for r in recs], transform)
    probs = predict_probs(model, uint8, transform, device)
    entries = _load_entries(run)
    for rec, row, pic in zip(recs, probs, uint8, strict=True):
        pred = lm.class_ids[int(row.argmax())]
        entries[rec.id] = {
            "image_id": rec.id,
            "name": rec.name,
            "split": "train" if rec.is_train else "test",
            "image": run.image(rec.id),
            "true_class": rec.class_id,
            "predicted_class": pred,
            "probabilities": {str(c): round(float(v), 6) for c, v in zip(lm.class_ids, row, strict=True)},
            "correct": pred == rec.class_id,
        }
        if not (run.root / run.image(rec.id)).is_file():
            run.write_png(run.image(rec.id), Image.fromarray(pic.permute(1, 2, 0).numpy()))
    run.write_json(run.root / "images.json", entries)
    refresh(run.root)  # drawings an older renderer made are redrawn from what the run stores

    jobs = [
        (m, i, t, c)
        for m in cfg.methods
        if m not in ("examples", "xnn")
        for i, rec in enumerate(recs)
        for t, c in _targets(entries[rec.id]["predicted_class"], rec.class_id, cfg.explain_true)
        if not run.record(m, rec.id, t).is_file()
    ]
    examples_todo = "examples" in cfg.methods and any(
        _examples_stale(run.record("examples", r.id, "predicted"), entries[r.id]["predicted_class"]) for r in recs
    )
    total, done = len(jobs) + (len(recs) if examples_todo else 0), 0
    work = Work(cfg, run, ds, lm, model, device, recs, uint8, entries)
    if progress:
        progress(0, total, "explaining")
    with frozen(model):
        for name in cfg.methods:
            todo = [j for j in jobs if j[0] == name]
            step = 1 if name == "sag" else cfg.batch  # a SAG search is per image; its steps are batched
            for start in range(0, len(todo), step):
                chunk = todo[start : start + step]
                if name == "sag":
                    _sag(work, chunk[0], params[name])
                else:
                    _heatmap_batch(work, chunk, params[name])
                done += len(chunk)
                if progress:
                    progress(done, total, name)
        if examples_todo:
            _examples(work, params["examples"])
            done += len(recs)
            if progress:
                progress(done, total, "examples")
        if "xnn" in cfg.methods:
            _xnn(work, params["xnn"], progress)
    manifest = build_manifest(run, lm, ds, cfg, settings, str(device))
    atomic_write_text(run.root / schema.MANIFEST, manifest.model_dump_json(indent=1))
    return manifest


def _load_entries(run: Run) -> dict[int, dict[str, Any]]:
    path = run.root / "images.json"
    return {int(k): v for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}


def _heatmap_batch(w: Work, chunk: list[tuple[str, int, str, int]], params: Any) -> None:
    run, ds, recs, model, uint8, transform, index, device, cfg = w.unpack()
    name = chunk[0][0]
    rows = torch.tensor([i for _, i, _, _ in chunk])
    pics = uint8[rows].to(device)
    b = Batch(
        normalise(pics, transform),
        blurred_baseline(pics, transform),
        torch.tensor([index[c] for *_, c in chunk], device=device),
    )
    t0 = time.perf_counter()
    sal = saliency(name, params, model, b, transform).float()
    seconds = (time.perf_counter() - t0) / len(chunk)
    score = ClassProbability(model, b.targets)
    max_batch = cfg.max_batch or default_max_batch(device)
    # igos-native only where it differs from igos: maps not on the 28×28 grid.
    protocols = [p for p in cfg.protocols if p != "igos-native" or sal.shape[-1] != PROTOCOLS["igos"].resolution]
    curves = {p: deletion_insertion(score, b.x, sal, p, b.blurred, max_batch) for p in protocols}
    size = pics.shape[-1]
    for k, (_, i, target, cls) in enumerate(chunk):
        rec = recs[i]
        raw = sal[k].cpu().numpy()
        stem = run.stem(name, rec.id, target)
        run.write_npy(f"{stem}.npy", raw)
        run.write_png(f"{stem}.png", overlay(pics[k].permute(1, 2, 0).cpu().numpy(), raw))
        curve_doc = {
            p: {
                "resolution": c.resolution,
                "removed": c.removed.tolist(),
                "deletion": c.deletion[k].tolist(),
                "insertion": c.insertion[k].tolist(),
            }
            for p, c in curves.items()
        }
        run.write_json(run.root / f"{stem}.json", curve_doc)
        full = (
            torch.nn.functional.interpolate(
                sal[k][None, None].clamp(min=0), size=(size, size), mode="bilinear", align_corners=True
            )[0, 0]
            .cpu()
            .numpy()
        )
        local = _part_scores(ds, rec, full, cfg.parts_from)
        run.write_json(
            run.record(name, rec.id, target),
            {
                "kind": "heatmap",
                "method": name,
                "target": target,
                "target_class": cls,
                "raw": f"{stem}.npy",
                "overlay": f"{stem}.png",
                "curves": f"{stem}.json",
                "faithfulness": [
                    {
                        "protocol": p,
                        "resolution": c.resolution,
                        "deletion_auc": round(float(c.deletion_auc[k]), 5),
                        "insertion_auc": round(float(c.insertion_auc[k]), 5),
                    }
                    for p, c in curves.items()
                ],
                "localisation": local,
                "seconds": round(seconds, 4),
            },
        )


def _sag(w: Work, job: tuple[str, int, str, int], p: SagParams) -> None:
    run, _, recs, model, uint8, transform, index, device, _ = w.unpack()
    class_names = w.lm.class_names
    """One image's structured attention graph: search, graph document, diagrams, question images."""
    from pipeline.render import sag as draw

    _, i, target, cls = job
    rec = recs[i]
    pic = uint8[i : i + 1].to(device)
    x = normalise(pic, transform)
    blurred01 = gaussian_blur(pic.float() / 255, 51, 50.0)
    baseline = normalise(blurred01, transform) if p.baseline == "blur" else black_baseline(x, transform)
    t0 = time.perf_counter()
    found = search(ClassProbability(model, torch.tensor([index[cls]], device=device)), x, baseline, p)
    seconds = time.perf_counter() - t0
    image = pic[0].permute(1, 2, 0).cpu().numpy()
    base_pix = (
        (blurred01[0] * 255).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
        if p.baseline == "blur"
        else np.zeros_like(image)
    )
    stem = run.stem("sag", rec.id, target)
    nodes = []
    for n in found.nodes:
        thumb = f"{stem}/node-{n.id}.png"
        run.write_png(thumb, draw.thumbnail(image, n.patches, p.grid, 160))
        nodes.append(
            {
                "id": n.id,
                "patches": list(n.patches),
                "confidence": round(n.confidence, 5),
                "root": n.root,
                "depth": n.depth,
                "thumbnail": thumb,
            }
        )
    questions = []
    for q, question in enumerate(found.questions):
        versions = {}
        for side, patches, conf, inside in (
            ("a", question.a, question.confidence_a, question.a_in_graph),
            ("b", question.b, question.confidence_b, question.b_in_graph),
        ):
            rel = f"{stem}/question-{q}-{side}.png"
            run.write_png(rel, draw.model_view(image, base_pix, patches, p.grid))
            versions[side] = {"patches": list(patches), "confidence": round(conf, 5), "image": rel, "in_graph": inside}
        questions.append({"id": f"{rec.id}-{target}-q{q}", **versions, "higher": question.higher})
    graph = schema.SagGraph.model_validate(
        {
            "image_id": rec.id,
            "target_class": cls,
            "grid": p.grid,
            "baseline": p.baseline,
            "threshold": p.threshold,
            "node_threshold": p.node_threshold,
            "p_full": round(found.p_full, 6),
            "order": found.order,
            "all_roots": [list(r) for r in found.all_roots],
            "roots": [list(r) for r in found.roots],
            "nodes": nodes,
            "edges": [
                {"parent": e.parent, "child": e.child, "removed_patch": e.removed_patch, "drop": round(e.drop, 5)}
                for e in found.edges
            ],
            "questions": questions,
            "forwards": found.forwards,
            "calls": found.calls,
            "seconds": round(seconds, 4),
            "seed": p.seed,
        }
    )
    atomic_write_text(run.root / f"{stem}.json", graph.model_dump_json(indent=1))
    name = class_names[index[cls]]
    diagrams = sag_diagrams(run.root, stem, graph, image)  # they name no class and no image: safe in studies
    run.write_png(f"{stem}.png", draw.diagram_png(graph, image, name))
    run.write_json(
        run.record("sag", rec.id, target),
        {
            "kind": "sag",
            "method": "sag",
            "target": target,
            "target_class": cls,
            "graph": f"{stem}.json",
            **diagrams,
            "diagram_png": f"{stem}.png",
            "roots": len(found.roots),
            "files": graph.files(),
            "seconds": round(seconds, 4),
        },
    )


def _xnn(w: Work, p: XnnParams, progress: Progress | None) -> None:
    run, ds, recs, model, uint8, _, _, device, cfg = w.unpack()
    lm, entries = w.lm, w.entries
    from pipeline.explain_xnn import XnnStage

    stage = XnnStage(
        run, ds, model, lm.class_ids, lm.transform, device, p, method_params("xnn-heatmap", cfg), cfg.batch
    )
    if progress:
        progress(0, len(lm.class_ids), "xnn: training concepts")
    xnns, meta, train_x = stage.train()
    targets = [_targets(entries[r.id]["predicted_class"], r.class_id, cfg.explain_true) for r in recs]

    def step(phase: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: progress(done, total, phase)) if progress else None

    stage.explain_images(xnns, recs, uint8, targets, lm.class_names, step("xnn: concept maps"))
    stage.report(xnns, meta, train_x, step("xnn: concept galleries"))


def _examples_stale(record: Path, predicted: int) -> bool:
    """Not written yet, or written before examples kept to the predicted class (then redone)."""
    if not record.is_file():
        return True
    return any(n["true_class"] != predicted for n in json.loads(record.read_text())["neighbours"])


def _examples(w: Work, params: dict[str, Any]) -> None:
    run, ds, recs, model, uint8, _, _, device, cfg = w.unpack()
    lm = w.lm
    train = ds.split("train")
    if not train:
        raise PipelineError(f"{cfg.data} has no training images to draw examples from")
    t0 = time.perf_counter()
    bank = _features(run, ds, train, lm, model, device)
    queries = _embed(model, uint8, lm.transform, device)
    pos = {r.id: j for j, r in enumerate(train)}
    exclude = torch.tensor([pos.get(r.id, -1) for r in recs])
    # The examples explain the prediction: the nearest training images of the class the model
    # predicted. Nearest images of any class would show, when the model is wrong, pictures
    # labelled with the true species: the answer key of a verify task.
    predicted = torch.tensor([w.entries[r.id]["predicted_class"] for r in recs])
    classes = torch.tensor([r.class_id for r in train])
    allowed = classes[None, :] == predicted[:, None]
    idx, dist = nearest(queries, bank, int(params["k"]), exclude, allowed)
    seconds = (time.perf_counter() - t0) / len(recs)
    needed = {int(j) for j, d in zip(idx.flatten(), dist.flatten(), strict=True) if torch.isfinite(d)}
    pics = load_uint8([ds.image_path(train[j]) for j in sorted(needed)], lm.transform)
    for j, pic in zip(sorted(needed), pics, strict=True):
        rel = run.image(train[j].id)
        if not (run.root / rel).is_file():
            run.write_png(rel, Image.fromarray(pic.permute(1, 2, 0).numpy()))
    for q, rec in enumerate(recs):
        neighbours = [
            {
                "image_id": train[int(j)].id,
                "true_class": train[int(j)].class_id,
                "distance": round(float(d), 5),
                "image": run.image(train[int(j)].id),
            }
            for j, d in zip(idx[q], dist[q], strict=True)
            if torch.isfinite(d)
        ]
        run.write_json(
            run.record("examples", rec.id, "predicted"),
            {
                "kind": "examples",
                "method": "examples",
                "target": "predicted",
                "neighbours": neighbours,
                "seconds": round(seconds, 4),
            },
        )


@torch.no_grad()
def _embed(
    model: torch.nn.Module, uint8: torch.Tensor, transform: dict[str, Any], device: torch.device, batch: int = 128
) -> torch.Tensor:
    out = [
        model.features(normalise(uint8[i : i + batch].to(device), transform)).cpu()  # type: ignore[operator]
        for i in range(0, len(uint8), batch)
    ]
    return torch.cat(out)


def _features(
    run: Run,
    ds: Dataset,
    train: list[ImageRecord],
    lm: checkpoint.LoadedModel,
    model: torch.nn.Module,
    device: torch.device,
) -> torch.Tensor:
    """Penultimate features of the training split, cached in the run."""
    path = run.root / "examples" / "train_features.npy"
    if path.is_file():
        arr = np.load(path)
        if arr.shape[0] == len(train):
            return torch.from_numpy(arr)
    feats = _embed(model, load_uint8([ds.image_path(r) for r in train], lm.transform), lm.transform, device)
    run.write_npy("examples/train_features.npy", feats.numpy())
    return feats


def build_manifest(
    run: Run, lm: checkpoint.LoadedModel, ds: Dataset, cfg: ExplainConfig, settings: dict[str, Any], device: str
) -> schema.Manifest:
    """Assemble the manifest from every record in the run folder."""
    saved = json.loads((run.root / "settings.json").read_text())
    entries = _load_entries(run)
    images = []
    for image_id in sorted(entries):
        e = dict(entries[image_id])
        explanations = []
        for method in METHODS:
            for target in ("predicted", "true"):
                path = run.record(method, image_id, target)
                if path.is_file():
                    explanations.append(json.loads(path.read_text()))
        e["probabilities"] = {int(k): v for k, v in e["probabilities"].items()}
        images.append({**e, "explanations": explanations})
    used = {x["method"] for img in images for x in img["explanations"]}
    parts = sorted({p for img in images for x in img["explanations"] for p in x.get("localisation", {})})
    doc = {
        "run_id": run.root.resolve().name,
        "provenance": {
            "model_path": str(cfg.model),
            "model_hash": settings["model_hash"],
            "model_arch": lm.meta["arch"],
            "data_path": str(cfg.data),
            "data_hash": settings["data_hash"],
            "code_version": provenance.code_version(),
            "libraries": provenance.library_versions("torch", "torchvision", "captum", "numpy", "pillow"),
            "seed": cfg.seed,
            "device": device,
            "created": provenance.now(),
        },
        "classes": [{"id": c, "name": n} for c, n in zip(lm.class_ids, lm.class_names, strict=True)],
        "methods": {
            m: {
                "description": DESCRIPTIONS[m],
                "params": saved["methods"][m],
                "reference_code": REFERENCE_CODE[m],
                "deviations": [d.as_dict() for d in DEVIATIONS[m]],
            }
            for m in METHODS
            if m in used
        },
        "protocols": {k: v.as_dict() for k, v in PROTOCOLS.items()},
        "parts": parts,
        "images": images,
        "xnn": json.loads((run.root / "xnn" / "report.json").read_text()) if "xnn" in used else None,
    }
    return schema.Manifest.model_validate(doc)
