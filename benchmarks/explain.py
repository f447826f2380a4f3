"""`make bench-explain`: every explanation method on the demo model and ≥ 100 test images.

Heatmaps: deletion and insertion AUC under both protocols, localisation on the parts that tell
each species from its look-alikes, saliency mass on the bird, and seconds per image. SAG: work
and seconds per image, roots found and their size. XNN: faithfulness and the concept × part table.
The run is resumable (it lives in var/bench/explain), so an interrupted benchmark continues.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from app.assets import manifest as schema
from benchmarks.report import DOC, machine, write_section
from fieldmark.demo import ensure_data, ensure_model
from pipeline.explain import HEATMAP_METHODS, ExplainConfig, explain, parse_methods
from pipeline.provenance import home

PER_CLASS = 13  # 8 species × 13 = 104 test images (--per-class N runs a stated subset)
HEATMAPS = "igos,igospp,igospp-authors,gradcam,ig,occlusion,rise"
BIRD = ("body", "head", "mantle", "wingtips", "bill", "eye", "legs")
COLUMNS = (
    "method",
    "del igos ↓",
    "ins igos ↑",
    "del own grid ↓",
    "ins own grid ↑",
    "del rise ↓",
    "ins rise ↑",
    "mass on discriminative parts",
    "peak on them",
    "mass on bird",
    "s / image",
)
HEADER = "| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|"


def summarise(m: schema.Manifest) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, list[float]]] = {k: {} for k in HEATMAP_METHODS}
    for entry in m.images:
        for e in entry.explanations:
            if not isinstance(e, schema.Heatmap) or e.target != "predicted":
                continue
            r = rows[e.method]
            for f in e.faithfulness:
                r.setdefault(f"del_{f.protocol}", []).append(f.deletion_auc)
                r.setdefault(f"ins_{f.protocol}", []).append(f.insertion_auc)
                r.setdefault(f"res_{f.protocol}", []).append(float(f.resolution or 0))
            loc = e.localisation
            if "discriminative" in loc:
                r.setdefault("disc_energy", []).append(loc["discriminative"].energy)
                r.setdefault("disc_hit", []).append(float(loc["discriminative"].hit))
            r.setdefault("bird", []).append(sum(loc[p].energy for p in BIRD if p in loc))
            r.setdefault("seconds", []).append(e.seconds)
    return {k: {name: statistics.fmean(v) for name, v in r.items()} for k, r in rows.items() if r}


def figure(m: schema.Manifest, run: Path, out: Path, count: int = 5) -> None:
    """Images × (picture, iGOS++, I-GOS, Grad-CAM): does each method point at the bird?"""
    picks = [e for e in m.images if e.correct][:: max(1, len(m.images) // count)][:count]
    cols = [("image", None), ("iGOS++", "igospp"), ("I-GOS", "igos"), ("Grad-CAM", "gradcam")]
    tile, top, gap = 224, 34, 6
    sheet = Image.new("RGB", (len(cols) * (tile + gap) + gap, top + len(picks) * (tile + gap)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=18)
    for j, (title, _) in enumerate(cols):
        draw.text((gap + j * (tile + gap) + tile // 2, top // 2), title, fill=(34, 38, 46), font=font, anchor="mm")
    for i, entry in enumerate(picks):
        for j, (_, method) in enumerate(cols):
            if method is None:
                path = run / entry.image
            else:
                h = entry.explanation(method)
                assert isinstance(h, schema.Heatmap)
                path = run / h.overlay
            with Image.open(path) as im:
                sheet.paste(im.convert("RGB"), (gap + j * (tile + gap), top + i * (tile + gap)))
    sheet.save(out, optimize=True)


GPU_TARGETS = " (targets on an H200: I-GOS ≤ 0.12 s and iGOS++ ≤ 0.45 s per image)"


def gpu_note(targets: str = "") -> str:
    """Where the GPU timing is, or that it has not been measured (it needs a CUDA machine)."""
    if (home() / "bench" / "gpu.md").is_file():
        return "GPU timing on ResNet-50: `make bench-explain-gpu`, in var/bench/gpu.md of the machine that ran it."
    return (
        "**GPU timing is not measured**: `make bench-explain-gpu` (I-GOS, iGOS++ and SAG on ResNet-50) needs CUDA, "
        f"and no GPU has been available to this work{targets}."
    )


def mask_agreement(m: schema.Manifest, run: Path, a: str, b: str) -> tuple[float, int]:
    """Mean Spearman correlation of two methods' maps of the same image and class, and over how many
    images (a constant map has no ranking and is left out)."""
    import numpy as np
    from scipy.stats import spearmanr

    rhos = []
    for entry in m.images:
        ha, hb = entry.explanation(a), entry.explanation(b)
        assert isinstance(ha, schema.Heatmap) and isinstance(hb, schema.Heatmap)
        ra, rb = np.load(run / ha.raw).ravel(), np.load(run / hb.raw).ravel()
        if ra.min() < ra.max() and rb.min() < rb.max():
            rhos.append(float(spearmanr(ra, rb).statistic))
    return (statistics.fmean(rhos) if rhos else float("nan")), len(rhos)


def quiet_timing(model: Path, data: Path, methods: list[str], per_class: int = 1) -> dict[str, float]:
    """Seconds per image for each method alone, in a fresh run without metrics. It runs first, so
    the machine can be left idle for these few minutes and busy for the long quality run after."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cfg = ExplainConfig(
            model=model,
            data=data,
            out=Path(tmp) / "t",
            methods=methods,
            per_class=per_class,
            device="cpu",
            explain_true=False,
            protocols=(),
        )
        m = explain(cfg)
    out: dict[str, list[float]] = {}
    for entry in m.images:
        for e in entry.explanations:
            out.setdefault(e.method, []).append(e.seconds)
    return {k: statistics.fmean(v) for k, v in out.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.explain", description=__doc__)
    ap.add_argument(
        "--per-class",
        type=int,
        default=PER_CLASS,
        help=f"test images per species for the heatmap table (default {PER_CLASS}; fewer: a stated subset)",
    )
    ap.add_argument("--heatmaps-only", action="store_true", help="skip the SAG and XNN sections")
    ap.add_argument(
        "--timing",
        choices=("quiet", "in-run"),
        default="quiet",
        help="seconds per image from a separate quiet pass (default) or from the quality run itself",
    )
    args = ap.parse_args(argv)
    if args.per_class < 1:
        ap.error("--per-class must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    import json

    from pipeline.cli import progress_bar

    args = parse_args(argv)
    root = home()
    data, model = ensure_data(root), ensure_model(root)
    bench = root / "bench"
    images_dir = DOC.parent / "images"
    images_dir.mkdir(exist_ok=True)
    heatmaps = parse_methods(HEATMAPS)
    # 1. Seconds per image, on a quiet machine (kept, so a resumed benchmark does not redo it).
    timing: dict[str, float] = {}
    timing_file = bench / "explain-timing.json"
    if args.timing == "quiet":
        if timing_file.is_file():
            timing = json.loads(timing_file.read_text())
        if set(timing) < {*heatmaps, "sag"}:  # a method added since: time them all again
            timing = quiet_timing(model, data, [*heatmaps, "sag"])
            timing_file.parent.mkdir(parents=True, exist_ok=True)
            timing_file.write_text(json.dumps(timing, indent=1))
        print("quiet timing:", json.dumps({k: round(v, 2) for k, v in timing.items()}), flush=True)
    # 2. SAG and XNN on 4 test images per species.
    if not args.heatmaps_only:
        structures = bench / "explain-structures"
        cfg = ExplainConfig(
            model=model,
            data=data,
            out=structures,
            methods=["sag", "xnn"],
            per_class=4,
            device="cpu",
            explain_true=False,
        )
        with progress_bar("SAG and XNN") as update:
            ms = explain(cfg, lambda i, n, phase: update(i, n, phase))
        sag_section(ms, structures, images_dir, timing.get("sag"))
        xnn_section(ms, structures, images_dir)
    # 3. Every heatmap method on the test images, in one run (a subset has its own folder).
    run = bench / ("explain" if args.per_class == PER_CLASS else f"explain-{args.per_class}-per-class")
    cfg = ExplainConfig(
        model=model,
        data=data,
        out=run,
        methods=heatmaps,
        per_class=args.per_class,
        device="cpu",
        explain_true=False,
    )
    with progress_bar("heatmaps") as update:
        m = explain(cfg, lambda i, n, phase: update(i, n, phase))
    heatmap_section(m, run, images_dir, timing, args)


NAMES = {
    "igos": "I-GOS",
    "igospp": "iGOS++",
    "igospp-authors": "iGOS++ (authors' line search)",
    "gradcam": "Grad-CAM",
    "ig-blur": "IG (blur baseline)",
    "ig-black": "IG (black baseline)",
    "occlusion": "Occlusion",
    "rise": "RISE",
}


def heatmap_section(
    m: schema.Manifest, run: Path, images_dir: Path, timing: dict[str, float], args: argparse.Namespace
) -> None:
    stats = summarise(m)
    methods = [k for k in HEATMAP_METHODS if k in stats]
    for method, seconds in timing.items():
        if method in stats:
            stats[method]["seconds"] = seconds
    lines = []
    for method in methods:
        s = stats[method]
        if "del_igos-native" in s:
            side = round(s["res_igos-native"])
            cells = f"{s['del_igos-native']:.3f} ({side}²) | {s['ins_igos-native']:.3f} ({side}²)"
        else:
            cells = "= igos (28²) | = igos (28²)"
        lines.append(
            f"| {NAMES[method]} | {s['del_igos']:.3f} | {s['ins_igos']:.3f} | {cells} | {s['del_rise']:.3f} | "
            f"{s['ins_rise']:.3f} | {s['disc_energy']:.2f} | {s['disc_hit']:.0%} | {s['bird']:.2f} | "
            f"{'< 0.01' if s['seconds'] < 0.005 else format(s['seconds'], '.2f')} |"
        )

    def own(k: str, d: str) -> float:  # the own-grid score, which is the igos one for 28×28 maps
        return stats[k].get(f"{d}_igos-native", stats[k][f"{d}_igos"])

    def ranked(key: str, sign: float, native: bool = False) -> str:
        value = (lambda k: own(k, key)) if native else (lambda k: stats[k][f"{key}"])
        return ", ".join(NAMES[k] for k in sorted(methods, key=lambda k: sign * value(k)))

    def claims(protocol: str) -> str:
        d, i = f"del_{protocol}", f"ins_{protocol}"
        rivals = ("gradcam", "ig-blur", "ig-black", "rise")
        igos_del = all(stats["igos"][d] < stats[r][d] for r in rivals)
        igos_ins = all(stats["igos"][i] > stats[r][i] for r in rivals)
        pp_del, pp_ins = stats["igospp"][d] < stats["igos"][d], stats["igospp"][i] > stats["igos"][i]

        def yes(b: bool) -> str:
            return "holds" if b else "does not hold"

        return (
            f"`{protocol}` protocol: I-GOS ahead of Grad-CAM, IG and RISE on deletion {yes(igos_del)}, "
            f"on insertion {yes(igos_ins)}; iGOS++ ahead of I-GOS on deletion {yes(pp_del)}, "
            f"on insertion {yes(pp_ins)}."
        )

    figure(m, run, images_dir / "heatmaps.png")
    wrong = sum(not e.correct for e in m.images)
    subset = (
        ""
        if args.per_class == PER_CLASS
        else (
            f"\n\n**A stated subset**: the first {args.per_class} test images of each species, not the full "
            f"{PER_CLASS}, so that the whole table is one run that fits a working session on this machine "
            f"(`python -m benchmarks.explain --per-class {args.per_class}`; the full set takes about "
            f"{PER_CLASS / args.per_class:.0f} times as long). Means over {len(m.images)} images move by a few "
            "hundredths between subsets; read differences smaller than that as ties."
        )
    )
    timed = (
        "seconds per image for the method alone (metrics excluded), timed on 8 images (one per species, one "
        "batch) in a separate pass with nothing else running"
        if args.timing == "quiet"
        else "seconds per image for the method alone (metrics excluded), measured in this run on a machine "
        "shared with other work (2 cores, load above 4): compare them with each other, not with other machines"
    )
    pp_delta = {d: stats["igospp-authors"][f"{d}_igos"] - stats["igospp"][f"{d}_igos"] for d in ("del", "ins")}
    pp_rho, pp_n = mask_agreement(m, run, "igospp", "igospp-authors")
    write_section(
        "explain",
        f"""
## Heatmap explanations (`make bench-explain`)

Machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads, CPU only.
Demo compact model, {len(m.images)} test images ({args.per_class} per species; {wrong} misclassified), explaining
the predicted class, all rows from one run. Method parameters are the papers' (I-GOS and iGOS++: 28×28 masks,
15 iterations, 20 integration points; I-GOS with the authors' adaptive L1 schedule; RISE: 4,000 masks; IG: 50
Gauss-Legendre steps; Occlusion: 32-px windows, stride 16).{subset}

Columns: mean deletion AUC (lower is better) and insertion AUC (higher is better) under the `igos`
protocol (28×28 cells, blurred fill); the same protocol ranking each map's own grid (`igos-native`:
Grad-CAM's 7×7, the pixel maps' 224×224; for 28×28 maps it is the `igos` score); the `rise` protocol (pixels,
mean-colour deletion, mild-blur insertion); share of saliency mass on the parts that separate the species
from its look-alikes (segmentation masks of the synthetic gulls) and how often the peak falls within 15 px of
them; share of mass anywhere on the bird; {timed}.

{HEADER}
{chr(10).join(lines)}

Ranked best first. `igos` protocol, deletion: {ranked("del_igos", 1)}; insertion: {ranked("ins_igos", -1)}.
Own grid, deletion: {ranked("del", 1, True)}; insertion: {ranked("ins", -1, True)}.
`rise` protocol, deletion: {ranked("del_rise", 1)}; insertion: {ranked("ins_rise", -1)}.

iGOS++ with the authors' line search (noisy integrated sums, product of upsampled masks) against ours
(noise-free end points, product on the grid), `igos` protocol: deletion {pp_delta["del"]:+.3f},
insertion {pp_delta["ins"]:+.3f}; the two masks of an image agree with Spearman {pp_rho:.2f} on average
over {pp_n} images without a constant map (the issue measured 0.82, against 0.93 between two seeds of the
authors' code).

The papers' claims on this model and data: {claims("igos")} {claims("rise")}
See [explanations.md](explanations.md) for a discussion. {gpu_note(GPU_TARGETS)}

![iGOS++, I-GOS and Grad-CAM on the same test images](images/heatmaps.png)
""",
    )


def sag_section(m: schema.Manifest, run: Path, images_dir: Path, quiet_seconds: float | None) -> None:
    graphs = []
    for entry in m.images:
        e = entry.explanation("sag")
        if isinstance(e, schema.Sag):
            graphs.append((entry, e, schema.load_graph(run, e)))
    if not graphs:
        return
    n = len(graphs)
    forwards = statistics.fmean(g.forwards for _, _, g in graphs)
    calls = statistics.fmean(g.calls for _, _, g in graphs)
    seconds = quiet_seconds if quiet_seconds is not None else statistics.fmean(g.seconds for _, _, g in graphs)
    two = sum(len(g.roots) >= 2 for _, _, g in graphs) / n
    found_two = sum(len(g.all_roots) >= 2 for _, _, g in graphs) / n
    sizes = [len(r) for _, _, g in graphs for r in g.roots]
    over = sum(any(node.confidence > 1 for node in g.nodes) for _, _, g in graphs) / n
    hidden = sum(sum(not q.answer_in_diagram for q in g.questions) for _, _, g in graphs) / n
    picks = sorted(graphs, key=lambda t: (-len(t[2].roots), t[0].image_id))[:3]
    tiles = [Image.open(run / e.diagram_png).convert("RGB") for _, e, _ in picks]
    width = max(t.width for t in tiles)
    scale = 1200 / width
    tiles = [t.resize((round(t.width * scale), round(t.height * scale)), Image.Resampling.LANCZOS) for t in tiles]
    sheet = Image.new("RGB", (max(t.width for t in tiles), sum(t.height for t in tiles) + 20 * len(tiles)), "white")
    y = 0
    for t in tiles:
        sheet.paste(t, (0, y))
        y += t.height + 20
    sheet.save(images_dir / "sag.png", optimize=True)
    write_section(
        "sag",
        f"""
## Structured attention graphs (`make bench-explain`)

Same machine and model, {n} test images (4 per species); blurred baseline, 7×7 patches, beam 3 × 15 candidates,
threshold 0.9 × the full image's probability, CPU only.

| measure | value |
|---|---|
| masked images scored per image (forward passes, batched) | {forwards:.0f} |
| batched model calls per image | {calls:.0f} |
| seconds per image (search, graph and questions; quiet timing pass) | {seconds:.2f} |
| images with two or more diverse roots shown | {two:.0%} |
| images where the search found two or more roots (before the diversity filter) | {found_two:.0%} |
| mean root size (patches), shown roots | {statistics.fmean(sizes):.1f} (min {min(sizes)}, max {max(sizes)}) |
| images with a node above the full image's confidence | {over:.0%} |
| counterfactual questions per image whose answer the diagram does not print | {hidden:.1f} |

The original code logged 40–210 s per image (ImageNet, VGG-19, one image per forward, GPU unknown).
{gpu_note()}

![Three structured attention graphs](images/sag.png)
""",
    )


def xnn_section(m: schema.Manifest, run: Path, images_dir: Path) -> None:
    x = m.xnn
    if x is None:
        return
    names = {c.id: c.name for c in m.classes}
    faith = "\n".join(
        f"| {names[c.class_id]} | {c.rmse:.3f} | {c.logit_range:.2f} | {c.rmse / max(c.logit_range, 1e-9):.1%} "
        f"| {'yes' if c.accepted else 'no'} ({c.rounds}) |"
        for c in x.classes
    )
    parts = ["body", "head", "mantle", "wingtips", "bill", "eye", "legs", "background"]
    table = []
    for c in x.classes:
        for ci in c.concepts:
            if not ci.part_shares:
                continue
            cells = " | ".join(f"{ci.part_shares.get(p, 0):.2f}" for p in parts)
            table.append(
                f"| {names[c.class_id]} | {ci.concept} | {ci.mean_contribution:+.2f} | {cells} | {ci.suggested_name} |"
            )
    entries = [e for e in m.images if isinstance(e.explanation("xnn"), schema.Concepts)]
    sig = [len(e.explanation("xnn").significant) for e in entries]  # type: ignore[union-attr]
    card = entries[0].explanation("xnn") if entries else None
    if isinstance(card, schema.Concepts):
        Image.open(run / card.card).save(images_dir / "xnn_card.png", optimize=True)
    write_section(
        "xnn",
        f"""
## XNN concepts (`make bench-explain`)

Penultimate layer of the demo model ({x.feature_dim}-d), k = {x.k} concepts per class, trained on the training split;
heatmaps by {x.heatmap_method}.

Faithfulness on the test split: replacing every logit by its XNN's output gives **{x.accuracy_xnn:.1%}**
accuracy against the classifier's own **{x.accuracy_classifier:.1%}** (the two agree on {x.agreement:.1%} of images).
Significant concepts per image (90 % of the positive score): mean {statistics.fmean(sig) if sig else 0:.2f}.

| class | RMSE of the rebuilt logit | logit range | RMSE / range | accepted (rounds) |
|---|---|---|---|---|
{faith}

Concept × part: the share of each concept's heatmap mass on each part (training images where the
concept is strongest), and the name suggested from the dominant part.

| class | concept | mean contribution | {" | ".join(parts)} | suggested name |
|---|---|---|{"---|" * len(parts)}---|
{chr(10).join(table)}

![An XNN explanation card](images/xnn_card.png)
""",
    )


if __name__ == "__main__":
    main()
