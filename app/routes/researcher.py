"""The researcher's dashboard under /r: login, studies, live monitor, analysis, exports, previews.

Every route here except the login form requires a researcher session (`ResearcherDep`, the
first dependency of each, so that nothing else is looked at first); every form carries the
session's CSRF token (`CsrfDep` checks it). Pages are server-rendered; the
monitor refreshes itself with htmx polling.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.responses import Response

from app.analysis import report as R
from app.analysis.inference import METHOD
from app.errors import Forbidden, NotFound, Unavailable
from app.export import files as X
from app.models import Researcher
from app.services import accounts, cleanup
from app.services import participation as svc
from app.services.monitor import STATES, accuracy_so_far, latest, monitor, participant_detail
from app.settings import Settings
from app.studies.loader import LoadedStudy
from app.web import ReportsDep, SessionDep, SessionsDep, SettingsDep, StudiesDep, UnitOfWork, render, study_by_id

router = APIRouter(prefix="/r", route_class=UnitOfWork)


class LoginRequired(Exception):
    pass


@dataclass
class Me:
    """The logged-in researcher and their session's CSRF token."""

    researcher: Researcher
    csrf: str


def _sessions(settings: SettingsDep) -> accounts.Sessions:
    return accounts.Sessions(settings.secret_key, settings.session_max_age_s)


def logged_in(request: Request, session: SessionDep, settings: SettingsDep) -> Me:
    login = _sessions(settings).read(request.cookies.get(accounts.COOKIE))
    r = accounts.current(session, login)
    if r is None or login is None:
        raise LoginRequired
    return Me(r, login.csrf)


ResearcherDep = Annotated[Me, Depends(logged_in)]


async def csrf_checked(me: ResearcherDep, csrf: Annotated[str, Form()] = "") -> Me:
    """The researcher of a form post, whose form carries their session's CSRF token."""
    if not csrf or csrf != me.csrf:
        raise Forbidden("the form's security token is missing or stale; reload the page and try again")
    return me


CsrfDep = Annotated[Me, Depends(csrf_checked)]
StudyDep = Annotated[LoadedStudy, Depends(study_by_id("No such study", "There is no study with this id."))]


def _page(request: Request, name: str, me: Me, status: int = 200, **context: Any) -> Response:
    return render(request, name, status, me=me.researcher, csrf=me.csrf, **context)


LOGIN_CSRF = "fm-login-csrf"


def _login_page(request: Request, settings: Settings, status: int = 200, error: str | None = None) -> Response:
    """The login form with a fresh CSRF token, also set as a cookie (a forged cross-site post has neither)."""
    token = secrets.token_urlsafe(24)
    response = render(request, "r_login.html", status, error=error, csrf=token)
    response.set_cookie(
        LOGIN_CSRF, token, max_age=3600, httponly=True, samesite="strict", secure=settings.secure_cookies, path="/r"
    )
    return response


@router.get("/login")
def login_form(request: Request, settings: SettingsDep) -> Response:
    return _login_page(request, settings)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF, "")
    if not csrf or not expected or not hmac.compare_digest(csrf, expected):
        return _login_page(request, settings, 403, "This form has expired. Please log in again.")
    # The client's address as uvicorn reports it: X-Forwarded-For counts only from the proxies
    # FIELDMARK_TRUSTED_PROXIES names (`fieldmark serve` passes them to uvicorn), never by default.
    ip = request.client.host if request.client else "?"
    devices = accounts.Devices(settings.secret_key)
    keys = accounts.login_keys(email, ip, devices.read(request.cookies.get(devices.COOKIE), email))
    if accounts.rate_limited(session, keys, settings.login_attempts_per_minute):
        return _login_page(request, settings, 429, "Too many attempts. Wait a minute before trying again.")
    r = accounts.authenticate(session, email, password, keys)
    if r is None:  # the failed attempt is kept (the handler returns: its transaction commits)
        return _login_page(request, settings, 401, "That e-mail and password do not match.")
    resp = RedirectResponse("/r/", status_code=303)
    resp.set_cookie(
        accounts.COOKIE,
        _sessions(settings).issue(r),
        max_age=settings.session_max_age_s,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/",
    )
    resp.set_cookie(
        devices.COOKIE,
        devices.issue(r.email),
        max_age=devices.MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/r",
    )
    resp.delete_cookie(LOGIN_CSRF, path="/r")
    return resp


@router.post("/logout")
def logout(me: CsrfDep, session: SessionDep) -> Response:
    me.researcher.session_epoch += 1  # every cookie of this researcher stops working
    resp = RedirectResponse("/r/login", status_code=303)
    resp.delete_cookie(accounts.COOKIE, path="/")
    return resp


@router.get("/")
def studies_page(request: Request, me: ResearcherDep, session: SessionDep, studies: StudiesDep) -> Response:
    rows = []
    for sid, study in sorted(studies.items()):
        m = monitor(session, study)
        completed = sum(c["completed"] for c in m.by_condition.values())
        active = sum(c["active"] for c in m.by_condition.values())
        rows.append(
            {
                "id": sid,
                "title": study.spec.title,
                "version": study.spec.version,
                "total": m.total,
                "completed": completed,
                "active": active,
                "status": "collecting" if active else ("has data" if completed else "no participants yet"),
            }
        )
    return _page(request, "r_studies.html", me, rows=rows)


