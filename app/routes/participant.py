"""Participant pages. Every page is a plain form (works without JavaScript); htmx only smooths it.

GET /s/{study} enters (Prolific ids captured; nothing is stored before consent: see
app/services/entry.py), GET /p/{code} shows the page the server says the participant is on,
POST /p/{code} answers it and redirects (303) back; the consent answer creates the participation.
Pages never contain the answer key: the true class and the model's correctness stay on the server until feedback.
What a page shows is its step type's (app/steps/); these handlers only route.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.errors import Conflict, Forbidden, Invalid, NotTaking, Refused
from app.models import REAL, Participant
from app.services import entry, recruitment
from app.services import participation as svc
from app.services.entry import Joining, JoinNotes, bot_key
from app.settings import Settings
from app.steps import step_type
from app.studies.loader import LoadedStudy
from app.studies.pages import Page, page_count
from app.web import SessionDep, SettingsDep, StudiesDep, UnitOfWork, page_token, render, study_by_id

router = APIRouter(route_class=UnitOfWork)
COOKIE = "fm-p-"  # + study id: the participant's code, so that the study link brings them back
JOIN = "fm-join-"  # + code: a signed note of someone on the consent page (app/services/entry.py)

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
    joining: Joining | None = None  # not consented yet: `participant` is a stand-in, never stored


def _pending(request: Request, settings: Settings, studies: dict[str, LoadedStudy], code: str) -> Visit | None:
    """The consent page of someone who opened the study link with this code in it (their join cookie)."""
    j = JoinNotes(settings.secret_key).load(request.cookies.get(JOIN + code))
    if j is None or j.code != code or j.study_id not in studies:
        return None
    study = studies[j.study_id]
    # A stand-in, never added to the session: the consent page needs a participant to draw.
    stand_in = Participant(
        code=j.code, study_id=study.id, study_hash=study.content_hash, seed=0, status="started", cursor=0
    )
    stand_in.origin, stand_in.external_pid = j.origin, j.pid
    return Visit(stand_in, study, j)


def visiting(
    request: Request, session: Session, studies: dict[str, LoadedStudy], settings: Settings, code: str
) -> Visit:
    """The participant behind a link (or the stand-in of someone on the consent page). Called by
    the handlers themselves, like `answering`: as a dependency it would run in a thread of its own
    and hold a pooled connection while the handler waits for a thread, and a burst of requests
    (200 participants coming back after a restart) then took every connection and every thread."""
    if svc.participant_by_code(session, code) is None and (pending := _pending(request, settings, studies, code)):
        return pending
    return Visit(*svc.visit(session, studies, code))


async def token_checked(code: str, settings: SettingsDep, sent: Annotated[Posted, Depends(posted)]) -> str:
    """The code of a form whose token is this participant's (no database work: see `answering`)."""
    if sent.form.get("token") != page_token(settings.secret_key, code):
        raise Forbidden(
            "This form did not come from your study page. Go back to your study link and continue there.",
            title="Form expired",
        )
    return code


def answering(
    request: Request, session: Session, studies: dict[str, LoadedStudy], settings: Settings, code: str
) -> Visit:
    """The participant whose form this is, locked for this transaction: called by the handler
    itself, never as a dependency. FastAPI runs each sync dependency in a thread of its own, and a
    lock taken there (SQLite's one write turn) would be held while the handler waits for a free
    thread, which, with every thread waiting for that lock, never comes."""
    svc.lock(session, code)  # before reading them: a simultaneous submission waits here
    if svc.participant_by_code(session, code) is None and (pending := _pending(request, settings, studies, code)):
        return pending
    return Visit(*svc.visit(session, studies, code))


CheckedCode = Annotated[str, Depends(token_checked)]
PostedDep = Annotated[Posted, Depends(posted)]


