"""Participant pages. Every page is a plain form (works without JavaScript); htmx only smooths it.

GET /s/{study} enters (Prolific ids captured), GET /p/{code} shows the page the server says the
participant is on, POST /p/{code} answers it and redirects (303) back. Pages never contain the
answer key: the true class and the model's correctness stay on the server until feedback.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.assets.manifest import Concepts, Examples, Heatmap, Sag
from app.models import Participant
from app.services import participation as svc
from app.studies.loader import LoadedStudy, explanation_for
from app.studies.pages import Page, page_count
from app.studies.schema import Attention, Break, Completion, Consent, Instructions, Questionnaire, Trials
from app.web import SessionDep, page_token, render

router = APIRouter()
COOKIE = "fm-p-"


def _study(request: Request, study_id: str) -> LoadedStudy | None:
    return request.app.state.studies.get(study_id)


def _error(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", status=status, title=title, message=message)


@router.get("/s/{study_id}")
def enter(request: Request, study_id: str, session: SessionDep) -> Response:
    study = _study(request, study_id)
    if study is None:
        return _error(
            request, 404, "Study not found", "There is no study at this address. Check the link you were given."
        )
    q = request.query_params
    try:
        p, is_new = svc.enter(
            session,
            study,
            q.get("PROLIFIC_PID"),
            q.get("STUDY_ID"),
            q.get("SESSION_ID"),
            request.cookies.get(COOKIE + study_id),
        )
    except svc.Rejected as exc:
        return _error(request, exc.status, "This link is not valid", str(exc))
    if not is_new and p.status not in ("started", "active"):
        session.commit()
        return render(request, "already.html", status=409, study=study.spec, participant=p)
    svc.touch(study, p)
    session.commit()
    response = RedirectResponse(f"/p/{p.code}", status_code=303)
    response.set_cookie(
        COOKIE + study_id,
        p.code,
        max_age=30 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies,
    )
    return response


def _participant(request: Request, session: SessionDep, code: str) -> tuple[Participant, LoadedStudy] | Response:
    p = svc.participant_by_code(session, code)
    study = _study(request, p.study_id) if p else None
    if p is None or study is None:
        return _error(
            request,
            404,
            "Link not recognised",
            "This participant link is not valid. Use the link you were given to start the study.",
        )
    if p.study_hash != study.content_hash:
        return _error(
            request,
            409,
            "The study has changed",
            "This study was updated after you started. Please contact the researcher.",
        )
    return p, study


@router.get("/p/{code}")
def show(request: Request, code: str, session: SessionDep) -> Response:
    found = _participant(request, session, code)
    if isinstance(found, Response):
        return found
    p, study = found
    svc.touch(study, p)
    session.commit()
    if p.status in ("screened_out", "declined"):
        return _ended(request, study, p)
    return _page(request, study, p, svc.current(study, p), session)


@router.post("/p/{code}")
async def answer(request: Request, code: str, session: SessionDep) -> Response:
    form_data = await request.form()
    # The form is read on the event loop; the database work blocks, so it runs in the thread pool
    # (on the loop, one request waiting for a pooled connection stalls every other request).
    return await run_in_threadpool(_answer, request, code, session, form_data)


def _answer(request: Request, code: str, session: SessionDep, form_data: Any) -> Response:
    svc.lock(session, code)
    found = _participant(request, session, code)
    if isinstance(found, Response):
        return found
    p, study = found
    form: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key in form_data:
        values = form_data.getlist(key)
        if any(not isinstance(v, str) for v in values):
            return _error(request, 400, "Unexpected upload", "This study does not accept files. Nothing was stored.")
        if len(values) > 1:
            multi[key] = list(values)
        form[key] = values[-1]
        if len(key) > 64:
            return _error(request, 400, "Unexpected field", "The form had a field this page does not ask for.")
    if form.get("token") != page_token(request.app.state.settings.secret_key, p.code):
        return _error(
            request,
            403,
            "Form expired",
            "This form did not come from your study page. Go back to your study link and continue there.",
        )
    try:
        page_index = int(form.get("page", ""))
    except ValueError:
        return _error(request, 400, "Missing page", "The form did not say which page it answers. Nothing was stored.")
    try:
        outcome = svc.submit(session, study, p, page_index, form, multi)
    except svc.Invalid as invalid:
        session.rollback()
        page = svc.current(study, p)
        return _page(request, study, p, page, session, errors=invalid.errors, status=422)
    except svc.Rejected as exc:
        session.rollback()
        return _error(request, exc.status, "This answer was not accepted", f"{exc} Nothing was stored.")
    session.commit()  # the answer is safe before anything else happens
    if outcome.feedback_page is not None:
        return RedirectResponse(f"/p/{code}/feedback/{outcome.feedback_page}", status_code=303)
    return RedirectResponse(f"/p/{code}", status_code=303)


@router.get("/p/{code}/feedback/{page_index}")
def feedback(request: Request, code: str, page_index: int, session: SessionDep) -> Response:
    found = _participant(request, session, code)
    if isinstance(found, Response):
        return found
    p, study = found
    pages = svc.pages_of(study, p)
    if not 0 <= page_index < len(pages) or page_index >= p.cursor:
        return RedirectResponse(f"/p/{code}", status_code=303)
    page = pages[page_index]
    row = svc.response_for(session, p, page.key)
    if not isinstance(page.step, Trials) or not page.step.feedback or row is None or page.item is None:
        return RedirectResponse(f"/p/{code}", status_code=303)
    names = _class_names(study)
    it = page.item
    step = page.step
    detail = {
        "classify": f"This is a {names[it.true_class]}.",
        "simulate": f"The model said {names[it.predicted_class]}.",
        "verify": f"The model said {names[it.predicted_class]}; this is a {names[it.true_class]}, so the model was "
        f"{'right' if it.model_correct else 'wrong'}.",
        "counterfactual": "",
    }[step.task]
    if step.task == "counterfactual" and it.question:
        q = it.question
        detail = (
            f"Image {q.higher.upper()} keeps more of the model's confidence: image A keeps "
            f"{_pct(q.a.confidence)}, image B keeps {_pct(q.b.confidence)}."
        )
    return render(
        request,
        "feedback.html",
        study=study.spec,
        participant=p,
        correct=bool(row.correct),
        detail=detail,
        image=study.assets.url(study.entries[it.image_id].image) if study.assets else "",
        progress=_progress(study, p),
        code=code,
        timed_out=bool(row.values and row.values.get("timed_out")),
    )


@router.post("/p/{code}/event")
async def event(request: Request, code: str, session: SessionDep) -> Response:
    """Client-side events worth monitoring (an image that failed to load). Small and optional."""
    form = await request.form()
    return await run_in_threadpool(_event, request, code, session, form)


def _event(request: Request, code: str, session: SessionDep, form: Any) -> Response:
    found = _participant(request, session, code)
    if isinstance(found, Response):
        return found
    p, study = found
    kind = str(form.get("kind", ""))
    if kind not in ("asset_error", "timeout") or form.get("token") != page_token(
        request.app.state.settings.secret_key, p.code
    ):
        return Response(status_code=400)
    svc.log_event(session, study, p, kind, p.cursor, {"what": str(form.get("what", ""))[:200]})
    session.commit()
    return Response(status_code=204)


# -- rendering ------------------------------------------------------------------------------------
def _pct(v: float) -> str:
    return "more than 100%" if v > 1 else f"{round(v * 100)}%"


def _class_names(study: LoadedStudy) -> dict[int, str]:
    return {c.id: c.name for c in study.manifest.classes}


def _progress(study: LoadedStudy, p: Participant) -> dict[str, int]:
    total = page_count(study)
    return {"done": min(p.cursor, total), "total": total, "percent": round(100 * min(p.cursor, total) / max(1, total))}


def _ended(request: Request, study: LoadedStudy, p: Participant) -> Response:
    code = study.spec.prolific.screen_out_code if study.spec.prolific and p.external_pid else None
    url = f"{request.app.state.settings.prolific_url}?{urlencode({'cc': code})}" if code else None
    return render(request, "ended.html", study=study.spec, participant=p, prolific_url=url)


def _page(
    request: Request,
    study: LoadedStudy,
    p: Participant,
    page: Page,
    session: SessionDep,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    settings = request.app.state.settings
    ctx: dict[str, Any] = {
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
    step = page.step
    assets = study.assets
    assert assets is not None
    if isinstance(step, Consent):
        return render(request, "consent.html", status, **ctx, text=study.spec.consent)
    if isinstance(step, Instructions):
        images = [assets.url(i) for i in step.images]
        intro = _method_intro(study, p) if step.explain_method else None
        return render(request, "instructions.html", status, **ctx, images=images, intro=intro)
    if isinstance(step, Questionnaire):
        return render(request, "questionnaire.html", status, **ctx)
    if isinstance(step, Attention):
        return render(request, "attention.html", status, **ctx)
    if isinstance(step, Break):
        return render(request, "break.html", status, **ctx)
    if isinstance(step, Completion):
        code = study.spec.prolific.completion_code if study.spec.prolific and p.external_pid else None
        url = f"{settings.prolific_url}?{urlencode({'cc': code})}" if code and p.status == "completed" else None
        return render(request, "completion.html", status, **ctx, prolific_url=url)
    assert isinstance(step, Trials)
    return render(request, "trial.html", status, **ctx, **_trial_view(study, p, page, session))


def _method_intro(study: LoadedStudy, p: Participant) -> dict[str, Any]:
    """What the participant's explanation looks like, and for concepts the galleries of each class."""
    condition = study.spec.condition(p.condition or "")
    intro: dict[str, Any] = {
        "kind": condition.explanation,
        "show_prediction": condition.show_prediction,
        "show_confidence": condition.show_confidence,
        "galleries": [],
    }
    if condition.explanation == "concepts" and study.manifest.xnn and study.assets:
        names = _class_names(study)
        for cc in study.manifest.xnn.classes:
            concepts = [
                {"number": ci.concept, "images": [study.assets.url(g.overlay) for g in ci.gallery]}
                for ci in cc.concepts
                if ci.gallery and ci.mean_contribution > 0
            ]
            if concepts:
                intro["galleries"].append({"species": names[cc.class_id], "concepts": concepts})
    return intro


