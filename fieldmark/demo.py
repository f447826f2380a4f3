"""`fieldmark demo`: build everything the demo needs, reusing whatever a previous run built.

Each step checks its output before doing work, so a second run takes seconds. Benchmarks
reuse `ensure_data` and `ensure_model`, so they measure the same data and model.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from pipeline.cli import progress_bar

console = Console(stderr=True)

PER_CLASS = 250  # 150 training and 100 test images per species
SEED = 0


def data_path(home: Path) -> Path:
    return home / "data" / "gulls"


def model_path(home: Path) -> Path:
    return home / "models" / "gulls-compact.pt"


def ensure_data(home: Path) -> Path:
    """The demo's synthetic gulls (rendered once; a rerun only checks them)."""
    from pipeline.data import synth
    from pipeline.data.species import SPECIES

    data = data_path(home)
    settings = synth.Settings(PER_CLASS, 224, SEED, tuple(s.cub_id for s in SPECIES), 0.6, None)
    with progress_bar("synthesising gulls") as update:
        made = synth.synthesise(data, settings, synth.default_workers(), update)
    console.print(f"{data}: {PER_CLASS * len(SPECIES)} images ({made} rendered now)")
    return data


def ensure_model(home: Path) -> Path:
    """The demo's compact classifier, retrained only if the data changed."""
    from pipeline.data.cub import dataset_hash, read_dataset
    from pipeline.models import checkpoint
    from pipeline.models.run import train_model
    from pipeline.models.train import TrainConfig

    data, model = data_path(home), model_path(home)
    current = dataset_hash(read_dataset(data))
    if model.is_file() and checkpoint.load(model).meta.get("data_hash") == current:
        console.print(f"{model}: up to date")
        return model
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
    return model


def run_demo(home: Path) -> None:
    from pipeline.data.cub import read_dataset
    from pipeline.data.preview import write_previews
    from pipeline.models import checkpoint
    from pipeline.models.run import evaluate_model, predict_table

    reports = home / "reports" / "gulls-compact"
    console.rule("1/4 field-mark gulls")
    data = ensure_data(home)
    console.rule("2/4 classifier")
    model = ensure_model(home)
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
    if not (data / "preview" / "contact_sheet.png").is_file():
        write_previews(read_dataset(data), data / "preview")
    console.print(f"contact sheet and field-mark guides in {data / 'preview'}")
    console.print(f"confusion matrix: {reports / 'confusion_matrix.png'}")
    console.print(f"predictions table: {reports / 'predictions.csv'}")
    console.print("\nNext: explanations and the study server are on their way; see the README's roadmap.")