@router.get("/s/{study_id}")
def enter(request: Request, study: StudyDep, session: SessionDep, settings: SettingsDep) -> Response:
    """The study link: the consent page for a newcomer (nothing stored yet), the participation for
    someone who proves it is theirs, the "already taken part" page for a second attempt."""
    q, cookies = request.query_params, request.cookies
    bot = q.get("FM_BOT")
    origin = "bot" if bot and hmac.compare_digest(bot, bot_key(settings.secret_key, study.id)) else REAL
    notes = JoinNotes(settings.secret_key)
    open_notes = [j for name, v in cookies.items() if name.startswith(JOIN) and (j := notes.load(v)) is not None]
    e = entry.enter(
        session,
        study,
        q.get("PROLIFIC_PID"),
        q.get("STUDY_ID"),
        q.get("SESSION_ID"),
        cookies.get(COOKIE + study.id),
        open_notes,
        origin,
    )
    if e.kind == "already":
        assert e.participant is not None
        return render(
            request,
            "already.html",
            status=409,
            study=study.spec,
            participant=e.participant,
            prolific_url=_ending_url(study, e.participant, settings),
        )
    if e.kind == "elsewhere":
        return render(request, "elsewhere.html", status=409, study=study.spec)
    if e.kind == "resume":
        assert e.participant is not None
        svc.touch(study, e.participant)
        response = RedirectResponse(f"/p/{e.participant.code}", status_code=303)
        _keep(response, COOKIE + study.id, e.participant.code, settings)
        return response
    assert e.joining is not None
    if e.joining.origin == REAL:  # pilots and bots are tests: a paused or full study still takes them
        try:
            recruitment.admit(session, study, lock=False)  # nothing is stored yet: no lock to take
        except NotTaking as no:
            return _turned_away(request, study, no, e.joining.pid, settings)
    response = RedirectResponse(f"/p/{e.joining.code}", status_code=303)
    _keep(response, JOIN + e.joining.code, notes.dump(e.joining), settings, max_age=24 * 3600)
    return response


def _turned_away(request: Request, study: LoadedStudy, no: NotTaking, pid: str | None, settings: Settings) -> Response:
    """The polite page of a study that is paused, closed or full, with Prolific's return code."""
    prolific = study.spec.prolific
    code = prolific.return_code if prolific and pid else None
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


def _keep(response: Response, name: str, value: str, settings: Settings, max_age: int = 30 * 24 * 3600) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=settings.secure_cookies)


def _ending_url(study: LoadedStudy, p: Participant, settings: Settings) -> str | None:
    """Where a participation that ended early sends a Prolific participant back: declining has
    its own code (Prolific's "no consent"), screening out the screen-out code; never the other's."""
    prolific = study.spec.prolific
    if prolific is None or not p.external_pid:
        return None
    code = {"declined": prolific.no_consent_code, "screened_out": prolific.screen_out_code}.get(p.status)
    return f"{settings.prolific_url}?{urlencode({'cc': code})}" if code else None


@router.get("/p/{code}")
def show(request: Request, code: str, session: SessionDep, studies: StudiesDep, settings: SettingsDep) -> Response:
    visit = visiting(request, session, studies, settings, code)
    p, study = visit.participant, visit.study
    if visit.joining is None:
        svc.touch(study, p)
    if p.status in ("screened_out", "declined"):
        return render(
            request,
            "ended.html",
            study=study.spec,
            participant=p,
            prolific_url=_ending_url(study, p, settings),
            prolific=bool(study.spec.prolific and p.external_pid),
        )
    page = svc.current(study, p)
    if visit.joining is None:  # a stand-in before consent is never stored
        svc.served(p, page)
    return _page(request, session, settings, visit, page)


@router.post("/p/{code}")
def answer(
    request: Request,
    code: CheckedCode,
    sent: PostedDep,
    session: SessionDep,
    studies: StudiesDep,
    settings: SettingsDep,
) -> Response:
    visit = answering(request, session, studies, settings, code)
    p, study = visit.participant, visit.study
    try:
        page_index = int(sent.form.get("page", ""))
    except ValueError:
        raise Refused("The form did not say which page it answers.", title="Missing page") from None
    joined = None
    if visit.joining is not None:  # the consent page's answer: the participation begins here
        if page_index != 0:
            raise Conflict("this page is not open yet: answer the consent page first", title="Not started")
        device = entry.device_of(sent.form, request.headers.get("user-agent", ""))
        reason = entry.unsuitable(study.spec.device, device) if sent.form.get("choice") == "agree" else None
        if reason is not None:  # nothing stored: they can come back on a suitable device
            return render(request, "device.html", status=403, study=study.spec, reason=reason)
        agreed = sent.form.get("choice") == "agree"
        if agreed and visit.joining.origin == REAL and svc.participant_by_code(session, visit.joining.code) is None:
            try:  # the place is taken now, under the study's lock: the study may have filled meanwhile
                recruitment.admit(session, study)
            except NotTaking as no:
                return _turned_away(request, study, no, visit.joining.pid, settings)
        p = joined = entry.join(session, study, visit.joining)
        if p.cursor == 0 and p.status in ("started", "active"):
            entry.record_device(p, device)
        svc.lock(session, p.code)
        visit = Visit(p, study)
    try:
        outcome = svc.submit(session, study, p, page_index, sent.form, sent.multi)
    except Invalid as invalid:  # nothing changed: the same page again, with what to fix and what was typed
        return _page(request, session, settings, visit, svc.current(study, p), invalid.errors, 422, sent)
    if outcome.feedback_page is not None:
        response = RedirectResponse(f"/p/{p.code}/feedback/{outcome.feedback_page}", status_code=303)
    else:
        response = RedirectResponse(f"/p/{p.code}", status_code=303)
    if joined is not None:
        _keep(response, COOKIE + study.id, p.code, settings)
        response.delete_cookie(JOIN + p.code)
    return response


