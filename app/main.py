"""The study server: `create_app()` builds it from settings, study files and asset runs."""

from __future__ import annotations

import gc

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.analysis.cache import ReportCache
from app.analysis.inference import choose_engine
from app.db import make_engine, session_factory, transaction
from app.errors import AppError
from app.routes import assets, participant, researcher
from app.services.studies import sync
from app.settings import Settings, get_settings
from app.static import REVALIDATE, VersionedFiles, compressed
from app.static import ROOT as STATIC
from app.studies.loader import LoadedStudy, load_all
from app.web import BodyLimit, RefuseNul, SecurityHeaders, problem, render


def create_app(settings: Settings | None = None, studies: dict[str, LoadedStudy] | None = None) -> FastAPI:
    """Load and check every study (refusing to start on any problem), then build the app."""
    settings = settings or get_settings()
    if studies is None:
        studies = load_all(settings.studies_dir, settings.assets_root, settings.secret_key)
    engine = make_engine(settings.db_url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        sync(session, studies)

    app = FastAPI(title="Fieldmark", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.studies = studies
    app.state.reports = ReportCache(sessions, lambda: choose_engine(settings.stats_engine))
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RefuseNul)  # inside BodyLimit: only bodies of a bounded size are read whole
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(compressed)
    app.mount("/static", VersionedFiles(directory=str(STATIC)), name="static")
    app.include_router(participant.router)
    app.include_router(assets.router)
    app.include_router(researcher.router)

    @app.exception_handler(researcher.LoginRequired)
    def login_required(request: Request, exc: researcher.LoginRequired) -> Response:
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": "/r/login"})
        return RedirectResponse("/r/login", status_code=303)

    app.add_exception_handler(AppError, problem)  # type: ignore[arg-type]

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:  # where browsers look for it unasked
        return FileResponse(STATIC / "favicon.ico", media_type="image/x-icon", headers={"Cache-Control": REVALIDATE})

    @app.exception_handler(DataError)
    def bad_value(request: Request, exc: DataError) -> Response:
        """A value the database cannot hold (a number out of its range): the request's fault, a 400."""
        return render(request, "error.html", status=400, title="Not understood", message="A value was out of range.")

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return {"ok": True, "studies": sorted(studies)}

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Page not found", 405: "Not allowed", 413: "Too large", 422: "Not understood"}
        return render(
            request,
            "error.html",
            status=exc.status_code,
            title=titles.get(exc.status_code, "Error"),
            message=str(exc.detail) if exc.status_code != 404 else "There is nothing at this address.",
        )

    return app


def serve_app() -> FastAPI:
    """The app as `fieldmark serve` runs it, one per worker process.

    The loaded studies and manifests are hundreds of thousands of long-lived objects; a full
    garbage collection scanning them all stalls every request for over 100 ms. Frozen after
    start-up, the collector skips them.
    """
    app = create_app()
    gc.collect()
    gc.freeze()
    return app
