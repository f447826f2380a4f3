"""The server's own files (CSS, JS, icons) under content-versioned URLs, cached for a year.

Pages link `static_url("fieldmark.css")`, i.e. `/static/fieldmark.css?v=<hash of the file>`: a
changed file gets a new URL, so a browser may keep the one it has without asking again
(`immutable`). A request without the current version (an old page, a typed URL) still gets the
file, marked for revalidation. Responses are compressed by `compressed()` (gzip for text: HTML,
CSS, JS, SVG, JSON; pictures and downloads as they are).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Scope

ROOT = Path(__file__).resolve().parent.parent / "static"
YEAR = 365 * 24 * 3600
IMMUTABLE = f"public, max-age={YEAR}, immutable"
REVALIDATE = "no-cache"  # may be stored, but asked about (ETag, Last-Modified) before reuse


@functools.cache
def version(name: str) -> str:
    """The first 12 hex digits of the file's SHA-256 (files ship with the code: read once)."""
    return hashlib.sha256((ROOT / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"/static/{name}?v={version(name)}"


class VersionedFiles(StaticFiles):
    """StaticFiles whose answers say how long they may be kept: a year at the current version."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        name = Path(full_path).resolve().relative_to(ROOT.resolve()).as_posix()
        query = scope.get("query_string", b"").decode("latin-1")
        current = f"v={version(name)}" in query.split("&")
        response.headers["Cache-Control"] = IMMUTABLE if current else REVALIDATE
        return response


# Already compressed, or downloads whose streaming and size a researcher's tools rely on.
NOT_COMPRESSED = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "text/csv", "application/octet-stream")


def compressed(app: ASGIApp) -> ASGIApp:
    """Gzip at level 6 (most of level 9's saving at a fraction of its time) for responses over 500 bytes."""
    return GZipMiddleware(app, minimum_size=500, compresslevel=6, exclude_content_types=NOT_COMPRESSED)
