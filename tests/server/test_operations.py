"""Operating a study from the dashboard, over HTTP: open, pause and close it; a participant cap
and per-condition quotas; the participant links; the raw Prolific ids; the audit log of it all."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.bots import run_bots
from app.errors import StudyError
from app.main import create_app
from app.models import Assignment, AuditEntry, Participant
from app.settings import Settings
from app.studies.loader import LoadedStudy, parse
from app.studies.schema import Recruitment
from tests.server.conftest import REPO
from tests.server.helpers import advance, page, post, start
from tests.server.test_researcher import csrf_of, login, make_researcher

STUDY = "seagull-agreement"
DASH = f"/r/studies/{STUDY}"


def html_text(cell: str) -> str:
    """A table cell's text, as a reader sees it."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell))).strip()


def _arrive(client: TestClient, pid: str) -> Any:
    """Someone from Prolific opens the study link, in a browser of their own (no cookie of an
    earlier visit); Prolific's SESSION_ID is what lets them back in."""
    for name in [c.name for c in client.cookies.jar if c.name.startswith(("fm-p-", "fm-join-"))]:
        client.cookies.delete(name)
    return client.get(f"/s/{STUDY}?PROLIFIC_PID={pid}&STUDY_ID=st&SESSION_ID=se")


def _join(client: TestClient, pid: str) -> None:
    """A newcomer opens the link and agrees on the consent page: they take a place."""
    r = _arrive(client, pid)
    assert r.status_code == 303, r.text
    code = r.headers["location"].rsplit("/", 1)[-1]
    assert post(client, code, 0, choice="agree").status_code == 303


def _count(client: TestClient, model: type, **where: object) -> int:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return int(s.scalar(q) or 0)


