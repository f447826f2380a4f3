"""Shared pieces of the web layer: templates, the request's database session, security headers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROOT = Path(__file__).resolve().parent.parent
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str) -> Markup:
    """Study-file markdown to HTML; raw HTML in the study file is escaped, not rendered."""
    return Markup(_md.render(text or ""))  # markdown-it escapes: html is off


templates = Jinja2Templates(directory=str(ROOT / "templates"))
templates.env.auto_reload = False  # templates ship with the code: no file checks on every page
templates.env.filters["markdown"] = markdown


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request; handlers commit what they mean to keep, anything else is rolled back.

    Async, so that opening and closing it costs no trip to the thread pool (a sync dependency
    costs two per request). Ending a transaction the handler left open touches the database, so
    it runs on a thread of its own, shielded, as FastAPI does for sync dependencies: queued
    behind the shared pool's threads it could wait on requests that wait for this transaction's
    lock, and a cancelled request must still give its connection back.
    """
    session: Session = request.app.state.sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))  # rolls back
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def page_token(secret: str, code: str) -> str:
    """A per-participant form token: a forged cross-site post lacks it."""
    return hmac.new(secret.encode(), f"participant:{code}".encode(), hashlib.sha256).hexdigest()[:32]


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status)


class SecurityHeaders:
    """No referrer (participant links carry their code), no framing, no sniffing, a strict CSP.

    Plain ASGI rather than BaseHTTPMiddleware: that one runs every request through an extra task
    and a memory stream, a measurable share of a page's cost under load.
    """

    CSP = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "form-action 'self' https://app.prolific.com; frame-ancestors 'none'; base-uri 'none'"
    )
    HEADERS = (
        (b"referrer-policy", b"no-referrer"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", CSP.encode()),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(n, v) for n, v in self.HEADERS if n not in present]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """Refuse oversized requests before reading them (participant forms are a few hundred bytes)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = Headers(scope=scope)
            length = headers.get("content-length")
            refusal = None
            if length is None and headers.get("transfer-encoding"):
                refusal = _plain(411, "Please send a Content-Length header.")
            elif length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                refusal = _plain(413, "This request is too large. Nothing was stored.")
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _plain(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="text/plain; charset=utf-8")
