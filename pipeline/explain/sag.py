"""The SAG stage: one image's structured attention graph per call (its search steps are batched):
the graph document, its diagrams (SVG for studies, PNG for people) and the question images."""

from __future__ import annotations

import time

import numpy as np
import torch

from app.assets import manifest as schema
from pipeline.explain.registry import Method
from pipeline.explain.work import Bar, Work
from pipeline.methods.common import ClassProbability, black_baseline, gaussian_blur
from pipeline.methods.sag import SagParams, search
from pipeline.models.images import normalise
from pipeline.render import sag as draw
from pipeline.render.refresh import sag_diagrams


def count(w: Work, method: Method) -> int:
    return len(w.jobs(method))


def run(w: Work, method: Method, params: SagParams, bar: Bar) -> None:
    for job in w.jobs(method):
        _one(w, method.name, job, params)
        bar.advance(1, method.name)


def _one(w: Work, name: str, job: tuple[int, str, int], p: SagParams) -> None:
    run = w.run
    i, target, cls = job
    rec = w.recs[i]
    pic = w.uint8[i : i + 1].to(w.device)
    x = normalise(pic, w.transform)
    blurred01 = gaussian_blur(pic.float() / 255, 51, 50.0)
    baseline = normalise(blurred01, w.transform) if p.baseline == "blur" else black_baseline(x, w.transform)
    t0 = time.perf_counter()
    found = search(ClassProbability(w.model, torch.tensor([w.index[cls]], device=w.device)), x, baseline, p)
    seconds = time.perf_counter() - t0
    image = pic[0].permute(1, 2, 0).cpu().numpy()
    base_pix = (
        (blurred01[0] * 255).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
        if p.baseline == "blur"
        else np.zeros_like(image)
    )
    stem = run.stem(name, rec.id, target)
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
    run.write_text(f"{stem}.json", graph.model_dump_json(indent=1))
    diagrams = sag_diagrams(run.root, stem, graph, image)  # they name no class and no image: safe in studies
    run.write_png(f"{stem}.png", draw.diagram_png(graph, image, w.lm.class_names[w.index[cls]]))
    run.write_json(
        run.record(name, rec.id, target),
        {
            "kind": "sag",
            "method": name,
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
