"""Fixtures for the study server: a small asset run written by the test factory (seconds, no
torch), the shipped study files, and a fresh migrated database per test — SQLite always,
PostgreSQL when FIELDMARK_TEST_DATABASE_URL points at a server (CI does). One slow test
(test_round_trip.py) builds a real run with the real pipeline instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from app.main import create_app
from app.migrate import upgrade
from app.settings import Settings
from app.studies.loader import LoadedStudy, load_all

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-secret-" + "x" * 40
PG = os.environ.get("FIELDMARK_TEST_DATABASE_URL")
CHEAP = {
    "igospp": {"iterations": 2, "steps": 2},
    "sag": {"order_iterations": 1, "order_steps": 2, "max_roots": 3, "patience": 1, "questions": 4},
    "xnn": {"epochs": 3, "pretrain_epochs": 1, "max_rounds": 1, "heatmap": {"iterations": 2, "steps": 2}},
}


def build_demo_run(root: Path) -> Path:
    """An asset run named 'demo' with every explanation the shipped studies use: real pipeline,
    small data (four species, two of them look-alikes, 112 px), a quickly trained model that is
    right and wrong often enough for every block, cheap method settings."""
    import csv

    from pipeline.data.preview import field_mark_guide
    from pipeline.data.species import BY_ID
    from pipeline.explain import ExplainConfig, explain
    from pipeline.models.run import predict_table, train_model
    from pipeline.models.train import TrainConfig
    from tests.conftest import make_synth

    species = (61, 62, 63, 64)  # Heermann's, Herring, Ivory, Ring-billed
    ds = make_synth(root / "data", per_class=48, size=112, species=species, seed=5, train_fraction=0.5)
    model = root / "model.pt"
    train_model(ds.root, "compact", model, TrainConfig(epochs=30, batch_size=8, lr=3e-3, seed=0), "cpu")
    predict_table(model, ds.root, root / "pred.csv", "test", "cpu")
    rows = list(csv.DictReader((root / "pred.csv").open()))
    right = [int(r["image_id"]) for r in rows if r["correct"] == "1"][:60]
    wrong = [int(r["image_id"]) for r in rows if r["correct"] == "0"][:14]
    assert len(right) >= 30 and len(wrong) >= 10, (len(right), len(wrong))
    run = root / "assets" / "demo"
    explain(
        ExplainConfig(
            model=model,
            data=ds.root,
            out=run,
            methods=["igospp", "sag", "xnn", "examples"],
            images=right + wrong,
            params=CHEAP,
            protocols=("igos",),
            device="cpu",
            explain_true=False,
            max_batch=128,
        )
    )
    (run / "guides").mkdir(exist_ok=True)
    for cid in range(59, 67):  # the guides cover all eight species, whatever the data
        sp = BY_ID[cid]
        field_mark_guide(sp, size=160).save(run / "guides" / f"guide_{cid:03d}_{sp.name}.png")
    return root / "assets"


@pytest.fixture(scope="session")
def assets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The factory's run 'demo' (tests/factory.py): every asset the shipped studies need."""
    from tests.factory import build_run

    return build_run(tmp_path_factory.mktemp("factory") / "assets")


@pytest.fixture(scope="session")
def pipeline_assets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run built by the real pipeline (minutes: it trains a model). FIELDMARK_TEST_RUN_CACHE,
    a developer's shortcut unset in CI, reuses one built earlier."""
    cache = os.environ.get("FIELDMARK_TEST_RUN_CACHE")
    if cache and (Path(cache) / "assets" / "demo" / "manifest.json").is_file():
        return Path(cache) / "assets"
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True)
        return build_demo_run(Path(cache))
    return build_demo_run(tmp_path_factory.mktemp("demo-run"))


@pytest.fixture(scope="session")
def studies(assets_dir: Path) -> dict[str, LoadedStudy]:
    return load_all(REPO / "studies", assets_dir, SECRET)


# Every shipped study, read from studies/ (a new file there is tested without naming it here).
SHIPPED_IDS = sorted(yaml.safe_load(p.read_text(encoding="utf-8"))["id"] for p in (REPO / "studies").glob("*.yaml"))


def _fresh_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        c.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def migrated_database(kind: str, home: Path) -> str:
    """An empty, migrated database: a SQLite file under `home`, or the PostgreSQL test database
    wiped (skips when none is configured)."""
    if kind == "sqlite":
        url = f"sqlite:///{home / 'fieldmark.db'}"
    else:
        if not PG:
            pytest.skip("FIELDMARK_TEST_DATABASE_URL is not set")
        url = PG
        _fresh_postgres(url)
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_database(request.param, tmp_path)


def server_settings(home: Path, db_url: str, assets_dir: Path) -> Settings:
    return Settings(
        environment="test",
        home=home,
        database_url=db_url,
        studies_dir=REPO / "studies",
        assets_dir=assets_dir,
        secret_key=SECRET,
    )


@pytest.fixture
def settings(tmp_path: Path, db_url: str, assets_dir: Path) -> Settings:
    return server_settings(tmp_path, db_url, assets_dir)


@pytest.fixture
def app(settings: Settings, studies: dict[str, LoadedStudy]):  # type: ignore[no-untyped-def]
    application = create_app(settings, studies)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, follow_redirects=False) as c:
        yield c


def copy_studies(dest: Path) -> Path:
    shutil.copytree(REPO / "studies", dest)
    return dest
