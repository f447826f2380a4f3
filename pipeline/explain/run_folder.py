"""The run folder of `fieldmark explain`: where every file goes, the settings it was made with.

settings.json                       model, data, seed, transform, every method's parameters
images.json                         predictions per image (the manifest's image entries)
images/ID.png                       the picture as the model saw it
records/METHOD/ID-TARGET.json       one finished explanation (its manifest record): a rerun skips it
explanations/METHOD/ID-TARGET...    its assets (see each method's `writes`)
features/SPLIT.npz                  penultimate features and logits, shared by examples and XNN
xnn/                                trained concept autoencoders, report, galleries
manifest.json                       written last, from the records
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline import io
from pipeline.errors import PipelineError, StaleRun

SETTINGS_KEYS = ("model_hash", "data_hash", "seed", "resolution", "transform")  # must match to add to a run

# Parameters added after runs existed, with the behaviour those runs had: a run made before a
# parameter existed matches new settings only if the new value keeps that behaviour.
LEGACY_PARAMS: dict[str, object] = {"l1_schedule": False, "line_search": "end-point", "children": "salient"}


class Run:
    """Paths and atomic writes inside one run folder (every `rel` is relative to the root)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def image(self, image_id: int) -> str:
        return f"images/{image_id}.png"

    def record(self, method: str, image_id: int, target: str) -> Path:
        return self.root / "records" / method / f"{image_id}-{target}.json"

    def stem(self, method: str, image_id: int, target: str) -> str:
        return f"explanations/{method}/{image_id}-{target}"

    def done(self, method: str, image_id: int, target: str) -> bool:
        return self.record(method, image_id, target).is_file()

    def has(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def write_png(self, rel: str, img: Image.Image) -> None:
        io.write_png(self.root / rel, img)

    def write_npy(self, rel: str, arr: np.ndarray) -> None:
        io.write_npy(self.root / rel, arr)

    def write_text(self, rel: str, text: str) -> None:
        io.atomic_write_text(self.root / rel, text)

    def write_json(self, path: Path, obj: Any) -> None:
        io.write_json(path, obj)

    def write_picture(self, image_id: int, rgb: np.ndarray) -> None:
        """The picture as the model saw it (H×W×3 uint8), once per image."""
        if not self.has(self.image(image_id)):
            self.write_png(self.image(image_id), Image.fromarray(rgb))

    def entries(self) -> dict[int, dict[str, Any]]:
        path = self.root / "images.json"
        return {int(k): v for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}

    def write_entries(self, entries: dict[int, dict[str, Any]]) -> None:
        self.write_json(self.root / "images.json", entries)

    def settings(self) -> dict[str, Any]:
        return json.loads((self.root / "settings.json").read_text())

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Refuse to mix assets made from another model, data set, seed or parameters into one run."""
        path = self.root / "settings.json"
        if path.is_file():
            old = json.loads(path.read_text())
            for key in SETTINGS_KEYS:
                if old.get(key) != settings.get(key):
                    raise StaleRun(
                        f"{self.root} was made with another {key} ({old.get(key)!r}); "
                        "give a new --out folder for a new run"
                    )
            for name, params in settings["methods"].items():
                if name in old["methods"] and {**LEGACY_PARAMS, **old["methods"][name]} != {**LEGACY_PARAMS, **params}:
                    raise StaleRun(f"{self.root} has {name} assets made with other parameters; give a new --out folder")
            settings = {**settings, "methods": {**old["methods"], **settings["methods"]}}
        elif self.root.exists() and any(self.root.iterdir()):
            raise PipelineError(f"{self.root} exists and is not an asset run; give an empty or new --out folder")
        self.write_json(path, settings)