def _audit(client: TestClient) -> list[tuple[str, dict | None, int | None]]:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        return [(e.action, e.detail, e.researcher_id) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


@pytest.fixture
def researcher(client: TestClient) -> TestClient:
    make_researcher(client)
    login(client)
    return client


def _state(client: TestClient, state: str) -> None:
    r = client.post(f"{DASH}/state", data={"state": state, "csrf": csrf_of(client, DASH)})
    assert r.status_code == 303 and r.headers["location"] == f"{DASH}#ops", r.text


def test_pause_close_and_open_from_the_dashboard(researcher: TestClient) -> None:
    client = researcher
    code = start(client, STUDY, pid="early")  # started while open: may finish whatever happens
    assert advance(client, code, choice="agree").status_code == 303
    _state(client, "paused")
    assert "Paused: new participants are turned away" in client.get(DASH).text
    r = _arrive(client, "late1")
    assert r.status_code == 503 and "This study is paused" in r.text
    assert "cc=FMRETURN2" in r.text and "FMRETURN2" in r.text  # Prolific's return code, to copy too
    assert _count(client, Participant, external_pid="late1") == 0  # nothing was stored about them
    assert client.get(f"/s/{STUDY}").status_code == 503  # without Prolific: the same page, no code
    assert "cc=" not in client.get(f"/s/{STUDY}").text
    assert page(client, code).h1  # the early one carries on
    assert _arrive(client, "early").status_code == 303  # and gets back in with their Prolific id

    _state(client, "closed")
    r = _arrive(client, "late2")
    assert r.status_code == 503 and "This study has closed" in r.text
    preview = client.post(f"{DASH}/preview", data={"condition": "heatmap", "csrf": csrf_of(client, DASH)})
    assert preview.status_code == 303  # researchers can still preview a closed study

    _state(client, "open")
    assert _arrive(client, "late3").status_code == 303
    me = _audit(client)
    assert [(a, d) for a, d, _ in me] == [
        ("study_paused", {"before": "open", "after": "paused"}),
        ("study_closed", {"before": "paused", "after": "closed"}),
        ("study_opened", {"before": "closed", "after": "open"}),
    ]
    assert all(who is not None for _, _, who in me)
    dashboard = client.get(DASH).text
    assert "study paused" in dashboard and "ada@example.org" in dashboard  # the log, on the page
    assert "<td>study closed</td>\n      <td>paused → closed</td>" in dashboard

    _state(client, "open")  # no change: nothing logged
    assert len(_audit(client)) == 3
    r = client.post(f"{DASH}/state", data={"state": "sleeping", "csrf": csrf_of(client, DASH)})
    assert r.status_code == 400 and "Nothing was stored" in r.text
    r = client.post(f"{DASH}/state", data={"state": "closed", "csrf": "forged"})
    assert r.status_code == 403 and len(_audit(client)) == 3
    assert "Open: new participants can start" in client.get(DASH).text


def test_a_cap_set_on_the_dashboard_turns_newcomers_away(researcher: TestClient) -> None:
    client = researcher
    r = client.post(f"{DASH}/limits", data={"cap": "2", "csrf": csrf_of(client, DASH)})
    assert r.status_code == 303
    _join(client, "one")
    _join(client, "two")
    r = _arrive(client, "three")
    assert r.status_code == 503 and "This study is full" in r.text and "cc=FMRETURN2" in r.text
    assert _arrive(client, "one").status_code == 303  # someone already in is never turned away
    page_text = client.get(DASH).text
    assert "Full: every place is taken" in page_text and "Places left: <strong>0</strong>" in page_text
    assert "full · " in client.get("/r/").text  # the studies list says so too

    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        for p in s.scalars(select(Participant).where(Participant.external_pid == "two")):
            p.status = "declined"  # declining frees the place
        s.commit()
    _join(client, "three")

    actions = [(a, d) for a, d, _ in _audit(client)]
    assert actions == [
        (
            "limits_changed",
            {"before": {"cap": None, "quotas": {}}, "after": {"cap": 2, "quotas": {}}},
        )
    ]
    for bad in ({"cap": "0"}, {"cap": "two"}, {"quota.heatmap": "-1"}, {"quota.nosuch": "3"}):
        r = client.post(f"{DASH}/limits", data={**bad, "csrf": csrf_of(client, DASH)})
        assert r.status_code == 400 and "Nothing was stored" in r.text, bad
    r = client.post(f"{DASH}/limits", data={"cap": "", "csrf": csrf_of(client, DASH)})  # empty: no limit
    assert r.status_code == 303
    _join(client, "four")
    assert len(_audit(client)) == 2
    assert (
        "<td>cap: no limit → 2</td>" in client.get(DASH).text and "<td>cap: 2 → no limit</td>" in client.get(DASH).text
    )


def test_quotas_steer_assignment_and_fill_the_study(
    client: TestClient, settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    make_researcher(client)
    login(client)
    study = studies[STUDY]
    form = {"quota.prediction": "1", "quota.heatmap": "1", "quota.examples": "1", "quota.concepts": "2"}
    assert client.post(f"{DASH}/limits", data={**form, "csrf": csrf_of(client, DASH)}).status_code == 303
    results = run_bots(study, 6, "oracle", None, 3, settings, studies, as_bots=False)  # as people: they count
    assert [r.status for r in results[:5]] == ["completed"] * 5
    assert results[5].status == "error 503: This study is full"
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        got = dict(s.execute(select(Assignment.condition, func.count()).group_by(Assignment.condition)).all())
    assert got == {"prediction": 1, "heatmap": 1, "examples": 1, "concepts": 2}
    text = client.get(DASH).text
    assert (
        'name="quota.concepts" class="text number" type="number" min="1" step="1" inputmode="numeric" value="2"' in text
    )


def _app_with(settings: Settings, studies: dict[str, LoadedStudy], recruitment: Recruitment) -> Iterator[TestClient]:
    changed = dataclasses.replace(
        studies[STUDY], spec=studies[STUDY].spec.model_copy(update={"recruitment": recruitment})
    )
    application = create_app(settings, {**studies, STUDY: changed})
    with TestClient(application, follow_redirects=False) as c:
        yield c
    application.state.engine.dispose()


def test_the_study_files_limits_apply_until_the_dashboard_sets_its_own(
    settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    codes = studies[STUDY].spec.prolific
    for client in _app_with(settings, studies, Recruitment(cap=1, prolific=codes)):
        _join(client, "a")
        assert _arrive(client, "b").status_code == 503
        make_researcher(client)
        login(client)
        assert "These limits come from the study file." in client.get(DASH).text
        assert client.post(f"{DASH}/limits", data={"cap": "5", "csrf": csrf_of(client, DASH)}).status_code == 303
        assert _arrive(client, "b").status_code == 303
        assert "Set here: they replace the study file" in client.get(DASH).text


def test_the_recruitment_section_is_checked(tmp_path: Path) -> None:
    source = (REPO / "studies" / f"{STUDY}.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(source.replace("recruitment:\n", "recruitment:\n  quotas: {nosuch: 3, heatmap: 0}\n"))
    with pytest.raises(StudyError) as e:
        parse(bad)
    assert "recruitment.quotas: a quota is at least 1 participant; check heatmap" in str(e.value)
    bad.write_text(source.replace("recruitment:\n", "recruitment:\n  quotas: {nosuch: 3}\n"))
    with pytest.raises(StudyError, match=r"recruitment\.quotas names conditions the study lacks: nosuch"):
        parse(bad)
    bad.write_text(source + "prolific: {completion_code: OLDPLACE}\n")  # where the codes were before
    with pytest.raises(StudyError, match="`prolific` now lives in the `recruitment` section"):
        parse(bad)


def test_the_participant_links_are_absolute_and_copyable(researcher: TestClient) -> None:
    text = researcher.get(DASH).text
    assert f'value="http://testserver/s/{STUDY}"' in text
    template = "?PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;STUDY_ID={{%STUDY_ID%}}&amp;SESSION_ID={{%SESSION_ID%}}"
    assert f'value="http://testserver/s/{STUDY}{template}"' in text
    assert text.count("data-copy=") == 2 and '<script src="/static/dashboard.js?v=' in text


def test_raw_prolific_ids_for_a_researcher_only_and_every_download_logged(
    client: TestClient, settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    run_bots(studies[STUDY], 2, "oracle", None, 4, settings, studies, as_bots=False)  # real participants' ids
    run_bots(studies[STUDY], 1, "oracle", None, 5, settings, studies)  # a bot's never are in the file
    assert advance(client, start(client, STUDY, pid="stillhere"), choice="agree").status_code == 303
    url = f"{DASH}/prolific-ids.csv"
    r = client.get(url)
    assert r.status_code == 303 and r.headers["location"] == "/r/login" and _audit(client) == []
    make_researcher(client)
    login(client)
    r = client.get(url)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert f'filename="{STUDY}-prolific-ids.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == [
        "participant",
        "prolific_pid",
        "prolific_study_id",
        "prolific_session_id",
        "status",
        "completion_code",
        "started_at",
        "completed_at",
    ]
    done = [row for row in rows if row["status"] == "completed"]
    assert len(done) == 2 and {row["completion_code"] for row in done} == {"FMAGREE1"}
    assert {row["prolific_study_id"] for row in done} == {"sim"} and {row["prolific_session_id"] for row in done} == {
        "s0",
        "s1",
    }
    assert all(row["prolific_pid"].startswith("bot4x") and row["completed_at"] for row in done)
    here = next(row for row in rows if row["prolific_pid"] == "stillhere")
    assert (here["status"], here["completion_code"], here["prolific_session_id"]) == ("active", "", "se")
    participants = csv.DictReader(io.StringIO(client.get(f"{DASH}/export/participants.csv").text))
    assert {row["participant"] for row in done} <= {row["participant"] for row in participants}  # linked
    client.get(url)
    assert [(a, d) for a, d, _ in _audit(client)] == [
        ("raw_ids_downloaded", {"file": "prolific-ids.csv"}),
        ("export_downloaded", {"file": "participants.csv"}),
        ("raw_ids_downloaded", {"file": "prolific-ids.csv"}),
    ]
    assert "raw ids downloaded" in client.get(DASH).text


def test_the_participant_page_shows_species_pictures_right_answers_and_questionnaires(
    client: TestClient, settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    from app.models import Response

    study = studies["seagull-learning"]
    names = study.class_names
    run_bots(study, 1, "random", None, 8, settings, studies)  # random answers: some right, some wrong
    make_researcher(client)
    login(client)
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        pid = s.scalar(select(Participant.id))
        trials = list(s.scalars(select(Response).where(Response.step_type == "trials").order_by(Response.page)))
    text = client.get(f"/r/studies/seagull-learning/participants/{pid}").text
    body = text[text.index('<table class="data trials-review">') :]
    rows = re.findall(r'<tr>\s*<th scope="row">(.*?)</tr>', body[: body.index("</table>")], re.S)
    assert len(rows) == len(trials) == 32
    for row_html, t in zip(rows, trials, strict=True):
        cells = [html_text(c) for c in re.findall(r"<td>(.*?)</td>", row_html, re.S)]
        species, model, answer, right, ok = cells[1:6]
        assert 'src="/asset/' in row_html and species == names[t.true_class]  # the picture and the species
        assert model.startswith(names[t.model_prediction])
        assert right == names[t.true_class] and answer == names[int(t.answer)]  # classify: the key is the species
        assert ok == ("yes" if t.correct else "no")
    assert {r.correct for r in trials} == {True, False}
    assert f"{sum(r.correct for r in trials)} of 32 answered right" in text
    for question in ("How old are you?", "How much do you know about birds?", "How did you tell the species apart?"):
        assert f'<th scope="row">{question}</th>' in text  # questionnaires as tables, by question text
    assert '<h2 id="form-1">About you</h2>' in text and "no comment" in text
    assert "attention (attention)" in text and "consent (consent)</td><td>agree" in text  # the other pages


def test_a_verify_trial_shows_the_right_verdict(
    client: TestClient, settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    run_bots(studies[STUDY], 1, "always-agree", None, 2, settings, studies)
    make_researcher(client)
    login(client)
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        pid = s.scalar(select(Participant.id))
    text = client.get(f"{DASH}/participants/{pid}").text
    assert text.count("<td>Yes, the model is right</td>") >= 8  # every answer, and the key of right models
    assert "<td>No, the model is wrong</td>" in text  # the key of the model's errors


def test_the_participant_list_filters_pages_and_refreshes(researcher: TestClient) -> None:
    import datetime as dt

    client = researcher
    for k in range(55):
        _join(client, f"p{k:02d}")
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        people = {p.external_pid: p for p in s.scalars(select(Participant))}
        for p in people.values():  # as if none had been assigned yet; then some of each kind
            p.condition, p.status = None, "started"
        for k in range(5):
            people[f"p{k:02d}"].status = "declined"
        for k in range(5, 8):  # idle for an hour: abandoned, though still "started" in the table
            people[f"p{k:02d}"].last_seen_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        for k in range(8, 12):
            people[f"p{k:02d}"].condition, people[f"p{k:02d}"].status = "heatmap", "active"
        s.commit()
        ids = {pid: p.id for pid, p in people.items()}

    def listed(query: str = "", **headers: str) -> tuple[str, list[int]]:
        r = client.get(f"{DASH}/participants{query}", headers=headers)
        assert r.status_code == 200, r.text
        return r.text, [int(i) for i in re.findall(r'<td><a href="/r/studies/[^/]+/participants/(\d+)">', r.text)]

    text, first = listed()
    assert "<html" in text and "55 participants" in text and "page 1 of 2" in text
    assert first == sorted(ids.values(), reverse=True)[:50]  # newest first, 50 a page
    assert f'href="/r/studies/{STUDY}/participants?page=2">Older' in text  # a plain link: no JavaScript needed
    text, second = listed("?page=2")
    assert second == sorted(ids.values(), reverse=True)[50:] and "← Newer" in text
    assert listed("?page=99")[1] == second  # past the end: the last page

    assert sorted(listed("?status=declined")[1]) == sorted(ids[f"p{k:02d}"] for k in range(5))
    text, abandoned = listed("?status=abandoned")
    assert sorted(abandoned) == sorted(ids[f"p{k:02d}"] for k in range(5, 8)) and "3 participants match" in text
    assert len(listed("?status=started")[1]) == 55 - 5 - 3 - 4
    assert sorted(listed("?condition=heatmap")[1]) == sorted(ids[f"p{k:02d}"] for k in range(8, 12))
    assert listed("?condition=heatmap&status=declined")[1] == []
    text, rows = listed("?condition=unassigned")
    assert len(rows) == 50 and "51 participants match these filters · page 1 of 2" in text
    text, _ = listed("?status=declined")
    assert f'href="/r/studies/{STUDY}/participants?status=declined&amp;condition=heatmap"' in text  # filters combine

    fragment, rows = listed("?status=started&page=1", **{"HX-Request": "true"})
    assert "<html" not in fragment and len(rows) == 43
    assert f'hx-get="/r/studies/{STUDY}/participants?status=started" hx-trigger="every 10s"' in fragment
    assert client.get(f"{DASH}/participants?status=sleeping").status_code == 400
    assert client.get(f"{DASH}/participants?condition=nosuch").status_code == 400
    r = client.get(f"{DASH}/participants?page=last")
    assert r.status_code == 400 and "page must be a page number" in r.text
    study_page = client.get(DASH).text
    assert f'hx-get="/r/studies/{STUDY}/participants" hx-trigger="every 10s"' in study_page  # live on the study page


def test_two_arrivals_at_once_do_not_overshoot_the_cap(client: TestClient, studies: dict[str, LoadedStudy]) -> None:
    """The second newcomer to agree waits for the first one's transaction (the study's lock row), then sees
    the place taken: without the lock both would see one place left."""
    import threading
    import time

    from app.errors import NotTaking
    from app.models import Study
    from app.services import entry, recruitment

    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    with sessions() as s:
        s.get(Study, STUDY).cap = 1  # type: ignore[union-attr]
        s.commit()
    study = studies[STUDY]
    first_in = threading.Event()
    outcomes: dict[str, object] = {}

    def arrive(pid: str) -> None:
        with sessions() as s:
            try:
                if pid == "b":
                    first_in.wait(10)
                recruitment.admit(s, study)  # as the consent answer does, before the row is made
                entry.join(s, study, entry.Joining(STUDY, entry.new_code(), pid))
                if pid == "a":
                    first_in.set()
                    time.sleep(0.5)  # the second arrival runs meanwhile
                s.commit()
                outcomes[pid] = "in"
            except NotTaking as e:
                outcomes[pid] = e.reason
            except Exception as e:  # reported by the assertion below
                outcomes[pid] = e

    threads = [threading.Thread(target=arrive, args=(pid,)) for pid in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes == {"a": "in", "b": "full"}
    assert _count(client, Participant) == 1


def test_a_participant_of_an_older_study_version_is_still_readable(
    client: TestClient, settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    """Their plan is not this file's: the page shows what the rows say, without guessing a key."""
    run_bots(studies[STUDY], 1, "oracle", None, 6, settings, studies)
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        p = s.scalars(select(Participant)).one()
        p.study_hash = "0" * 64  # as if they took an earlier version of the file
        s.commit()
        pid = p.id
    make_researcher(client)
    login(client)
    r = client.get(f"{DASH}/participants/{pid}")
    assert r.status_code == 200 and "20 of 20 answered right" in r.text
    assert 'src="/asset/' not in r.text and "I trust the model" not in r.text  # no plan: no pictures, ids only
    assert '<th scope="row">trust</th>' in r.text


def test_someone_on_the_consent_page_when_the_study_pauses_is_turned_away_as_they_agree(
    researcher: TestClient,
) -> None:
    client = researcher
    r = _arrive(client, "reading")  # the consent page is open: nothing is stored yet
    code = r.headers["location"].rsplit("/", 1)[-1]
    _state(client, "paused")
    r = post(client, code, 0, choice="agree")
    assert r.status_code == 503 and "This study is paused" in r.text and "cc=FMRETURN2" in r.text
    assert _count(client, Participant) == 0  # their consent made no participation
    _state(client, "open")
    assert post(client, code, 0, choice="agree").status_code == 303  # the same page, once open again
    assert _count(client, Participant, external_pid="reading") == 1
    assert post(client, code, 0, choice="agree").status_code == 303  # a double click: still one
    assert _count(client, Participant) == 1
