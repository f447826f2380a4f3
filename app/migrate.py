"""Alembic, driven from Python: `fieldmark db upgrade`, the server's start and the tests use it."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from app.web import ROOT


def config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(config(url), revision)


def check(url: str) -> None:
    """Raise if the models and the migrations disagree (alembic check)."""
    command.check(config(url))
