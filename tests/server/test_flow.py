"""The participant flow over HTTP, on SQLite and PostgreSQL."""

import datetime as dt
import re
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.models import Assignment, Participant, Response
from app.services import participation as svc
from tests.server.helpers import advance, current_index, page, post, start


def responses(client: TestClient) -> list[Response]:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        return list(s.scalars(select(Response).order_by(Response.id)))


def participant(client: TestClient, code: str) -> Participant:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        return s.scalar(select(Participant).where(Participant.code == code))


def through_screening(client: TestClient, code: str) -> None:
    assert advance(client, code, choice="agree").status_code == 303
    assert advance(client, code, q_age="34", q_birding="1").status_code == 303


def test_consent_questionnaire_and_assignment(client: TestClient) -> None:
    code = start(client, "seagull-learning")
    assert "Before you begin" in page(client, code).h1
    assert participant(client, code) is None  # nothing is stored before consent
    through_screening(client, code)
    p = participant(client, code)
    assert p.condition is None and p.cursor == 2  # the guide page needs no condition
    assert advance(client, code).status_code == 303  # field-mark guides
    p = participant(client, code)
    assert p.condition in {"none", "heatmap", "concepts", "sag"} and p.status == "active"
    rows = responses(client)
    assert [r.step_type for r in rows] == ["consent", "questionnaire", "instructions"]
    assert rows[1].values == {"age": 34, "birding": "I notice birds sometimes"}
    assert all(r.study_hash == p.study_hash for r in rows)
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        log = s.scalars(select(Assignment)).all()
    assert [(a.participant_id, a.condition) for a in log] == [(p.id, p.condition)]


def test_missing_answers_are_shown_again_and_nothing_is_stored(client: TestClient) -> None:
    code = start(client, "seagull-learning")
    advance(client, code, choice="agree")
    r = advance(client, code, q_birding="1")
    assert r.status_code == 422 and "Please answer this question." in r.text
    assert len(responses(client)) == 1
    r = advance(client, code, q_age="twelve", q_birding="1")
    assert r.status_code == 422 and "Please enter a number." in r.text
    r = advance(client, code, q_age="12.5", q_birding="1")
    assert r.status_code == 422 and "Please enter a whole number between 16 and 100." in r.text
    assert len(responses(client)) == 1


def test_screening_ends_with_the_screen_out_code(client: TestClient) -> None:
    code = start(client, "seagull-learning", pid="minor1")
    advance(client, code, choice="agree")
    advance(client, code, q_age="17", q_birding="0")
    p = participant(client, code)
    assert p.status == "screened_out" and p.condition is None
    r = client.get(f"/p/{code}")
    assert "not eligible" in r.text and "cc=FMSCREEN1" in r.text
    assert post(client, code, 2).status_code == 303 and participant(client, code).cursor == 1


def test_declining_consent_ends_politely(client: TestClient) -> None:
    code = start(client, "seagull-learning")
    advance(client, code, choice="decline")
    assert participant(client, code).status == "declined"
    assert "You chose not to take part" in client.get(f"/p/{code}").text


def test_refresh_back_and_typed_urls_land_on_the_right_page(client: TestClient) -> None:
    code = start(client, "seagull-learning")
    through_screening(client, code)
    here = current_index(page(client, code))
    assert here == 2 and current_index(page(client, code)) == 2  # a refresh changes nothing
    assert post(client, code, 0, choice="decline").status_code == 303  # the back button's stale form
    assert participant(client, code).status == "started"  # ...is ignored
    r = post(client, code, 9)
    assert r.status_code == 409 and "not open yet" in r.text
    assert client.get(f"/p/{code}/feedback/40").status_code == 303


def test_double_submissions_store_one_row_and_keep_the_first_answer(client: TestClient) -> None:
    code = start(client, "seagull-agreement")
    advance(client, code, choice="agree")
    advance(client, code)
    index = current_index(page(client, code))
    assert post(client, code, index, answer="yes").status_code == 303
    assert post(client, code, index, answer="no").status_code == 303
    trial = [r for r in responses(client) if r.step_type == "trials"]
    assert len(trial) == 1 and trial[0].answer == "yes"


