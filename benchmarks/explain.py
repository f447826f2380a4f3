"""`make bench-explain`: every heatmap method on the demo model and ≥ 100 test images.

One table: deletion and insertion AUC under both protocols, localisation on the parts that
tell each species from its look-alikes, saliency mass on the bird, and seconds per image.
The run is resumable (it lives in var/bench/explain), so an interrupted benchmark continues.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from app.assets import manifest as schema
from benchmarks.report import DOC, machine, write_section
from fieldmark.demo import ensure_data, ensure_model
from pipeline.explain import HEATMAP_METHODS, ExplainConfig, explain, parse_methods
from pipeline.provenance import home

PER_CLASS = 13  # 8 species × 13 = 104 test images
BIRD = ("body", "head", "mantle", "wingtips", "bill", "eye", "legs")
COLUMNS = (
    "method",
    "del igos ↓",
    "ins igos ↑",
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


def main() -> None:
    root = home()
    data, model = ensure_data(root), ensure_model(root)
    run = root / "bench" / "explain"
    cfg = ExplainConfig(
        model=model,
        data=data,
        out=run,
        methods=parse_methods("igos,igospp,gradcam,ig,occlusion,rise"),
        per_class=PER_CLASS,
        device="cpu",
        explain_true=False,
    )
    from pipeline.cli import progress_bar

    with progress_bar("explaining") as update:
        m = explain(cfg, lambda i, n, phase: update(i, n, phase))
    stats = summarise(m)
    names = {
        "igos": "I-GOS",
        "igospp": "iGOS++",
        "gradcam": "Grad-CAM",
        "ig-blur": "IG (blur baseline)",
        "ig-black": "IG (black baseline)",
        "occlusion": "Occlusion",
        "rise": "RISE",
    }
    lines = []
    for method in HEATMAP_METHODS:
        s = stats[method]
        lines.append(
            f"| {names[method]} | {s['del_igos']:.3f} | {s['ins_igos']:.3f} | {s['del_rise']:.3f} | "
            f"{s['ins_rise']:.3f} | {s['disc_energy']:.2f} | {s['disc_hit']:.0%} | {s['bird']:.2f} | "
            f"{s['seconds']:.2f} |"
        )
    order_del = sorted(HEATMAP_METHODS, key=lambda k: stats[k]["del_igos"])
    order_ins = sorted(HEATMAP_METHODS, key=lambda k: -stats[k]["ins_igos"])
    order_del_rise = sorted(HEATMAP_METHODS, key=lambda k: stats[k]["del_rise"])
    order_ins_rise = sorted(HEATMAP_METHODS, key=lambda k: -stats[k]["ins_rise"])

    def ranked(order: list[str]) -> str:
        return " < ".join(names[k] for k in order) if order else ""

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

    images_dir = DOC.parent / "images"
    images_dir.mkdir(exist_ok=True)
    figure(m, run, images_dir / "heatmaps.png")
    wrong = sum(not e.correct for e in m.images)
    write_section(
        "explain",
        f"""
## Heatmap explanations (`make bench-explain`)

Machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads, CPU only.
Demo compact model, {len(m.images)} test images ({PER_CLASS} per species; {wrong} misclassified), explaining
the predicted class. Method parameters are the papers' (I-GOS and iGOS++: 28×28 masks, 15 iterations,
20 integration points; RISE: 4,000 masks; IG: 50 Gauss-Legendre steps; Occlusion: 32-px windows, stride 16).

Columns: mean deletion AUC (lower is better) and insertion AUC (higher is better) under the `igos`
protocol (28×28 cells, blurred fill) and the `rise` protocol (pixels, mean-colour deletion, mild-blur
insertion); share of saliency mass on the parts that separate the species from its look-alikes
(segmentation masks of the synthetic gulls) and how often the peak falls within 15 px of them;
share of mass anywhere on the bird; seconds per image for the method alone (metrics excluded).

{HEADER}
{chr(10).join(lines)}

Order by deletion AUC, `igos` protocol (best first): {ranked(order_del)}.
By insertion AUC, `igos` protocol: {ranked(order_ins)}.
Under the `rise` protocol: deletion {ranked(order_del_rise)}; insertion {ranked(order_ins_rise)}.

The papers' claims on this model and data: {claims("igos")} {claims("rise")}
See [explanations.md](explanations.md) for a discussion.

![iGOS++, I-GOS and Grad-CAM on the same test images](images/heatmaps.png)
""",
    )


if __name__ == "__main__":
    main()