def _monitor_context(session: SessionDep, study: LoadedStudy) -> dict[str, Any]:
    m = monitor(session, study)
    conditions = [c.id for c in study.spec.conditions] + (["unassigned"] if "unassigned" in m.by_condition else [])
    return {"study": study.spec, "m": m, "conditions": conditions, "states": STATES}


@router.get("/studies/{study_id}")
def study_page(request: Request, me: ResearcherDep, study: StudyDep, session: SessionDep) -> Response:
    return _page(
        request,
        "r_study.html",
        me,
        people=latest(session, study),
        exports=list(X.FILES),
        **_monitor_context(session, study),
    )


@router.get("/studies/{study_id}/monitor")
def monitor_fragment(request: Request, me: ResearcherDep, study: StudyDep, session: SessionDep) -> Response:
    return render(request, "r_monitor.html", **_monitor_context(session, study))


@router.get("/studies/{study_id}/accuracy")
def accuracy_fragment(
    request: Request, me: ResearcherDep, study: StudyDep, session: SessionDep, reports: ReportsDep
) -> Response:
    """The analysis page's own accuracy table (same cache, same numbers), and the raw count beside it."""
    rep, note = reports.get(study)
    section = rep.section("accuracy") if rep else None
    raw = accuracy_so_far(session, study)
    return render(request, "r_accuracy.html", section=section, note=note, raw=raw, study=study.spec)


@router.get("/studies/{study_id}/participants/{participant_id}")
def participant_page(
    request: Request,
    me: ResearcherDep,
    study: StudyDep,
    participant_id: Annotated[int, Path(ge=1, le=2**31 - 1)],  # the databases' integer range
    session: SessionDep,
) -> Response:
    p, answers = participant_detail(session, study, participant_id)
    return _page(request, "r_participant.html", me, study=study.spec, p=p, answers=answers)


@router.post("/studies/{study_id}/preview")
def preview(me: CsrfDep, study: StudyDep, session: SessionDep, condition: Annotated[str, Form()] = "") -> Response:
    """Take the study as a participant in a chosen condition: a pilot, left out of every count."""
    p = svc.preview(session, study, condition, me.researcher.email)
    return RedirectResponse(f"/p/{p.code}", status_code=303)


@router.get("/studies/{study_id}/analysis")
def analysis_page(request: Request, me: ResearcherDep, study: StudyDep, reports: ReportsDep) -> Response:
    rep, note = reports.get(study)
    if rep is None:
        raise Unavailable(note or "", title="Analysis not ready")
    return _page(
        request,
        "r_analysis.html",
        me,
        study=study.spec,
        rep=rep,
        stale=note,
        method=METHOD,
        csv_url=lambda name: f"/r/studies/{study.id}/analysis/{name}.csv",
    )


@router.get("/studies/{study_id}/analysis/{name}.csv")
def analysis_csv(me: ResearcherDep, study: StudyDep, name: str, reports: ReportsDep) -> Response:
    rep, _ = reports.get(study)
    table = R.tables(rep).get(name) if rep is not None else None
    if table is None:
        raise NotFound("There is no analysis table of this name.", title="No such table")
    headers = {"Content-Disposition": f'attachment; filename="{study.id}-{name}.csv"', "Cache-Control": "no-store"}
    return Response(table.to_csv(index=False), media_type="text/csv", headers=headers)


@router.get("/studies/{study_id}/export/{name}")
def download(
    me: ResearcherDep,
    study: StudyDep,
    name: str,
    settings: SettingsDep,
    sessions: SessionsDep,
    origins: Annotated[Literal["real", "all"], Query()] = "real",
) -> Response:
    """One export file: real participants only, unless ?origins=all (then the file name says so,
    and every row has its origin)."""
    file = X.FILES.get(name)
    if file is None:
        raise NotFound("There is no export file of this name.", title="No such file")
    every = origins == "all"
    filename = f"{study.id}-all-origins-{name}" if every else f"{study.id}-{name}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}

    def chunks() -> Iterator[str]:
        with sessions() as s:  # its own session: it outlives the request handler
            yield from file.chunks(X.Export(s, study, settings.secret_key, all_origins=every))

    return StreamingResponse(chunks(), media_type=file.media_type, headers=headers)


Deletion = Literal["non-real", "all"]


@router.get("/studies/{study_id}/delete")
def delete_form(
    request: Request, me: ResearcherDep, study: StudyDep, session: SessionDep, what: Deletion = "non-real"
) -> Response:
    """The confirmation step: what would be deleted, and the study id to type."""
    return _page(request, "r_delete.html", me, study=study.spec, what=what, n=cleanup.counts(session, study.id, what))


@router.post("/studies/{study_id}/delete")
def delete_data(
    request: Request,
    me: CsrfDep,
    study: StudyDep,
    session: SessionDep,
    what: Annotated[Deletion, Form()],
    confirm: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    if confirm.strip() != study.id:
        n = cleanup.counts(session, study.id, what)
        return _page(
            request,
            "r_delete.html",
            me,
            status=400,
            study=study.spec,
            what=what,
            n=n,
            error="The study id did not match: nothing was deleted.",
        )
    cleanup.delete_data(session, study.id, what, me.researcher)
    return RedirectResponse(f"/r/studies/{study.id}", status_code=303)