def test_simultaneous_submissions_store_one_answer(client: TestClient) -> None:
    """A double click without JavaScript sends the same page twice at once. The second request
    starts while the first holds the participant (and waits before storing its answer); it must
    not read the participant before the first has committed, and stores nothing."""
    code = start(client, "seagull-agreement")
    advance(client, code, choice="agree")
    advance(client, code)
    index = current_index(page(client, code))
    study = client.app.state.studies["seagull-agreement"]  # type: ignore[attr-defined]
    first_loaded = threading.Event()
    outcomes: dict[str, object] = {}

    def submit(answer: str) -> None:
        with client.app.state.sessions() as s:  # type: ignore[attr-defined]
            try:
                if answer == "no":
                    first_loaded.wait(10)
                svc.lock(s, code)
                p = svc.participant_by_code(s, code)
                if answer == "yes":
                    first_loaded.set()
                    time.sleep(0.5)  # the second request runs meanwhile
                outcomes[answer] = svc.submit(s, study, p, index, {"answer": answer}).advanced
                s.commit()
            except Exception as e:  # reported by the assertion below
                outcomes[answer] = e

    threads = [threading.Thread(target=submit, args=(a,)) for a in ("yes", "no")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes == {"yes": True, "no": False}
    trial = [r for r in responses(client) if r.step_type == "trials"]
    assert len(trial) == 1 and trial[0].answer == "yes"
    assert participant(client, code).cursor == index + 1


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"answer": "maybe"}, 400, "not one of the options"),
        ({"answer": "yes", "stage": "3"}, 400, None),
    ],
)
def test_forged_fields_are_refused_and_nothing_is_stored(
    client: TestClient, fields: dict[str, str], status: int, message: str | None
) -> None:
    code = start(client, "seagull-agreement")
    advance(client, code, choice="agree")
    advance(client, code)
    before = len(responses(client))
    r = post(client, code, current_index(page(client, code)), **fields)
    if fields.get("stage") == "3":  # not a two-stage block: the field is simply not used
        assert r.status_code == 303
        return
    assert r.status_code == status and message in r.text and "Nothing was stored" in r.text
    assert len(responses(client)) == before


def test_bad_tokens_codes_and_bodies(client: TestClient) -> None:
    code = start(client, "seagull-agreement")
    r = client.post(f"/p/{code}", data={"page": "0", "token": "forged", "choice": "agree"})
    assert r.status_code == 403 and "did not come from your study page" in r.text
    assert client.get("/p/not-a-code").status_code == 404
    assert client.get("/s/no-such-study").status_code == 404
    r = client.post(f"/p/{code}", data={"page": "0", "token": "x", "big": "y" * 70_000})
    assert r.status_code == 413
    r = client.post(f"/p/{code}", files={"answer": ("a.txt", b"x")}, data={"page": "0"})
    assert r.status_code in (400, 403)
    assert client.get("/s/seagull-agreement?PROLIFIC_PID=bad%20id").status_code == 400
    assert responses(client) == []


def test_one_participation_per_prolific_id(client: TestClient) -> None:
    code = start(client, "sag-counterfactual", pid="p123")
    assert start(client, "sag-counterfactual", pid="p123") == code  # the consent page again, same code
    advance(client, code, choice="agree")
    assert start(client, "sag-counterfactual", pid="p123") == code  # back with the same id: resumed
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        p = s.scalar(select(Participant).where(Participant.code == code))
        p.status = "completed"
        s.commit()
    r = client.get("/s/sag-counterfactual?PROLIFIC_PID=p123")
    assert r.status_code == 409 and "already" in r.text
    assert participant(client, code).external_study == "st"


def test_the_link_or_cookie_resumes(client: TestClient) -> None:
    code = start(client, "sag-counterfactual")
    advance(client, code, choice="agree")
    r = client.get("/s/sag-counterfactual")  # the cookie brings them back
    assert r.headers["location"] == f"/p/{code}"
    assert current_index(page(client, code)) == 1


def test_balanced_assignment_with_idle_release(client: TestClient) -> None:
    codes = []
    for k in range(8):
        code = start(client, "sag-counterfactual", pid=f"b{k}")
        advance(client, code, choice="agree")
        codes.append(code)
    conditions = [participant(client, c).condition for c in codes]
    assert conditions.count("heatmap") == conditions.count("sag") == 4
    # the heatmap participants go idle past the timeout: their slots are released
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        for p in s.scalars(select(Participant).where(Participant.condition == "heatmap")):
            p.last_seen_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        s.commit()
    fresh = start(client, "sag-counterfactual", pid="late")
    advance(client, fresh, choice="agree")
    assert participant(client, fresh).condition == "heatmap"
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(Assignment)) == 9


def test_feedback_follows_the_answer_and_names_the_right_one(client: TestClient) -> None:
    code = start(client, "seagull-agreement")
    advance(client, code, choice="agree")
    advance(client, code)
    r = advance(client, code, answer="yes")
    assert r.status_code == 303 and re.search(r"/feedback/\d+$", r.headers["location"])
    fb = client.get(r.headers["location"])
    assert fb.status_code == 200 and ("Correct" in fb.text or "Not quite" in fb.text)
    assert "The model said" in fb.text


def test_repeated_fields_are_refused(client: TestClient) -> None:
    code = start(client, "seagull-agreement")
    advance(client, code, choice="agree")
    advance(client, code)
    index = current_index(page(client, code))
    from app.web import page_token
    from tests.server.conftest import SECRET

    body = f"page={index}&token={page_token(SECRET, code)}&answer=yes&answer=no"
    r = client.post(f"/p/{code}", content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "was sent more than once" in r.text
    assert [x for x in responses(client) if x.step_type == "trials"] == []
