"""`explain`: check the request, predict, run each method's stage, write the manifest.

Stages run in a fixed order (heatmaps and SAGs as asked, then examples, then XNN: its concept
galleries reuse the pictures the others wrote); each stage skips what the run already holds.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from app.assets import manifest as schema
from pipeline import provenance
from pipeline.data.cub import Dataset, ImageRecord, dataset_hash, read_dataset
from pipeline.devices import default_max_batch, resolve_device
from pipeline.errors import PipelineError
from pipeline.explain import examples, heatmaps, sag, xnn
from pipeline.explain.config import ExplainConfig
from pipeline.explain.manifest import build_manifest
from pipeline.explain.registry import Defaults, Method, Params, get, make_params, nested_params
from pipeline.explain.run_folder import Run
from pipeline.explain.work import Bar, Progress, Work
from pipeline.io import atomic_write_text
from pipeline.methods.common import frozen
from pipeline.metrics.faithfulness import PROTOCOLS
from pipeline.models import checkpoint
from pipeline.models.images import load_uint8
from pipeline.models.train import predict_probs
from pipeline.render.refresh import refresh

STAGES: dict[str, ModuleType] = {"heatmap": heatmaps, "sag": sag, "examples": examples, "xnn": xnn}
ORDER = {"heatmap": 0, "sag": 0, "examples": 1, "xnn": 2}


def explain(cfg: ExplainConfig, progress: Progress | None = None) -> schema.Manifest:
    """Run every requested method on the selected images and write the run and its manifest."""
    cfg.check()
    methods = [get(name) for name in cfg.methods]
    protocols = tuple(PROTOCOLS) if cfg.protocols is None else cfg.protocols
    for p in protocols:
        if p not in PROTOCOLS:
            raise PipelineError(f"unknown faithfulness protocol {p!r}; use any of {', '.join(PROTOCOLS)}")
    device = resolve_device(cfg.device)
    max_batch = cfg.max_batch or default_max_batch(device)
    defaults = Defaults(cfg.resolution, cfg.seed, max_batch)
    for name, changes in cfg.params.items():  # every change is checked, also for methods not asked for now
        saved_params(get(name), make_params(get(name), defaults, changes), defaults, cfg)
    params: dict[str, Params] = {m.name: make_params(m, defaults, cfg.params.get(m.name, {})) for m in methods}
    lm = checkpoint.load(cfg.model)
    ds = read_dataset(cfg.data)
    if ds.class_ids != lm.class_ids:
        raise PipelineError(
            f"{cfg.model} was trained on classes {lm.class_ids}, but {cfg.data} has "
            f"{ds.class_ids}; explain the data set the model was trained for"
        )
    recs = select(ds, cfg)
    run = Run(cfg.out)
    settings = {
        "model": str(cfg.model),
        "model_hash": provenance.file_hash(cfg.model),
        "data": str(cfg.data),
        "data_hash": dataset_hash(ds),
        "seed": cfg.seed,
        "resolution": cfg.resolution,
        "transform": lm.transform,
        "methods": {m.name: saved_params(m, params[m.name], defaults, cfg) for m in methods},
        "protocols": {k: v.as_dict() for k, v in PROTOCOLS.items()},
    }
    run.check_settings(settings)

    model = lm.model.to(device)
    uint8 = load_uint8([ds.image_path(r) for r in recs], lm.transform)
    w = Work(
        cfg,
        run,
        ds,
        lm,
        model,
        device,
        max_batch,
        protocols,
        defaults,
        recs,
        uint8,
        predict(run, lm, recs, uint8, device),
    )
    ordered = sorted(methods, key=lambda m: ORDER[m.stage])
    bar = Bar(progress, sum(STAGES[m.stage].count(w, m) for m in ordered))
    if progress:
        progress(0, bar.total, "explaining")
    with frozen(model):
        for m in ordered:
            STAGES[m.stage].run(w, m, params[m.name], bar)
    manifest = build_manifest(run, lm, cfg.model, cfg.data, str(device))
    atomic_write_text(run.root / schema.MANIFEST, manifest.model_dump_json(indent=1))
    return manifest


def saved_params(m: Method, p: Params, defaults: Defaults, cfg: ExplainConfig) -> dict[str, object]:
    """A method's parameters as the run's settings and the manifest record them (groups nested)."""
    changes = cfg.params.get(m.name, {})
    return p.as_dict() | {g: nested_params(m, g, defaults, changes).as_dict() for g in m.nested}


def predict(
    run: Run, lm: checkpoint.LoadedModel, recs: list[ImageRecord], uint8: Any, device: Any
) -> dict[int, dict[str, Any]]:
    """The model's answer for every selected image, added to the run's image entries (and pictures)."""
    probs = predict_probs(lm.model, uint8, lm.transform, device)
    entries = run.entries()
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
        run.write_picture(rec.id, pic.permute(1, 2, 0).numpy())
    run.write_entries(entries)
    refresh(run.root)  # drawings an older renderer made are redrawn from what the run stores
    return entries


def select(ds: Dataset, cfg: ExplainConfig) -> list[ImageRecord]:
    """The images to explain: --images, else the split (first --per-class of each class)."""
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
