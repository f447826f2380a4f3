"""Participant pages. Every page is a plain form (works without JavaScript); htmx only smooths it.

GET /s/{study} enters (Prolific ids captured), GET /p/{code} shows the page the server says the
participant is on, POST /p/{code} answers it and redirects (303) back. Pages never contain the
answer key: the true class and the model's correctness stay on the server until feedback.
What a page shows is its step type's (app/steps/); these handlers only route.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from app.errors import Forbidden, Invalid, NotTaking, Refused
from app.models import Participant
from app.services import participation as svc
from app.settings import Settings
from app.steps import step_type
from app.studies.loader import LoadedStudy
from app.studies.pages import Page, page_count
from app.web import SessionDep, SettingsDep, StudiesDep, UnitOfWork, page_token, render, study_by_id

router = APIRouter(route_class=UnitOfWork)
COOKIE = "fm-p-"

StudyDep = Annotated[
    LoadedStudy,
    Depends(study_by_id("Study not found", "There is no study at this address. Check the link you were given.")),
]


@dataclass
class Posted:
    """A submitted form: the last value of each field, and every value of repeated ones."""

    form: dict[str, str]
    multi: dict[str, list[str]]


async def posted(request: Request) -> Posted:
    """Read on the event loop, before any database work (a slow client never holds a lock)."""
    data = await request.form()
    form: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key in data:
        values = data.getlist(key)
        if any(not isinstance(v, str) for v in values):
            raise Refused("This study does not accept files.", title="Unexpected upload")
        if len(values) > 1:
            multi[key] = [str(v) for v in values]
        form[key] = str(values[-1])
        if len(key) > 64:
            raise Refused("The form had a field this page does not ask for.", title="Unexpected field")
    return Posted(form, multi)


@dataclass
class Visit:
    participant: Participant
    study: LoadedStudy


def visiting(code: str, session: SessionDep, studies: StudiesDep) -> Visit:
    return Visit(*svc.visit(session, studies, code))


def answering(
    code: str, session: SessionDep, studies: StudiesDep, settings: SettingsDep, sent: Annotated[Posted, Depends(posted)]
) -> Visit:
    """The participant whose form this is, locked for this transaction, with the form's token checked."""
    svc.lock(session, code)  # before reading them: a simultaneous submission waits here
    visit = Visit(*svc.visit(session, studies, code))
    if sent.form.get("token") != page_token(settings.secret_key, code):
        raise Forbidden(
            "This form did not come from your study page. Go back to your study link and continue there.",
            title="Form expired",
        )
    return visit


VisitDep = Annotated[Visit, Depends(visiting)]
AnsweringDep = Annotated[Visit, Depends(answering)]
PostedDep = Annotated[Posted, Depends(posted)]


@router.get("/s/{study_id}")
def enter(request: Request, study: StudyDep, session: SessionDep, settings: SettingsDep) -> Response:
    q = request.query_params
    try:
        p, is_new = svc.enter(
            session,
            study,
            q.get("PROLIFIC_PID"),
            q.get("STUDY_ID"),
            q.get("SESSION_ID"),
            request.cookies.get(COOKIE + study.id),
        )
    except NotTaking as no:  # paused, closed or full: a polite page, and Prolific's return code
        prolific = study.spec.prolific
        code = prolific.return_code if prolific and q.get("PROLIFIC_PID") else None
        url = f"{settings.prolific_url}?{urlencode({'cc': code})}" if code else None
        return render(
            request,
            "closed.html",
            status=503,
            study=study.spec,
            title=no.title,
            message=str(no),
            prolific_code=code,
            prolific_url=url,
        )
    if not is_new and p.status not in ("started", "active"):
        return render(request, "already.html", status=409, study=study.spec, participant=p)
    svc.touch(study, p)
    response = RedirectResponse(f"/p/{p.code}", status_code=303)
    response.set_cookie(
        COOKIE + study.id, p.code, max_age=30 * 24 * 3600, httponly=True, samesite="lax", secure=settings.secure_cookies
    )
    return response


@router.get("/p/{code}")
def show(request: Request, visit: VisitDep, session: SessionDep, settings: SettingsDep) -> Response:
    p, study = visit.participant, visit.study
    svc.touch(study, p)
    if p.status in ("screened_out", "declined"):
        code = study.spec.prolific.screen_out_code if study.spec.prolific and p.external_pid else None
        url = f"{settings.prolific_url}?{urlencode({'cc': code})}" if code else None
        return render(request, "ended.html", study=study.spec, participant=p, prolific_url=url)
    page = svc.current(study, p)
    svc.served(p, page)
    return _page(request, session, settings, visit, page)


@router.post("/p/{code}")
def answer(
    request: Request, visit: AnsweringDep, sent: PostedDep, session: SessionDep, settings: SettingsDep
) -> Response:
    p, study = visit.participant, visit.study
    try:
        page_index = int(sent.form.get("page", ""))
    except ValueError:
        raise Refused("The form did not say which page it answers.", title="Missing page") from None
    try:
        outcome = svc.submit(session, study, p, page_index, sent.form, sent.multi)
    except Invalid as invalid:  # nothing changed: the same page again, with what to fix
        return _page(request, session, settings, visit, svc.current(study, p), invalid.errors, 422)
    if outcome.feedback_page is not None:
        return RedirectResponse(f"/p/{p.code}/feedback/{outcome.feedback_page}", status_code=303)
    return RedirectResponse(f"/p/{p.code}", status_code=303)


@router.get("/p/{code}/feedback/{page_index}")
def feedback(request: Request, visit: VisitDep, page_index: int, session: SessionDep) -> Response:
    p, study = visit.participant, visit.study
    shown = svc.feedback(session, study, p, page_index)
    if shown is None:
        return RedirectResponse(f"/p/{p.code}", status_code=303)
    return render(
        request, "feedback.html", study=study.spec, participant=p, progress=_progress(study, p), code=p.code, **shown
    )


@router.post("/p/{code}/event")
def event(visit: VisitDep, sent: PostedDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Client-side events worth monitoring (an image that failed to load). Small and optional."""
    p, study = visit.participant, visit.study
    kind = sent.form.get("kind", "")
    if kind not in ("asset_error", "timeout") or sent.form.get("token") != page_token(settings.secret_key, p.code):
        return Response(status_code=400)
    svc.log_event(session, study, p, kind, p.cursor, {"what": sent.form.get("what", "")[:200]})
    return Response(status_code=204)


def _progress(study: LoadedStudy, p: Participant) -> dict[str, int]:
    total = page_count(study)
    return {"done": min(p.cursor, total), "total": total, "percent": round(100 * min(p.cursor, total) / max(1, total))}


def _page(
    request: Request,
    session: SessionDep,
    settings: Settings,
    visit: Visit,
    page: Page,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """Every page's common context, and what the page's step type shows."""
    p, study = visit.participant, visit.study
    kind = step_type(page.step)
    context: dict[str, Any] = {
        "study": study.spec,
        "participant": p,
        "page": page,
        "step": page.step,
        "errors": errors or {},
        "token": page_token(settings.secret_key, p.code),
        "progress": _progress(study, p),
        "code": p.code,
        "now": dt.datetime.now(dt.UTC),
    }
    context |= kind.view(svc.showing(session, study, p, page, settings.prolific_url))
    return render(request, kind.template, status, **context)
