"""Who may enter a participation: nothing before consent, no takeover by a Prolific id, one
participation per person, declining has its own way back to Prolific, and devices."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.bots import run_bots
from app.main import create_app
from app.models import Participant, Response
from app.settings import Settings
from app.studies.loader import LoadedStudy, load_study
from app.web import page_token
from tests.server.conftest import REPO, SECRET
from tests.server.helpers import advance, page, post, start


def _count(client: TestClient, table: type = Participant) -> int:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def _row(client: TestClient, code: str) -> Participant | None:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        return s.scalar(select(Participant).where(Participant.code == code))


def test_opening_a_link_stores_nothing_until_consent(client: TestClient) -> None:
    for k in range(3):  # link previews and crawlers: with and without cookies, following the redirect
        r = client.get(f"/s/seagull-learning?PROLIFIC_PID=crawl{k}&STUDY_ID=st&SESSION_ID=se{k}")
        assert r.status_code == 303
        assert client.get(r.headers["location"]).status_code == 200  # the consent page
    with TestClient(client.app, follow_redirects=True) as bare:
        assert bare.get("/s/seagull-learning").status_code in (200, 404)
    assert _count(client) == 0 and _count(client, Response) == 0
    code = start(client, "seagull-learning", pid="real1")
    assert "Before you begin" in page(client, code).h1 and _row(client, code) is None
    assert advance(client, code, choice="agree").status_code == 303
    p = _row(client, code)
    assert p is not None and p.cursor == 1 and p.external_pid == "real1" and p.origin == "real"
    assert _count(client) == 1


def test_a_double_click_on_agree_makes_one_participation(client: TestClient) -> None:
    code = start(client, "seagull-learning")
    assert post(client, code, 0, choice="agree").status_code == 303
    assert post(client, code, 0, choice="agree").status_code == 303  # stale: changes nothing
    assert _count(client) == 1 and _count(client, Response) == 1


def test_a_prolific_id_alone_does_not_take_over_a_participation(client: TestClient) -> None:
    code = start(client, "seagull-learning", pid="victim")  # SESSION_ID=se
    advance(client, code, choice="agree")
    with TestClient(client.app, follow_redirects=False) as stranger:  # a fresh browser, B's id only
        for query in ("PROLIFIC_PID=victim", "PROLIFIC_PID=victim&STUDY_ID=st&SESSION_ID=guess"):
            r = stranger.get(f"/s/seagull-learning?{query}")
            assert r.status_code == 409 and code not in r.text and code not in r.headers.get("location", "")
            assert "already started this study" in r.text
        # the same submission opened from Prolific on a new device carries its SESSION_ID: it resumes
        r = stranger.get("/s/seagull-learning?PROLIFIC_PID=victim&STUDY_ID=st&SESSION_ID=se")
        assert r.status_code == 303 and r.headers["location"] == f"/p/{code}"
    assert _count(client) == 1


def test_finished_participants_coming_back_are_told_so(client: TestClient) -> None:
    code = start(client, "seagull-learning")  # no Prolific id: the cookie is all that brings them back
    advance(client, code, choice="agree")
    r = advance(client, code, q_age="16", q_birding="1")  # screened out: under 18
    assert r.status_code == 303 and _row(client, code).status == "screened_out"  # type: ignore[union-attr]
    r = client.get("/s/seagull-learning")
    assert r.status_code == 409 and "You have already taken part" in r.text
    pid = start(client, "seagull-learning", pid="done1")
    advance(client, pid, choice="agree")
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        s.get(Participant, _row(client, pid).id).status = "completed"  # type: ignore[union-attr]
        s.commit()
    with TestClient(client.app, follow_redirects=False) as other:  # the Prolific id, on another browser
        r = other.get("/s/seagull-learning?PROLIFIC_PID=done1&STUDY_ID=st&SESSION_ID=new")
        assert r.status_code == 409 and "You have already taken part" in r.text
    assert _count(client) == 2


def test_declining_sends_the_no_consent_code_never_the_others(client: TestClient) -> None:
    code = start(client, "seagull-learning", pid="nope1")
    assert advance(client, code, choice="decline").status_code == 303
    p = _row(client, code)
    assert p is not None and p.status == "declined"
    ended = client.get(f"/p/{code}").text
    assert "cc=FMNOCONS1" in ended and "FMSCREEN1" not in ended and "FMLEARN1" not in ended
    again = client.get("/s/seagull-learning?PROLIFIC_PID=nope1&STUDY_ID=st&SESSION_ID=se")
    assert again.status_code == 409 and "chose not to take part" in again.text and "FMSCREEN1" not in again.text


def test_declining_without_a_no_consent_code_asks_for_a_return(client: TestClient) -> None:
    code = start(client, "sag-counterfactual", pid="nope2")  # not a Prolific study: no code to send
    advance(client, code, choice="decline")
    ended = client.get(f"/p/{code}").text
    assert "cc=" not in ended


def test_device_is_recorded_and_trial_tab_state(client: TestClient) -> None:
    code = start(client, "seagull-learning")
    fields = {"device_class": "phone", "viewport_w": "390", "viewport_h": "844", "screen_w": "390", "screen_h": "844"}
    assert post(client, code, 0, choice="agree", **fields).status_code == 303
    p = _row(client, code)
    assert p is not None and (p.device_class, p.viewport_w, p.viewport_h, p.screen_w, p.screen_h) == (
        "phone",
        390,
        844,
        390,
        844,
    )
    other = start(client, "seagull-agreement")
    post(client, other, 0, choice="agree", viewport_w="-5", screen_w="99999999999")  # nonsense is dropped
    q = _row(client, other)
    assert q is not None and q.viewport_w is None and q.screen_w is None and q.device_class == "desktop"


def test_origins_stay_out_until_asked_for_and_can_be_deleted(
    client: TestClient, settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    from app.models import AuditEntry
    from tests.server.test_researcher import csrf_of, login, make_researcher

    study = "seagull-agreement"
    run_bots(studies[study], 2, "oracle", None, 11, settings, studies)  # marked as bots
    real = start(client, study, pid="human1")
    advance(client, real, choice="agree")
    make_researcher(client)
    login(client)
    r = client.post(f"/r/studies/{study}/preview", data={"condition": "heatmap", "csrf": csrf_of(client)})
    assert r.status_code == 303
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        origins = sorted(s.scalars(select(Participant.origin)))
    assert origins == ["bot", "bot", "pilot", "real"]
    people = client.get(f"/r/studies/{study}/export/participants.csv").text.splitlines()
    assert len(people) == 2 and ",real," in people[1]  # real only, by default
    every = client.get(f"/r/studies/{study}/export/participants.csv?origins=all")
    assert "all-origins" in every.headers["content-disposition"]
    assert sorted(row["origin"] for row in csv.DictReader(io.StringIO(every.text))) == ["bot", "bot", "pilot", "real"]
    trials = client.get(f"/r/studies/{study}/export/trials.csv?origins=all").text.splitlines()
    assert len(trials) == 1 + 2 * 20 and all(",bot," in t for t in trials[1:])
    assert client.get(f"/r/studies/{study}/export/trials.csv?origins=some").status_code == 422

    form = client.get(f"/r/studies/{study}/delete?what=non-real")
    assert form.status_code == 200 and "removes 3 participations" in form.text
    token = csrf_of(client, f"/r/studies/{study}/delete?what=non-real")
    wrong = client.post(f"/r/studies/{study}/delete", data={"what": "non-real", "confirm": "nope", "csrf": token})
    assert wrong.status_code == 400 and "nothing was deleted" in wrong.text
    forged = client.post(f"/r/studies/{study}/delete", data={"what": "non-real", "confirm": study, "csrf": "x"})
    assert forged.status_code == 403
    assert _count(client) == 4
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        theirs = s.scalar(
            select(func.count()).select_from(Response).join(Participant).where(Participant.origin != "real")
        )
    assert theirs and theirs > 2 * 20
    done = client.post(f"/r/studies/{study}/delete", data={"what": "non-real", "confirm": study, "csrf": token})
    assert done.status_code == 303
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert list(s.scalars(select(Participant.origin))) == ["real"]
        log = s.scalars(select(AuditEntry)).all()
    assert [(e.action, e.study_id, e.detail) for e in log if e.action != "export_downloaded"] == [
        ("delete_non_real", study, {"participants": 3, "answers": theirs})
    ]
    assert {"origins": "all"} in [{k: v for k, v in (e.detail or {}).items() if k == "origins"} for e in log]
    reset = client.post(f"/r/studies/{study}/delete", data={"what": "all", "confirm": study, "csrf": token})
    assert reset.status_code == 303 and _count(client) == 0 and _count(client, Response) == 0


def test_a_study_can_require_a_desktop_and_a_minimum_window(
    tmp_path: Path, settings: Settings, studies: dict[str, LoadedStudy], assets_dir: Path
) -> None:
    source = (REPO / "studies" / "seagull-agreement.yaml").read_text()
    source = (
        source.replace("id: seagull-agreement", "id: desk-only", 1) + "device: {desktop_only: true, min_width: 1000}\n"
    )
    source = source.replace("avoid_stimuli_of: [seagull-learning]\n", "")  # loaded alone here
    (tmp_path / "desk.yaml").write_text(source)
    desk = {"desk-only": load_study(tmp_path / "desk.yaml", assets_dir, SECRET, studies)}  # it avoids their pictures
    app = create_app(settings, desk)
    try:
        with TestClient(app, follow_redirects=False) as client:
            small = {"device_class": "desktop", "viewport_w": "800", "viewport_h": "700"}
            phone_ua = {"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile Safari"}
            for fields, headers in ((small, {}), ({"device_class": "phone"}, {}), ({}, phone_ua)):
                code = start(client, "desk-only")
                data = {"page": "0", "token": page_token(SECRET, code), "choice": "agree", **fields}
                r = client.post(f"/p/{code}", data=data, headers=headers)
                assert r.status_code == 403 and "This study needs a larger screen" in r.text
            assert _count(client) == 0  # nothing stored: they may come back on a computer
            code = start(client, "desk-only")
            ok = {"device_class": "desktop", "viewport_w": "1366", "viewport_h": "850"}
            assert post(client, code, 0, choice="agree", **ok).status_code == 303
            declined = start(client, "desk-only", pid="phone-no")  # declining is never blocked
            assert post(client, declined, 0, choice="decline", device_class="phone").status_code == 303
            assert _count(client) == 2
    finally:
        app.state.engine.dispose()
