"""Shared fixtures. Data sets are built once per session, small, and by the real code paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.data import synth
from pipeline.data.cub import Dataset, read_dataset


def make_synth(
    root: Path,
    per_class: int = 4,
    size: int = 96,
    species: tuple[int, ...] = (59, 62, 64, 66),
    seed: int = 3,
    shortcut: str | None = None,
    train_fraction: float = 0.5,
) -> Dataset:
    settings = synth.Settings(per_class, size, seed, species, train_fraction, shortcut)
    synth.synthesise(root, settings, workers=1)
    return read_dataset(root)


@pytest.fixture(scope="session")
def tiny_gulls(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Four species × four images at 96 px: enough to exercise every file of the layout."""
    return make_synth(tmp_path_factory.mktemp("tiny") / "gulls")


@pytest.fixture(scope="session")
def two_species(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Ivory (all white) against Heermann's (dark): a classifier must separate these easily."""
    return make_synth(
        tmp_path_factory.mktemp("two") / "gulls", per_class=24, size=112, species=(61, 63), train_fraction=0.5
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_gulls: Dataset) -> Path:
    """A compact classifier trained for two epochs on `tiny_gulls`: real, and often wrong."""
    from pipeline.models.run import train_model
    from pipeline.models.train import TrainConfig

    path = tmp_path_factory.mktemp("tiny-model") / "tiny.pt"
    train_model(tiny_gulls.root, "compact", path, TrainConfig(epochs=2, batch_size=4, seed=0), "cpu")
    return path
