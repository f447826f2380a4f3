"""`fieldmark demo`: build everything the demo needs, reusing whatever a previous run built.

Each step checks its output before doing work, so a second run takes seconds.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from pipeline.cli import progress_bar

console = Console(stderr=True)

PER_CLASS = 250  # 150 training and 100 test images per species
SEED = 0


def run_demo(home: Path) -> None:
    from pipeline.data import synth
    from pipeline.data.cub import dataset_hash, read_dataset
    from pipeline.data.preview import write_previews
    from pipeline.data.species import SPECIES
    from pipeline.models import checkpoint
    from pipeline.models.run import evaluate_model, predict_table, train_model
    from pipeline.models.train import TrainConfig

    data = home / "data" / "gulls"
    model = home / "models" / "gulls-compact.pt"
    reports = home / "reports" / "gulls-compact"

    console.rule("1/4 field-mark gulls")
    settings = synth.Settings(PER_CLASS, 224, SEED, tuple(s.cub_id for s in SPECIES), 0.6, None)
    with progress_bar("synthesising gulls") as update:
        made = synth.synthesise(data, settings, synth.default_workers(), update)
    ds = read_dataset(data)
    console.print(f"{data}: {len(ds.images)} images ({made} rendered now)")

    console.rule("2/4 classifier")
    current = dataset_hash(ds)
    if model.is_file() and checkpoint.load(model).meta.get("data_hash") == current:
        console.print(f"{model}: up to date")
    else:
        with progress_bar("loading images") as update:
            train_model(
                data,
                "compact",
                model,
                TrainConfig(seed=SEED),
                "auto",
                None,
                False,
                lambda i, n: update(i, n, "loading images"),
                lambda i, n, _s: update(i, n, "training"),
            )
    meta = checkpoint.load(model).meta

    console.rule("3/4 evaluation and predictions")
    s = evaluate_model(model, data, reports, "test", "auto")
    predict_table(model, data, reports / "predictions.csv", "all", "auto")
    console.print(
        f"test accuracy {s['accuracy']:.1%} on {s['n']} images (trained in "
        f"{meta['metrics']['train_seconds']:.0f} s); commonest confusions:"
    )
    for c in s["top_confusions"][:4]:
        console.print(f"  {c['count']:3d} × {c['true']} taken for {c['predicted']}")

    console.rule("4/4 previews")
    sheet = data / "preview" / "contact_sheet.png"
    if not sheet.is_file():
        write_previews(ds, data / "preview")
    console.print(f"contact sheet and field-mark guides in {data / 'preview'}")
    console.print(f"confusion matrix: {reports / 'confusion_matrix.png'}")
    console.print(f"predictions table: {reports / 'predictions.csv'}")
    console.print("\nNext: explanations and the study server are on their way; see the README's roadmap.")
