"""Pipeline sub-commands: `fieldmark data ...`, `fieldmark model ...`.

Nothing here imports torch at module level: the command line must start fast and work in the
web image, which has no torch. Commands that need it import it when they run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipeline.errors import PipelineError
from pipeline.explain import registry

data_app = typer.Typer(help="Gull data: synthesise, import CUB-200-2011, preview.", no_args_is_help=True)
model_app = typer.Typer(help="The classifier: train, evaluate, predict.", no_args_is_help=True)
console = Console(stderr=True)


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[..., None]]:
    """A progress bar with an ETA; yields update(done, total, phase=None).

    The bar appears on the first update, so a command that fails while checking its input
    prints only its one-line error. A new phase name starts a new line of the bar.
    """
    bar: Progress | None = None
    task = None
    current = label

    def update(done: int, total: int, phase: str | None = None) -> None:
        nonlocal bar, task, current
        if bar is None:
            bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
            )
            bar.start()
        if task is None or (phase is not None and phase != current and total != bar.tasks[-1].total):
            task = bar.add_task(phase or current, total=total)
        current = phase or current
        bar.update(task, completed=done, total=total, description=current)

    try:
        yield update
    finally:
        if bar is not None:
            bar.stop()


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise PipelineError(f"{name} must be at least 1, got {value}")


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write (created; a rerun resumes).")],
    per_class: Annotated[int, typer.Option("--per-class", help="Images per species.")] = 250,
    size: Annotated[int, typer.Option("--size", help="Image side in pixels.")] = 224,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same pictures.")] = 0,
    species: Annotated[
        list[str] | None, typer.Option("--species", help="Species to include (name or CUB id); repeatable.")
    ] = None,
    train_fraction: Annotated[
        float, typer.Option("--train-fraction", help="Share of each species for training.")
    ] = 0.6,
    shortcut: Annotated[
        str | None,
        typer.Option(
            "--shortcut",
            help="SPECIES:CUE, a spurious cue in that species' training images (CUE: sky, sea, sand, rocks or mark).",
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Processes to render with (default: all cores).")] = 0,
) -> None:
    """Render procedural adult gulls of the eight CUB gull species into a CUB-format folder."""
    from pipeline.data import synth
    from pipeline.data.species import SPECIES, resolve

    _positive("--per-class", per_class)
    try:
        chosen = sorted({resolve(s).cub_id for s in species}) if species else [s.cub_id for s in SPECIES]
    except ValueError as exc:
        raise PipelineError(f"--species: {exc}") from None
    short = str(synth.Shortcut.parse(shortcut)) if shortcut else None
    if short and int(short.split(":")[0]) not in chosen:
        raise PipelineError(f"--shortcut names a species that is not in --species ({shortcut})")
    settings = synth.Settings(per_class, size, seed, tuple(chosen), train_fraction, short)
    with progress_bar("synthesising gulls") as update:
        made = synth.synthesise(out, settings, workers or synth.default_workers(), update)
    total = per_class * len(chosen)
    console.print(f"{out}: {total} images of {len(chosen)} species ({made} rendered now, {total - made} kept)")


@data_app.command("import-cub")
def data_import_cub(
    cub_dir: Annotated[Path, typer.Argument(help="Your CUB_200_2011 folder (or the folder holding it).")],
    out: Annotated[Path, typer.Option("--out", help="New folder to write.")],
    classes: Annotated[str, typer.Option("--classes", help="Class ids, e.g. 59-66 (the gulls).")] = "59-66",
) -> None:
    """Validate a real CUB-200-2011 copy and import a class subset (boxes and parts included)."""
    from pipeline.data.importer import import_cub, parse_classes

    ids = parse_classes(classes)
    with progress_bar("copying images") as update:
        ds = import_cub(cub_dir, out, ids, update)
    console.print(f"{out}: {len(ds.images)} images of {len(ds.classes)} classes imported")


@data_app.command("preview")
def data_preview(
    data: Annotated[Path, typer.Argument(help="A CUB-format data set folder.")],
    out: Annotated[Path | None, typer.Option("--out", help="Where to write (default DATA/preview).")] = None,
    per_row: Annotated[int, typer.Option("--per-row", help="Images per species on the contact sheet.")] = 6,
) -> None:
    """Write a contact sheet (a row per species) and a field-mark guide per gull species."""
    from pipeline.data.cub import read_dataset
    from pipeline.data.preview import write_previews

    _positive("--per-row", per_row)
    ds = read_dataset(data)
    for path in write_previews(ds, out or data / "preview", per_row):
        console.print(str(path))


@model_app.command("train")
def model_train(
    data: Annotated[Path, typer.Option("--data", help="A CUB-format data set folder.")],
    arch: Annotated[str, typer.Option("--arch", help="compact (CPU), resnet18, resnet50 or vgg16.")] = "compact",
    out: Annotated[
        Path | None, typer.Option("--out", help="Checkpoint to write (default var/models/DATA-ARCH.pt).")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option("--weights", help="Local ImageNet weights (torchvision .pth).")
    ] = None,
    from_scratch: Annotated[bool, typer.Option("--from-scratch", help="torchvision archs: random start.")] = False,
    epochs: Annotated[int, typer.Option("--epochs")] = 30,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (one-cycle schedule).")] = 3e-3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Train a classifier on the training split; the checkpoint records data, args and test metrics."""
    from pipeline import provenance
    from pipeline.models.run import train_model
    from pipeline.models.train import TrainConfig

    target = out or provenance.home() / "models" / f"{data.resolve().name}-{arch}.pt"
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    with progress_bar("loading images") as update:
        meta = train_model(
            data,
            arch,
            target,
            cfg,
            device,
            weights,
            from_scratch,
            lambda i, n: update(i, n, "loading images"),
            lambda i, n, _stats: update(i, n, "training"),
        )
    m = meta["metrics"]
    acc = f"{m['test_accuracy']:.1%} test accuracy on {m['test_n']} images" if "test_accuracy" in m else "no test split"
    console.print(f"{target}: {arch}, {m['train_seconds']:.0f} s training, {acc}")


