"""SAG: our two switchable deviations against the authors' choices, on the benchmark images.

`python -m benchmarks.sag_variants [--per-class N]` (part of `make bench-explain`'s subject, run on
its own because it is short). Same demo model, test images and parameters as the SAG section;
four variants: ours; no patience stop (the authors'); children by patch index (the authors');
both (the authors' code on these two points). Search cost and roots come from the search; the
graph measures say what the edges show: the confidence drop when a root loses one patch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from typing import Any

import torch

from benchmarks.report import machine, write_section
from fieldmark.demo import ensure_data, ensure_model
from pipeline.explain import ExplainConfig
from pipeline.explain.runner import select
from pipeline.methods.common import ClassProbability, blurred_baseline, frozen
from pipeline.methods.sag import AUTHORS, Sag, SagParams, Scorer, _graph, search
from pipeline.models import checkpoint
from pipeline.models.images import load_uint8, normalise
from pipeline.models.train import predict_probs
from pipeline.provenance import home

VARIANTS: dict[str, dict[str, Any]] = {
    "ours (patience 4, most salient children)": {},
    "no patience stop (authors')": {"patience": None},
    "children by patch index (authors')": {"children": "index"},
    "both as the authors": AUTHORS,
}
COLUMNS = (
    "variant",
    "forwards / image",
    "s / image",
    "roots found",
    "≥ 2 roots shown",
    "root size",
    "roots shown as the authors'",
    "nodes",
    "root drop",
    "big drops",
)
HEADER = "| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|"
BASE = {  # a children-by-index variant reuses the search of the variant with the same patience
    "children by patch index (authors')": "ours (patience 4, most salient children)",
    "both as the authors": "no patience stop (authors')",
}


def measures(sags: list[Sag], seconds: list[float], authors: list[Sag]) -> dict[str, float]:
    root_edges = [
        e for s in sags for e in s.edges if s.nodes[e.parent].root
    ]  # a root losing one patch: what the first row of edges shows
    return {
        "forwards": statistics.fmean(s.forwards for s in sags),
        "seconds": statistics.fmean(seconds),
        "roots found": statistics.fmean(len(s.all_roots) for s in sags),
        "two shown": sum(len(s.roots) >= 2 for s in sags) / len(sags),
        "root size": statistics.fmean(len(r) for s in sags for r in s.roots),
        "same roots": statistics.fmean(set(s.roots) == set(a.roots) for s, a in zip(sags, authors, strict=True)),
        "nodes": statistics.fmean(len(s.nodes) for s in sags),
        "root drop": statistics.fmean(e.drop for e in root_edges) if root_edges else float("nan"),
        "big drops": sum(e.drop >= 0.5 for e in root_edges) / max(1, len(root_edges)),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sag_variants", description=__doc__)
    ap.add_argument(
        "--per-class", type=int, default=4, help="test images per species (default 4: the SAG section's 32)"
    )
    args = ap.parse_args(argv)
    root = home()
    data, model_file = ensure_data(root), ensure_model(root)
    lm = checkpoint.load(model_file)
    cfg = ExplainConfig(model=model_file, data=data, out=root / "unused", methods=["sag"], per_class=args.per_class)
    from pipeline.data.cub import read_dataset

    ds = read_dataset(data)
    recs = select(ds, cfg)
    pics = load_uint8([ds.image_path(r) for r in recs], lm.transform)
    preds = torch.as_tensor(predict_probs(lm.model, pics, lm.transform, torch.device("cpu"))).argmax(1)
    # Two searches per image (with and without the patience stop); the children rule changes only
    # the graph, so each search's roots also get the other rule's graph (search cost counted once
    # in both rows, plus that graph's own scoring).
    results: dict[str, tuple[list[Sag], list[float]]] = {name: ([], []) for name in VARIANTS}
    with frozen(lm.model):
        for k in range(len(recs)):
            x = normalise(pics[k : k + 1], lm.transform)
            base = blurred_baseline(pics[k : k + 1], lm.transform)
            score = ClassProbability(lm.model, preds[k : k + 1])
            for name, change in VARIANTS.items():
                p = replace(SagParams(), **change)
                t0 = time.perf_counter()
                if p.children == "index":  # the search of the same variant with salient children
                    base_name = BASE[name]
                    found = results[base_name][0][k]
                    sag = Sag(p_full=found.p_full, order=found.order, all_roots=found.all_roots, roots=found.roots)
                    scorer = Scorer(score, x, base, p)
                    _graph(sag, scorer, p)
                    sag.forwards, sag.calls = found.forwards + scorer.forwards, found.calls + scorer.calls
                    seconds = time.perf_counter() - t0 + results[base_name][1][k]
                else:
                    sag = search(score, x, base, p)
                    seconds = time.perf_counter() - t0
                results[name][0].append(sag)
                results[name][1].append(seconds)
            print(f"image {recs[k].id} done", flush=True)
    rows = []
    for name, (sags, secs) in results.items():
        m = measures(sags, secs, results["both as the authors"][0])
        print(name, m, flush=True)
        rows.append(
            f"| {name} | {m['forwards']:.0f} | {m['seconds']:.1f} | {m['roots found']:.1f} | {m['two shown']:.0%} "
            f"| {m['root size']:.1f} | {m['same roots']:.0%} | {m['nodes']:.1f} | {m['root drop']:.2f} "
            f"| {m['big drops']:.0%} |"
        )
    write_section(
        "sag-variants",
        f"""
## SAG: our deviations against the authors' choices (`python -m benchmarks.sag_variants`)

Machine: {machine()}, load average {os.getloadavg()[2]:.1f} over the last 15 minutes (seconds compare the
variants with each other only); torch {torch.__version__}, CPU. Demo compact model, {len(recs)} test images
(the first {args.per_class} of each species), predicted class, blurred baseline, the SAG section's parameters
otherwise. Root drop: mean confidence lost (share of the full image's) when a shown root loses one patch — the
first row of edges a participant reads; big drops: share of those edges losing at least half; roots shown as
the authors': share of images whose shown roots are exactly those of the authors' choices.

{HEADER}
{chr(10).join(rows)}
""",
    )


if __name__ == "__main__":
    main()
