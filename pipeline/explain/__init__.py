"""`fieldmark explain`: turn a model and a data set into a run of explanation assets.

The run folder (run_folder.py) holds, per image, the picture as the model saw it and, per
method, its assets and a record; `manifest.json` (manifest.py, validated by the app's schema)
lists it all with provenance. Each method is one spec in the registry (registry.py, the
built-in ones in methods.py); a stage module runs each kind of work: heatmaps.py (every heatmap
method, in batches of images), sag.py, examples.py, xnn.py. runner.py ties them together.

Work is resumable: each finished (image, method, target) leaves a record, so a rerun skips it.
Every file is written atomically (pipeline/io.py).

Importing this package imports no torch (the command line reads the registry for its help);
`explain` imports the runner when it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.explain import methods as _builtin  # noqa: F401  (registers the built-in methods)
from pipeline.explain.config import ExplainConfig, parse_ids
from pipeline.explain.methods import HEATMAP_METHODS
from pipeline.explain.registry import METHODS, Method, parse_methods, register

if TYPE_CHECKING:
    from app.assets.manifest import Manifest
    from pipeline.explain.work import Progress

__all__ = ["HEATMAP_METHODS", "METHODS", "ExplainConfig", "Method", "explain", "parse_ids", "parse_methods", "register"]


def explain(cfg: ExplainConfig, progress: Progress | None = None) -> Manifest:
    """Run every requested method on the selected images and write the run and its manifest."""
    from pipeline.explain.runner import explain as run

    return run(cfg, progress)
