"""Asset files under opaque names: /asset/{token}. A name never says what the file shows, and
changes when the file does (app/studies/loader.py), so a browser keeps each one for a year."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.responses import Response

from app.web import StudiesDep

router = APIRouter()
CACHE = "private, max-age=31536000, immutable"
TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


@router.get("/asset/{token}")
def asset(token: str, studies: StudiesDep) -> Response:
    for study in studies.values():
        path = study.assets.by_token.get(token) if study.assets else None
        if path is not None:
            media = TYPES.get(path.suffix.lower())
            if media is None or not path.is_file():
                break
            # private: the participant's browser may keep it, shared caches may not
            return FileResponse(
                path,
                media_type=media,
                headers={"Cache-Control": CACHE},
                content_disposition_type="inline",
                filename="asset" + path.suffix,
            )
    return Response("No such file.", status_code=404, media_type="text/plain")
