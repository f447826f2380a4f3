"""The researcher's dashboard under /r: login, studies, live monitor, analysis, exports, previews.

Every route here except the login form requires a researcher session; every form carries the
session's CSRF token. Pages are server-rendered; the monitor refreshes itself with htmx polling.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from sqlalchemy import select
from starlette.responses import Response

from app.analysis import report as R
from app.analysis.inference import METHOD
from app.export import files as X
from app.models import Participant, Researcher
from app.models import Response as Answer
from app.services import accounts
from app.services import participation as svc
from app.services.monitor import STATES, accuracy_so_far, monitor
from app.studies.loader import LoadedStudy
from app.web import SessionDep, render

router = APIRouter(prefix="/r")


class LoginRequired(Exception):
    pass


def _sessions(request: Request) -> accounts.Sessions:
    s = request.app.state.settings
    return accounts.Sessions(s.secret_key, s.session_max_age_s)


def researcher(request: Request, session: SessionDep) -> Researcher:
    login = _sessions(request).read(request.cookies.get(accounts.COOKIE))
    r = accounts.current(session, login)
    if r is None:
        raise LoginRequired
    request.state.csrf = login.csrf if login else ""
    return r


ResearcherDep = Annotated[Researcher, Depends(researcher)]


def check_csrf(request: Request, token: str) -> None:
    if not token or token != getattr(request.state, "csrf", None):
        raise PermissionError("the form's security token is missing or stale; reload the page and try again")


def _study(request: Request, study_id: str) -> LoadedStudy | None:
    return request.app.state.studies.get(study_id)


def _missing(request: Request) -> Response:
    return render(request, "error.html", status=404, title="No such study", message="There is no study with this id.")


@router.get("/login")
def login_form(request: Request) -> Response:
    return render(request, "r_login.html", error=None)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    settings = request.app.state.settings
    ip = request.client.host if request.client else "?"
    keys = [f"email:{email.strip().lower()}", f"ip:{ip}"]
    if accounts.rate_limited(session, keys, settings.login_attempts_per_minute):
        session.commit()
        return render(
            request, "r_login.html", status=429, error="Too many attempts. Wait a minute before trying again."
        )
    r = accounts.authenticate(session, email, password, ip)
    session.commit()
    if r is None:
        return render(request, "r_login.html", status=401, error="That e-mail and password do not match.")
    resp = RedirectResponse("/r/", status_code=303)
    resp.set_cookie(
        accounts.COOKIE,
        _sessions(request).issue(r),
        max_age=settings.session_max_age_s,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/",
    )
    return resp


@router.post("/logout")
def logout(request: Request, session: SessionDep, me: ResearcherDep, csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf)
    me.session_epoch += 1  # every cookie of this researcher stops working
    session.commit()
    resp = RedirectResponse("/r/login", status_code=303)
    resp.delete_cookie(accounts.COOKIE, path="/")
    return resp


@router.get("/")
def studies_page(request: Request, session: SessionDep, me: ResearcherDep) -> Response:
    rows = []
    for sid, study in sorted(request.app.state.studies.items()):
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
    return render(request, "r_studies.html", me=me, rows=rows, csrf=request.state.csrf)


def _monitor_context(request: Request, session: SessionDep, study: LoadedStudy) -> dict[str, Any]:
    m = monitor(session, study)
    conditions = [c.id for c in study.spec.conditions] + (["unassigned"] if "unassigned" in m.by_condition else [])
    return {"study": study.spec, "m": m, "conditions": conditions, "states": STATES}


@router.get("/studies/{study_id}")
def study_page(request: Request, study_id: str, session: SessionDep, me: ResearcherDep) -> Response:
    study = _study(request, study_id)
    if study is None:
        return _missing(request)
    people = session.scalars(
        select(Participant).where(Participant.study_id == study_id).order_by(Participant.id.desc()).limit(50)
    ).all()
    return render(
        request,
        "r_study.html",
        me=me,
        csrf=request.state.csrf,
        people=people,
        **_monitor_context(request, session, study),
    )


@router.get("/studies/{study_id}/monitor")
def monitor_fragment(request: Request, study_id: str, session: SessionDep, me: ResearcherDep) -> Response:
    study = _study(request, study_id)
    if study is None:
        return _missing(request)
    return render(request, "r_monitor.html", **_monitor_context(request, session, study))


@router.get("/studies/{study_id}/accuracy")
def accuracy_fragment(request: Request, study_id: str, session: SessionDep, me: ResearcherDep) -> Response:
    """The analysis page's own accuracy table (same cache, same numbers), and the raw count beside it."""
    study = _study(request, study_id)
    if study is None:
        return _missing(request)
    rep, note = request.app.state.reports.get(study)
    section = rep.section("accuracy") if rep else None
    return render(
        request, "r_accuracy.html", section=section, note=note, raw=accuracy_so_far(session, study), study=study.spec
    )


