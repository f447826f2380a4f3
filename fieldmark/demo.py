"""`fieldmark demo`: build everything the shipped studies need, then serve them.

Each step checks its output before doing work, so a second run starts serving in seconds.
Benchmarks reuse `ensure_data` and `ensure_model`, so they measure the same data and model.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from pipeline.cli import progress_bar

if TYPE_CHECKING:
    from app.assets.manifest import Manifest
    from app.settings import Settings
    from pipeline.explain import ExplainConfig
    from pipeline.explain.work import Progress

console = Console(stderr=True)

PER_CLASS = 250  # 150 training and 100 test images per species
SEED = 0
RUN = "demo"  # the asset run the shipped studies name
CORRECT_PER_CLASS, WRONG_PER_CLASS = 4, 2  # the images the studies draw their items from
DEMO_METHODS = ["igospp", "sag", "xnn", "examples"]


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


def ensure_reports(home: Path) -> Path:
    """Evaluation reports and the predictions table, redone only for a new model."""
    from pipeline.models.run import evaluate_model, predict_table
    from pipeline.provenance import file_hash

    model, data = model_path(home), data_path(home)
    reports = home / "reports" / "gulls-compact"
    metrics = reports / "metrics.json"
    if not metrics.is_file() or json.loads(metrics.read_text()).get("model_hash") != file_hash(model):
        evaluate_model(model, data, reports, "test", "auto")
        predict_table(model, data, reports / "predictions.csv", "test", "auto")
    s = json.loads(metrics.read_text())
    console.print(f"test accuracy {s['accuracy']:.1%} on {s['n']} images; commonest confusions:")
    for c in s["top_confusions"][:4]:
        console.print(f"  {c['count']:3d} × {c['true']} taken for {c['predicted']}")
    return reports


def study_images(predictions: Path) -> list[int]:
    """The test images the demo explains: per species the first few the model gets right and a
    couple it gets wrong, so every shipped study finds right and wrong items to show."""
    rows = list(csv.DictReader(predictions.open()))
    chosen: list[int] = []
    for cid in sorted({int(r["true_class_id"]) for r in rows}):
        mine = [r for r in rows if int(r["true_class_id"]) == cid]
        chosen += [int(r["image_id"]) for r in mine if r["correct"] == "1"][:CORRECT_PER_CLASS]
        chosen += [int(r["image_id"]) for r in mine if r["correct"] == "0"][:WRONG_PER_CLASS]
    return chosen


def ensure_assets(home: Path, reports: Path) -> Path:
    """The explanation assets of exactly the images the studies use (resumable), and the guides."""
    from pipeline.data.preview import field_mark_guide
    from pipeline.data.species import SPECIES
    from pipeline.explain import ExplainConfig

    run = home / "assets" / RUN
    cfg = ExplainConfig(
        model=model_path(home),
        data=data_path(home),
        out=run,
        methods=DEMO_METHODS,
        images=study_images(reports / "predictions.csv"),
        explain_true=False,
        protocols=("igos",),
        # Heatmaps are the demo's slowest stage on a 2-core CPU. Fewer integration points (the
        # paper's 20 stay the default of `fieldmark explain` and the benchmark), fewer iterations
        # for the concept thumbnails and three gallery images per concept keep the first
        # `make demo` under 25 minutes.
        params={
            "igospp": {"steps": 10},
            "xnn": {"gallery": 3, "heatmap": {"steps": 5, "iterations": 10}},
        },
    )
    with progress_bar("explaining") as update:
        manifest = explain_or_rebuild(cfg, lambda i, n, phase: update(i, n, phase))
    guides = run / "guides"
    guides.mkdir(exist_ok=True)
    for sp in SPECIES:
        path = guides / f"guide_{sp.cub_id:03d}_{sp.name}.png"
        if not path.is_file() or _landscape(path):  # a guide of the older layout (with the CUB id): redrawn
            field_mark_guide(sp).save(path)
    console.print(f"{run}: {len(manifest.images)} images explained with {', '.join(DEMO_METHODS)}")
    return run


def explain_or_rebuild(cfg: ExplainConfig, progress: Progress | None = None) -> Manifest:
    """The demo's run is a cache: one made by older code or settings is set aside (not deleted) and
    made again, where `fieldmark explain` refuses to mix it with new work."""
    from datetime import datetime

    from pipeline.errors import StaleRun
    from pipeline.explain import explain

    try:
        return explain(cfg, progress)
    except StaleRun as exc:
        aside = cfg.out.with_name(f"{cfg.out.name}.old-{datetime.now():%Y%m%d-%H%M%S}")
        cfg.out.rename(aside)
        console.print(f"{exc}\nThe demo makes its explanations again; the old run is kept in {aside}.")
        return explain(cfg, progress)


def _landscape(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as im:
        return im.width > im.height


DEMO_RESEARCHER = "demo@fieldmark.local"


def _demo_researcher(settings: Settings) -> None:
    """A researcher login for the demo: created (and its password printed) once."""
    from sqlalchemy import select

    from app.db import make_engine, session_factory, transaction
    from app.models import Researcher
    from app.services.accounts import add_researcher

    engine = make_engine(settings.db_url)
    with transaction(session_factory(engine)) as session:
        if session.scalar(select(Researcher).where(Researcher.email == DEMO_RESEARCHER)) is None:
            _, password = add_researcher(session, DEMO_RESEARCHER, None)
            console.print(
                f"[bold]researcher login[/bold] {settings.base_url}/r/login  "
                f"e-mail {DEMO_RESEARCHER}  password {password}  (shown once)"
            )
        else:
            console.print(
                f"researcher login: {settings.base_url}/r/login as {DEMO_RESEARCHER} "
                "(password printed by the first `make demo`; `fieldmark researcher add` makes another)"
            )
    engine.dispose()


def keep_secret(home: Path) -> str:
    """The demo's secret key: random, made once and kept in `home`/secret_key (readable by its
    owner only), so that logins survive a restart and nobody can forge one with a known default."""
    import secrets

    path = home / "secret_key"
    if path.is_file() and len(key := path.read_text(encoding="utf-8").strip()) >= 32:
        return key
    home.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(key + "\n", encoding="utf-8")
    tmp.replace(path)
    return key


def run_demo(home: Path, serve: bool = True) -> None:
    import os

    console.rule("1/5 field-mark gulls")
    data = ensure_data(home)
    console.rule("2/5 classifier")
    ensure_model(home)
    console.rule("3/5 evaluation and predictions")
    reports = ensure_reports(home)
    console.rule("4/5 explanations for the shipped studies")
    ensure_assets(home, reports)
    preview = data / "preview"
    if not (preview / "contact_sheet.png").is_file():
        from pipeline.data.cub import read_dataset
        from pipeline.data.preview import write_previews

        write_previews(read_dataset(data), preview)
    console.rule("5/5 study server")
    os.environ.setdefault("FIELDMARK_HOME", str(home))
    if "FIELDMARK_SECRET_KEY" not in os.environ:  # before the settings are first read
        os.environ["FIELDMARK_SECRET_KEY"] = keep_secret(home)
    from app.migrate import upgrade
    from app.settings import get_settings
    from app.studies.loader import load_all

    settings = get_settings()
    upgrade(settings.db_url)
    studies = load_all(settings.studies_dir, settings.assets_root, settings.secret_key)
    _demo_researcher(settings)
    for sid, study in studies.items():
        console.print(f"[bold]{study.spec.title}[/bold]\n  participant link: {settings.base_url}/s/{sid}")
    if serve:
        from app.cli import serve as serve_command

        console.print(f"\nServing on {settings.base_url} (Ctrl-C to stop)")
        serve_command(upgrade=False)
