"""The researcher's dashboard under /r: login, studies, live monitor, analysis, exports, previews.

Every route here except the login form requires a researcher session (`ResearcherDep`, the
first dependency of each, so that nothing else is looked at first); every form carries the
session's CSRF token (`CsrfDep` checks it). Pages are server-rendered; the
monitor refreshes itself with htmx polling.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.analysis import report as R
from app.analysis.inference import METHOD
from app.errors import Forbidden, NotFound, Refused, Unavailable
from app.export import files as X
from app.models import Researcher, utcnow
from app.services import accounts, audit, cleanup, recruitment
from app.services import participation as svc
from app.services.monitor import STATES, accuracy_so_far, monitor, participant_detail, people, state_of
from app.services.review import review
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
                "state": recruitment.places(session, study).status,
                "status": "collecting" if active else ("has data" if completed else "no participants yet"),
            }
        )
    return _page(request, "r_studies.html", me, rows=rows)


def public_base(request: Request, settings: SettingsDep) -> str:
    """Where participants reach this server: FIELDMARK_BASE_URL in production, otherwise the
    address the researcher's own browser used (a development server has no public name)."""
    return settings.base_url.rstrip("/") if settings.environment == "production" else str(request.base_url).rstrip("/")


PROLIFIC_QUERY = "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


def _operations_context(
    request: Request, session: SessionDep, settings: SettingsDep, study: LoadedStudy
) -> dict[str, Any]:
    link = f"{public_base(request, settings)}/s/{study.id}"
    return {
        "places": recruitment.places(session, study),
        "link": link,
        "prolific_link": link + PROLIFIC_QUERY,
        "audit": audit.recent(session, study.id),
        "describe": audit.describe,
    }


def _people_context(
    session: SessionDep, study: LoadedStudy, status: str | None, condition: str | None, page: int
) -> dict[str, Any]:
    listed = people(session, study, status or None, condition or None, page)
    conditions = [c.id for c in study.spec.conditions] + ["unassigned"]
    return {"people": listed, "people_conditions": conditions, "states": STATES, "study": study.spec}


def _monitor_context(session: SessionDep, study: LoadedStudy) -> dict[str, Any]:
    m = monitor(session, study)
    conditions = [c.id for c in study.spec.conditions] + (["unassigned"] if "unassigned" in m.by_condition else [])
    return {"study": study.spec, "m": m, "conditions": conditions, "states": STATES}


@router.get("/studies/{study_id}")
def study_page(
    request: Request, me: ResearcherDep, study: StudyDep, session: SessionDep, settings: SettingsDep
) -> Response:
    return _page(
        request,
        "r_study.html",
        me,
        exports=list(X.FILES),
        **(
            _people_context(session, study, None, None, 1)
            | _operations_context(request, session, settings, study)
            | _monitor_context(session, study)
        ),
    )


@router.post("/studies/{study_id}/state")
def change_state(me: CsrfDep, study: StudyDep, session: SessionDep, state: Annotated[str, Form()] = "") -> Response:
    """Open, pause or close the study (logged); participants already taking it may finish."""
    recruitment.set_state(session, study, me.researcher, state)
    return RedirectResponse(f"/r/studies/{study.id}#ops", status_code=303)


async def form_fields(request: Request) -> dict[str, str]:
    """A posted form's text fields (read on the event loop, before any database work)."""
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


@router.post("/studies/{study_id}/limits")
def change_limits(
    me: CsrfDep, study: StudyDep, session: SessionDep, form: Annotated[dict[str, str], Depends(form_fields)]
) -> Response:
    """The participant cap and per-condition quotas (logged); empty fields mean no limit."""
    cap, quotas = recruitment.parse_limits(study, form)
    recruitment.set_limits(session, study, me.researcher, cap, quotas)
    return RedirectResponse(f"/r/studies/{study.id}#ops", status_code=303)


@router.get("/studies/{study_id}/participants")
def participants_page(
    request: Request,
    me: ResearcherDep,
    study: StudyDep,
    session: SessionDep,
    status: str = "",
    condition: str = "",
    page: str = "1",
) -> Response:
    """The participant list: a whole page, or (asked by htmx) just the list, for its live refresh."""
    if not page.isdigit():
        raise Refused("page must be a page number (1, 2, ...)", title="No such page")
    context = _people_context(session, study, status, condition, int(page))
    if request.headers.get("HX-Request"):
        return render(request, "_people.html", **context)
    return _page(request, "r_participants.html", me, **context)


@router.get("/studies/{study_id}/prolific-ids.csv")
def prolific_ids(
    me: ResearcherDep, study: StudyDep, session: SessionDep, settings: SettingsDep, sessions: SessionsDep
) -> Response:
    """The raw Prolific ids (personal data): each download is in the audit log, committed before
    the first byte leaves."""
    audit.record(session, me.researcher, "raw_ids_downloaded", study.id, file="prolific-ids.csv")
    return _stream(
        sessions,
        f"{study.id}-prolific-ids.csv",
        "text/csv",
        lambda s: X.stream_prolific_ids(s, study, settings.secret_key),
    )


def _stream(
    sessions: SessionsDep, filename: str, media_type: str, chunks: Callable[[Session], Iterator[str]]
) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}

    def body() -> Iterator[str]:
        with sessions() as s:  # its own session: it outlives the request handler
            yield from chunks(s)

    return StreamingResponse(body(), media_type=media_type, headers=headers)


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
    timeout = dt.timedelta(minutes=study.spec.assignment.timeout_minutes)
    return _page(
        request,
        "r_participant.html",
        me,
        study=study.spec,
        p=p,
        state=state_of(p, timeout, utcnow()),
        review=review(study, p, answers),
    )


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
    session: SessionDep,
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
    audit.record(
        session, me.researcher, "export_downloaded", study.id, file=name, **({"origins": "all"} if every else {})
    )
    return _stream(
        sessions,
        filename,
        file.media_type,
        lambda s: file.chunks(X.Export(s, study, settings.secret_key, all_origins=every)),
    )


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
