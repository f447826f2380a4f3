"""Atomic file writes, the one way every pipeline command writes a file.

A write goes to a temporary file in the same folder and is renamed into place, so a reader (or
a rerun after an interruption) never sees half a file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1))


def write_png(path: Path, img: Image.Image) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    atomic_write_bytes(path, buf.getvalue())


def write_npy(path: Path, arr: np.ndarray) -> None:
    """A float32 array (every raw map the pipeline stores is float32)."""
    buf = io.BytesIO()
    np.save(buf, arr.astype(np.float32))
    atomic_write_bytes(path, buf.getvalue())


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(path, buf.getvalue())