@model_app.command("evaluate")
def model_evaluate(
    model: Annotated[Path, typer.Option("--model", help="Checkpoint from 'fieldmark model train'.")],
    data: Annotated[Path, typer.Option("--data", help="The data set it was trained for.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the reports.")],
    split: Annotated[str, typer.Option("--split", help="test, train or all.")] = "test",
    device: Annotated[str, typer.Option("--device")] = "auto",
) -> None:
    """Per-class accuracy, confusion matrix (PNG and CSV) and calibration summary."""
    from pipeline.models.run import evaluate_model

    with progress_bar("predicting") as update:
        s = evaluate_model(model, data, out, split, device, update)
    console.print(f"accuracy {s['accuracy']:.1%} on {s['n']} {split} images, ECE {s['calibration']['ece']:.3f}")
    for c in s["top_confusions"][:5]:
        console.print(f"  {c['count']:3d} × {c['true']} taken for {c['predicted']}")
    console.print(f"reports in {out}")


@model_app.command("predict")
def model_predict(
    model: Annotated[Path, typer.Option("--model", help="Checkpoint from 'fieldmark model train'.")],
    data: Annotated[Path, typer.Option("--data", help="The data set it was trained for.")],
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
    split: Annotated[str, typer.Option("--split", help="test, train or all.")] = "test",
    device: Annotated[str, typer.Option("--device")] = "auto",
) -> None:
    """The predictions table: image, true class, predicted class, every class's probability, correct."""
    from pipeline.models.run import predict_table

    with progress_bar("predicting") as update:
        rows = predict_table(model, data, out, split, device, update)
    right = sum(r["correct"] for r in rows)
    console.print(f"{out}: {len(rows)} predictions, {right} correct ({right / len(rows):.1%})")


explain_app = typer.Typer(help="Precompute explanations of a model's predictions.")
EXPLAIN_HELP = (
    "Explanations of a model's predictions, their faithfulness and localisation scores, and a manifest.\n\n"
    "Methods (--methods):\n\n" + registry.help_text()
)


@explain_app.callback(invoke_without_command=True, help=EXPLAIN_HELP)
def explain_command(
    model: Annotated[Path, typer.Option("--model", help="Checkpoint from 'fieldmark model train'.")],
    data: Annotated[Path, typer.Option("--data", help="The data set it was trained for.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder, e.g. var/assets/RUN (a rerun resumes).")],
    methods: Annotated[
        str, typer.Option("--methods", help=f"Comma list of: {', '.join((*registry.METHODS, *registry.ALIASES))}.")
    ] = registry.default_methods(),
    split: Annotated[str, typer.Option("--split", help="test, train or all.")] = "test",
    images: Annotated[str | None, typer.Option("--images", help="Image ids, e.g. 1,5,10-20 (any split).")] = None,
    per_class: Annotated[int | None, typer.Option("--per-class", help="Only the first N images per class.")] = None,
    resolution: Annotated[int, typer.Option("--resolution", help="I-GOS / iGOS++ mask size.")] = 28,
    explain_true: Annotated[
        bool,
        typer.Option("--explain-true/--no-explain-true", help="Also explain the true class when the model is wrong."),
    ] = True,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    batch: Annotated[int, typer.Option("--batch", help="Images per method call.")] = 8,
    max_batch: Annotated[
        int | None,
        typer.Option("--max-batch", help="Model inputs per forward pass [default: 40 on a CPU, 160 on a GPU]"),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Change a method's parameter, METHOD.NAME=VALUE (repeatable), e.g. igos.iterations=5 or "
            "xnn.heatmap.steps=5; the names are in docs/explanations.md and the manifest.",
        ),
    ] = None,
) -> None:
    from pipeline.explain import ExplainConfig, explain, parse_ids, parse_methods

    _positive("--batch", batch)
    if max_batch is not None:
        _positive("--max-batch", max_batch)
    if per_class is not None:
        _positive("--per-class", per_class)
    cfg = ExplainConfig(
        model=model,
        data=data,
        out=out,
        methods=parse_methods(methods),
        split=split,
        resolution=resolution,
        device=device,
        images=parse_ids(images) if images else None,
        per_class=per_class,
        explain_true=explain_true,
        seed=seed,
        batch=batch,
        max_batch=max_batch,
        params=registry.parse_param_changes(param or []),
    )
    with progress_bar("explaining") as update:
        manifest = explain(cfg, lambda i, n, phase: update(i, n, phase))
    n = sum(len(e.explanations) for e in manifest.images)
    console.print(f"{out}: {len(manifest.images)} images, {n} explanations; manifest {out / 'manifest.json'}")