def _trial_view(study: LoadedStudy, p: Participant, page: Page, session: SessionDep) -> dict[str, Any]:
    step = page.step
    it = page.item
    assert isinstance(step, Trials) and it is not None and study.assets is not None
    names = _class_names(study)
    condition = study.spec.condition(p.condition or "")
    existing = svc.response_for(session, p, page.key) if step.two_stage else None
    stage = 2 if existing is not None and not existing.complete else 1
    entry = study.entries[it.image_id]
    advice = step.explanation and (not step.two_stage or stage == 2)
    explanation = _explanation_view(study, entry, condition) if advice else None
    show_prediction = step.task in ("verify", "counterfactual") or (advice and condition.show_prediction)
    if step.task == "simulate":
        show_prediction = False
    options = (
        [{"value": v, "label": names[int(v)]} for v in svc.task_answers(study, page)]
        if step.task in ("classify", "simulate")
        else [{"value": "yes", "label": "Yes, the model is right"}, {"value": "no", "label": "No, the model is wrong"}]
        if step.task == "verify"
        else [{"value": "a", "label": "Image A"}, {"value": "b", "label": "Image B"}]
    )
    prompt = (
        step.prompt
        or {
            "classify": "Which species is this gull?",
            "verify": "Is the model's answer right?",
            "simulate": "Which species will the model say this is?",
            "counterfactual": "Which image keeps more of the model's confidence?",
        }[step.task]
    )
    pages = svc.pages_of(study, p)
    nxt = pages[page.index + 1] if page.index + 1 < len(pages) else None
    preload = [study.assets.url(study.entries[nxt.item.image_id].image)] if nxt and nxt.item else []
    versions = None
    if step.task == "counterfactual" and it.question:
        versions = [
            {"label": "Image A", "url": study.assets.url(it.question.a.image)},
            {"label": "Image B", "url": study.assets.url(it.question.b.image)},
        ]
    first = None
    if stage == 2 and existing is not None and existing.first_answer is not None:
        first = next((o["label"] for o in options if o["value"] == existing.first_answer), existing.first_answer)
    return {
        "image": study.assets.url(entry.image),
        "prompt": prompt,
        "options": options,
        "stage": stage,
        "explanation": explanation,
        "versions": versions,
        "first_answer": first,
        "prediction": names[it.predicted_class] if show_prediction else None,
        "confidence_shown": _pct(it.confidence) if show_prediction and condition.show_confidence else None,
        "preload": preload,
        "time_limit": step.time_limit_s,
    }


def _explanation_view(study: LoadedStudy, entry: Any, condition: Any) -> dict[str, Any] | None:
    found = explanation_for(entry, condition)
    assets = study.assets
    assert assets is not None
    if found is None:
        return None
    if isinstance(found, Heatmap):
        return {"kind": "heatmap", "url": assets.url(found.overlay)}
    if isinstance(found, Concepts):
        return {"kind": "concepts", "url": assets.url(found.card), "summary": found.summary}
    if isinstance(found, Sag):
        return {"kind": "sag", "svg": (study.run / found.diagram_svg).read_text(encoding="utf-8")}
    if isinstance(found, Examples):
        names = _class_names(study)
        return {
            "kind": "examples",
            "neighbours": [{"url": assets.url(n.image), "label": names[n.true_class]} for n in found.neighbours],
        }
    return None
