"""The run's manifest: every record in the run folder, with provenance, as the app's schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.assets import manifest as schema
from pipeline import provenance
from pipeline.explain.registry import METHODS
from pipeline.explain.run_folder import Run
from pipeline.methods.deviations import DEVIATIONS, REFERENCE_CODE
from pipeline.metrics.faithfulness import PROTOCOLS
from pipeline.models import checkpoint

TARGETS = ("predicted", "true")


def build_manifest(
    run: Run, lm: checkpoint.LoadedModel, model_path: Path, data_path: Path, device: str
) -> schema.Manifest:
    """Assemble the manifest from every record in the run folder (methods in the registry's order)."""
    saved = run.settings()
    entries = run.entries()
    images = []
    for image_id in sorted(entries):
        e = dict(entries[image_id])
        explanations = [
            json.loads(path.read_text())
            for method in METHODS
            for target in TARGETS
            if (path := run.record(method, image_id, target)).is_file()
        ]
        e["probabilities"] = {int(k): v for k, v in e["probabilities"].items()}
        images.append({**e, "explanations": explanations})
    used = {x["method"] for img in images for x in img["explanations"]}
    parts = sorted({p for img in images for x in img["explanations"] for p in x.get("localisation", {})})
    concepts = [m for m in used if METHODS[m].kind == "concepts"]
    doc: dict[str, Any] = {
        "run_id": run.root.resolve().name,
        "provenance": {
            "model_path": str(model_path),
            "model_hash": saved["model_hash"],
            "model_arch": lm.meta["arch"],
            "data_path": str(data_path),
            "data_hash": saved["data_hash"],
            "code_version": provenance.code_version(),
            "libraries": provenance.library_versions("torch", "torchvision", "captum", "numpy", "pillow"),
            "seed": saved["seed"],
            "device": device,
            "created": provenance.now(),
        },
        "classes": [{"id": c, "name": n} for c, n in zip(lm.class_ids, lm.class_names, strict=True)],
        "methods": {
            m: {
                "description": METHODS[m].description,
                "params": saved["methods"][m],
                "reference_code": REFERENCE_CODE.get(m),
                "deviations": [d.as_dict() for d in DEVIATIONS.get(m, [])],
            }
            for m in METHODS
            if m in used
        },
        "protocols": {k: v.as_dict() for k, v in PROTOCOLS.items()},
        "parts": parts,
        "images": images,
        "xnn": json.loads((run.root / "xnn" / "report.json").read_text()) if concepts else None,
    }
    return schema.Manifest.model_validate(doc)
