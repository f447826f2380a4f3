"""Redraw what participants see from what a run stores, without the model.

The participants' drawings are made from stored data: SAG diagrams from the graph document and
the picture, the concept card's "same spot" notes from the concept maps. When their design
changes, `refresh` redraws the records an older renderer drew, so an existing run picks up the
new drawings on the next `fieldmark explain` (or `make demo`) without searching anything again.
`render.json` in the run says which version drew them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from app.assets.manifest import SagGraph
from pipeline.io import atomic_write_text
from pipeline.render import concepts
from pipeline.render import sag as draw

VERSIONS = {"sag": 4, "xnn": 2}  # bump a method's number when its participants' drawing changes
STATE = "render.json"


def sag_diagrams(root: Path, stem: str, graph: SagGraph, image: np.ndarray) -> dict[str, str]:
    """Write the desktop and phone diagrams of one graph; the record's fields that name them."""
    files = {"diagram_svg": f"{stem}.svg", "diagram_phone": f"{stem}-phone.svg"}
    atomic_write_text(root / files["diagram_svg"], draw.diagram_svg(graph, image))
    atomic_write_text(root / files["diagram_phone"], draw.diagram_svg(graph, image, narrow=True))
    return files


def mark_current(root: Path) -> None:
    """Records written from now on are drawn by the current renderer."""
    atomic_write_text(root / STATE, json.dumps(VERSIONS, indent=1))


def refresh(root: Path) -> int:
    """Redraw every record an older renderer drew; how many were redrawn."""
    state_path = root / STATE
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    redrawn = 0
    if state.get("sag") != VERSIONS["sag"]:
        for path in sorted((root / "records" / "sag").glob("*.json")):
            rec = json.loads(path.read_text())
            graph = SagGraph.model_validate_json((root / rec["graph"]).read_text(encoding="utf-8"))
            with Image.open(root / f"images/{graph.image_id}.png") as im:
                image = np.asarray(im.convert("RGB"))
            rec.update(sag_diagrams(root, rec["graph"].removesuffix(".json"), graph, image))
            atomic_write_text(path, json.dumps(rec, indent=1))
            redrawn += 1
    if state.get("xnn") != VERSIONS["xnn"]:
        for path in sorted((root / "records" / "xnn").glob("*.json")):
            rec = json.loads(path.read_text())
            maps = [np.load(root / m["raw"]) for m in rec["significant"]]
            for m, same in zip(rec["significant"], concepts.same_spots(maps), strict=True):
                m["same_spot_as"] = rec["significant"][same]["concept"] if same is not None else None
            atomic_write_text(path, json.dumps(rec, indent=1))
            redrawn += 1
    mark_current(root)
    return redrawn
