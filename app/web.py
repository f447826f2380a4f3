"""Shared pieces of the web layer: templates, the request's database session, security headers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

ROOT = Path(__file__).resolve().parent.parent
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str) -> Markup:
    """Study-file markdown to HTML; raw HTML in the study file is escaped, not rendered."""
    return Markup(_md.render(text or ""))  # markdown-it escapes: html is off


templates = Jinja2Templates(directory=str(ROOT / "templates"))
templates.env.filters["markdown"] = markdown


def get_session(request: Request) -> Iterator[Session]:
    """A session per request; handlers commit what they mean to keep, anything else is rolled back."""
    session: Session = request.app.state.sessions()
    try:
        yield session
        session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def page_token(secret: str, code: str) -> str:
    """A per-participant form token: a forged cross-site post lacks it."""
    return hmac.new(secret.encode(), f"participant:{code}".encode(), hashlib.sha256).hexdigest()[:32]


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status)


class SecurityHeaders(BaseHTTPMiddleware):
    """No referrer (participant links carry their code), no framing, no sniffing, a strict CSP."""

    CSP = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "form-action 'self' https://app.prolific.com; frame-ancestors 'none'; base-uri 'none'"
    )

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", self.CSP)
        return response


class BodyLimit(BaseHTTPMiddleware):
    """Refuse oversized requests before reading them (participant forms are a few hundred bytes)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        if request.method in ("POST", "PUT", "PATCH"):
            if length is None and request.headers.get("transfer-encoding"):
                return _plain(411, "Please send a Content-Length header.")
            if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                return _plain(413, "This request is too large. Nothing was stored.")
        return await call_next(request)


def _plain(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="text/plain; charset=utf-8")