@router.get("/studies/{study_id}/participants/{participant_id}")
def participant_page(
    request: Request, study_id: str, participant_id: int, session: SessionDep, me: ResearcherDep
) -> Response:
    study = _study(request, study_id)
    p = session.get(Participant, participant_id)
    if study is None or p is None or p.study_id != study_id:
        return _missing(request)
    answers = session.scalars(select(Answer).where(Answer.participant_id == p.id).order_by(Answer.page)).all()
    return render(request, "r_participant.html", me=me, study=study.spec, p=p, answers=answers, csrf=request.state.csrf)


@router.post("/studies/{study_id}/preview")
def preview(
    request: Request,
    study_id: str,
    session: SessionDep,
    me: ResearcherDep,
    csrf: Annotated[str, Form()] = "",
    condition: Annotated[str, Form()] = "",
) -> Response:
    """Take the study as a participant in a chosen condition: a pilot, left out of every count."""
    check_csrf(request, csrf)
    study = _study(request, study_id)
    if study is None or condition not in {c.id for c in study.spec.conditions}:
        return _missing(request)
    p, _ = svc.enter(session, study, None, None, None, None, pilot=True)
    p.condition, p.item_set, p.status = condition, 0, "active"
    p.end_reason = f"pilot by {me.email}"
    session.commit()
    return RedirectResponse(f"/p/{p.code}", status_code=303)


@router.get("/studies/{study_id}/analysis")
def analysis_page(request: Request, study_id: str, me: ResearcherDep) -> Response:
    study = _study(request, study_id)
    if study is None:
        return _missing(request)
    rep, note = request.app.state.reports.get(study)
    if rep is None:
        return render(request, "error.html", status=503, title="Analysis not ready", message=note or "")
    return render(
        request,
        "r_analysis.html",
        me=me,
        study=study.spec,
        rep=rep,
        stale=note,
        method=METHOD,
        csv_url=lambda name: f"/r/studies/{study_id}/analysis/{name}.csv",
        csrf=request.state.csrf,
    )


@router.get("/studies/{study_id}/analysis/{name}.csv")
def analysis_csv(request: Request, study_id: str, name: str, me: ResearcherDep) -> Response:
    study = _study(request, study_id)
    rep = request.app.state.reports.get(study)[0] if study is not None else None
    table = R.tables(rep).get(name) if rep is not None else None
    if table is None:
        return _missing(request)
    headers = {"Content-Disposition": f'attachment; filename="{study_id}-{name}.csv"', "Cache-Control": "no-store"}
    return Response(table.to_csv(index=False), media_type="text/csv", headers=headers)


EXPORTS = {
    "trials.csv": "text/csv",
    "participants.csv": "text/csv",
    "codebook.md": "text/markdown",
    "codebook.json": "application/json",
    "study.yaml": "application/yaml",
}


@router.get("/studies/{study_id}/export/{name}")
def download(request: Request, study_id: str, name: str, me: ResearcherDep) -> Response:
    study = _study(request, study_id)
    if study is None or name not in EXPORTS:
        return _missing(request)
    secret = request.app.state.settings.secret_key
    headers = {"Content-Disposition": f'attachment; filename="{study_id}-{name}"', "Cache-Control": "no-store"}

    def chunks():  # type: ignore[no-untyped-def]
        with request.app.state.sessions() as s:  # its own session: it outlives the request handler
            if name == "trials.csv":
                yield from X.stream_trials(s, study, secret)
            elif name == "participants.csv":
                yield from X.stream_participants(s, study, secret)
            elif name == "codebook.md":
                yield X.codebook_markdown(X.codebook(study, raw_ids=False))
            elif name == "codebook.json":
                import json

                yield json.dumps(X.codebook(study, raw_ids=False), indent=2, default=str)
            else:
                yield study.source

    return StreamingResponse(chunks(), media_type=EXPORTS[name], headers=headers)
