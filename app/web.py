"""Shared pieces of the web layer: templates, the resources a handler depends on, one transaction
per request, domain errors as status codes, security headers.

Handlers get what they need as FastAPI dependencies (the settings, the loaded studies, the
request's session, a study by its id) and are plain functions: `UnitOfWork` commits their
session when they return and rolls it back when they raise, and `problem` turns the error
they raised into its page (`STATUS` is the one table of status codes).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.analysis.cache import ReportCache
from app.errors import AppError, Conflict, Forbidden, NotFound, Refused, Unavailable
from app.settings import Settings
from app.static import static_url
from app.studies.loader import LoadedStudy

ROOT = Path(__file__).resolve().parent.parent
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str) -> Markup:
    """Study-file markdown to HTML; raw HTML in the study file is escaped, not rendered."""
    return Markup(_md.render(text or ""))  # markdown-it escapes: html is off


templates = Jinja2Templates(directory=str(ROOT / "templates"))
templates.env.auto_reload = False  # templates ship with the code: no file checks on every page
templates.env.filters["markdown"] = markdown
templates.env.globals["static_url"] = static_url


# -- what handlers depend on (the only readers of app.state) ---------------------------------------
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_studies(request: Request) -> dict[str, LoadedStudy]:
    studies: dict[str, LoadedStudy] = request.app.state.studies
    return studies


async def get_sessions(request: Request) -> sessionmaker[Session]:
    """The session factory, for work that outlives the handler (a streamed download)."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


async def get_reports(request: Request) -> ReportCache:
    reports: ReportCache = request.app.state.reports
    return reports


async def get_session(sessions: Annotated[sessionmaker[Session], Depends(get_sessions)]) -> AsyncIterator[Session]:
    """A session per request, in the transaction `UnitOfWork` ends (one a dependency left open,
    raising before the handler ran, is rolled back here).

    Async, so that opening and closing it costs no trip to the thread pool (a sync dependency
    costs two per request). Ending a transaction the handler left open touches the database, so
    it runs on a thread of its own, shielded, as FastAPI does for sync dependencies: queued
    behind the shared pool's threads it could wait on requests that wait for this transaction's
    lock, and a cancelled request must still give its connection back.
    """
    session = sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))  # rolls back
        else:
            session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
StudiesDep = Annotated[dict[str, LoadedStudy], Depends(get_studies)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
SessionDep = Annotated[Session, Depends(get_session)]
ReportsDep = Annotated[ReportCache, Depends(get_reports)]


def study_by_id(title: str, message: str) -> Callable[..., Any]:
    """A dependency: the study named by the path's `study_id`, or NotFound in these words."""

    async def study(study_id: str, studies: StudiesDep) -> LoadedStudy:
        found = studies.get(study_id)
        if found is None:
            raise NotFound(message, title=title)
        return found

    return study


# -- one transaction per request ------------------------------------------------------------------
class UnitOfWork(APIRoute):
    """The commit in one place: a handler's session is committed when the handler returns and
    rolled back when it raises, in the handler's own thread (before the response is sent).
    Services never commit; handlers neither."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _in_transaction(endpoint), **kwargs)


def _in_transaction(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(endpoint):
        raise TypeError(f"{endpoint.__name__}: handlers are plain functions (the commit runs in their thread)")

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        session = next((v for v in kwargs.values() if isinstance(v, Session)), None)
        try:
            result = endpoint(*args, **kwargs)
        except BaseException:
            if session is not None:
                session.rollback()
            raise
        if session is not None and session.in_transaction():
            session.commit()  # the answer is safe before anything else happens
        return result

    return run


# -- domain errors as pages -----------------------------------------------------------------------
STATUS: dict[type[AppError], int] = {NotFound: 404, Refused: 400, Conflict: 409, Forbidden: 403, Unavailable: 503}


def problem(request: Request, exc: AppError) -> Response:
    """The page for an error a service raised: its status from STATUS, its title and message."""
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
    message = str(exc)
    if request.method == "POST":  # a refused POST changed nothing: say so
        message = message.rstrip(".") + ". Nothing was stored."
    return render(request, "error.html", status=status, title=exc.title, message=message)


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


class RefuseNul:
    """Refuse, with a 400, any request with a NUL character in its path, query, headers, cookies or
    form body. No text a person types contains one, PostgreSQL cannot store one (the driver
    raises), and refusing it here keeps every handler and every database alike.

    Bodies are read whole before the app sees them: BodyLimit (outside this) caps their size.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        if _has_nul(raw) or _has_nul(scope.get("query_string", b"")) or "\x00" in scope["path"]:
            await _plain(400, "The request contained a NUL character. Nothing was stored.")(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if b"\x00" in value or (
                name == b"cookie" and any("\x00" in k + v for k, v in cookie_parser(value.decode("latin-1")).items())
            ):
                await _plain(400, "The request contained a NUL character. Nothing was stored.")(scope, receive, send)
                return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _has_nul(body):
            await _plain(400, "The form contained a NUL character. Nothing was stored.")(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, whenever it comes

        await self.app(scope, replay, send)


def _has_nul(data: bytes) -> bool:
    return b"\x00" in data or b"%00" in data


def _plain(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="text/plain; charset=utf-8")