@router.get("/p/{code}/feedback/{page_index}")
def feedback(
    request: Request, code: str, page_index: int, session: SessionDep, studies: StudiesDep, settings: SettingsDep
) -> Response:
    visit = visiting(request, session, studies, settings, code)
    p, study = visit.participant, visit.study
    shown = svc.feedback(session, study, p, page_index)
    if shown is None:
        return RedirectResponse(f"/p/{p.code}", status_code=303)
    return render(
        request, "feedback.html", study=study.spec, participant=p, progress=_progress(study, p), code=p.code, **shown
    )


@router.get("/p/{code}/guides")
def guides(request: Request, code: str, session: SessionDep, studies: StudiesDep, settings: SettingsDep) -> Response:
    """The study's species reference, opened from a trial (in its own tab: the trial stays put)."""
    visit = visiting(request, session, studies, settings, code)
    study = visit.study
    assert study.assets is not None
    images = [study.assets.url(g) for g in study.spec.guides]
    return render(
        request,
        "guides.html",
        study=study.spec,
        participant=visit.participant,
        code=visit.participant.code,
        images=images,
    )


@router.post("/p/{code}/event")
def event(
    request: Request, code: str, sent: PostedDep, session: SessionDep, studies: StudiesDep, settings: SettingsDep
) -> Response:
    """Client-side events worth monitoring (an image that failed to load). Small and optional."""
    visit = visiting(request, session, studies, settings, code)
    p, study = visit.participant, visit.study
    kind = sent.form.get("kind", "")
    if (
        visit.joining is not None
        or kind not in ("asset_error", "timeout")
        or sent.form.get("token") != page_token(settings.secret_key, p.code)
    ):
        return Response(status_code=400)
    svc.log_event(session, study, p, kind, p.cursor, {"what": sent.form.get("what", "")[:200]})
    return Response(status_code=204)


def _progress(study: LoadedStudy, p: Participant) -> dict[str, int]:
    """Pages done of all; a completed participant (on the last page, the thank-you) has done them all."""
    total = page_count(study)
    done = total if p.status == "completed" else min(p.cursor, total)
    return {"done": done, "total": total, "percent": round(100 * done / max(1, total))}


def _page(
    request: Request,
    session: SessionDep,
    settings: Settings,
    visit: Visit,
    page: Page,
    errors: dict[str, str] | None = None,
    status: int = 200,
    sent: Posted | None = None,
) -> Response:
    """Every page's common context, and what the page's step type shows. A page shown again
    after a validation error keeps what the participant had entered (`values`: each field's
    value; `chosen`: every checked value of each field)."""
    p, study = visit.participant, visit.study
    kind = step_type(page.step)
    context: dict[str, Any] = {
        "study": study.spec,
        "participant": p,
        "page": page,
        "step": page.step,
        "errors": errors or {},
        "values": sent.form if sent else {},
        "chosen": {k: sent.multi.get(k, [v]) for k, v in sent.form.items()} if sent else {},
        "token": page_token(settings.secret_key, p.code),
        "progress": _progress(study, p),
        "code": p.code,
        "now": dt.datetime.now(dt.UTC),
    }
    context |= kind.view(svc.showing(session, study, p, page, settings.prolific_url))
    return render(request, kind.template, status, **context)
