"""A researcher operates a study in real Chromium (Debian's, via Playwright): pauses it, sees a
newcomer turned away politely (with Prolific's return code) on a phone, sets a cap, opens it
again, copies the Prolific link, downloads the raw ids, filters the participant list and reads
a participant's answers. Every dashboard page is looked at on a desktop (1366x850) and a phone
(390x844): no sideways scrolling, no console errors; screenshots under test-artifacts/."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pytest

from app.bots import local_server, run_bots
from app.settings import Settings
from app.studies.loader import LoadedStudy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "operations"
DESKTOP = {"width": 1366, "height": 850}
PHONE = {"width": 390, "height": 844}
STUDY = "seagull-agreement"
PASSWORD = "correct horse battery staple"

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed")]


@pytest.fixture(params=["sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:  # one database is enough for the browser
    from app.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    upgrade(url)
    return url


def _console(errors: list[str], message: Any) -> None:
    """Keep a console error, except the favicon's 404 (the participant pages' suite checks that one)."""
    if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
        errors.append(f"{message.text} ({message.location.get('url')})")


def _fits(page: Any, name: str) -> None:
    """The page has no sideways scrolling and is kept as a screenshot."""
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    page.screenshot(path=str(ARTIFACTS / f"{name}-{viewport}.png"), full_page=True)
    assert width <= viewport, f"{name} at {viewport} px is {width} px wide"


def test_a_researcher_operates_a_study_in_chromium(
    settings: Settings, studies: dict[str, LoadedStudy], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from app.db import make_engine, session_factory, transaction
    from app.services.accounts import add_researcher

    engine = make_engine(settings.db_url)
    with transaction(session_factory(engine)) as s:
        add_researcher(s, "ada@example.org", PASSWORD)
    engine.dispose()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    study = studies[STUDY]
    with local_server(settings, studies) as base, sync_playwright() as pw:
        run_bots(study, 3, "oracle", base, 12, settings, studies, as_bots=False)  # participants to look at
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        errors: list[str] = []
        desk = browser.new_context(viewport=DESKTOP, accept_downloads=True)
        desk.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = desk.new_page()
        page.on("console", lambda m: _console(errors, m))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{base}/r/login")
        page.get_by_label("E-mail").fill("ada@example.org")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("link", name=study.spec.title).click()
        expect(page.get_by_text("Open: new participants can start.")).to_be_visible()
        _fits(page, "study")

        # the absolute link and Prolific's template, copied with one click
        prolific = page.get_by_label("Study URL for Prolific (Prolific fills in the three ids)")
        ids = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
        expected = f"{base}/s/{STUDY}?{ids}"
        expect(prolific).to_have_value(expected)
        copy = page.get_by_role("button", name="Copy the Prolific study URL")
        copy.click()
        expect(copy).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == expected

        # pause: a newcomer from Prolific, on a phone, is turned away with the return code
        page.get_by_role("button", name="Pause").click()
        expect(page.get_by_text("Paused: new participants are turned away")).to_be_visible()
        phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
        turned_away: list[str] = []  # the browser reports the page's status (503) as a console error
        phone.on("console", lambda m: _console(turned_away, m))
        phone.goto(f"{base}/s/{STUDY}?PROLIFIC_PID=newcomer1&STUDY_ID=st&SESSION_ID=se")
        expect(phone.get_by_role("heading", name="This study is paused")).to_be_visible()
        back = phone.get_by_role("link", name="Back to Prolific")
        assert "cc=FMRETURN2" in (back.get_attribute("href") or "")
        expect(phone.get_by_text("FMRETURN2", exact=True)).to_be_visible()
        _fits(phone, "paused-participant")

        # a cap of 3 (already reached by the bots), then open: still full
        page.get_by_label("All conditions (cap)").fill("3")
        page.get_by_role("button", name="Save limits").click()
        page.get_by_role("button", name="Open the study").click()
        expect(page.get_by_text("Full: every place is taken")).to_be_visible()
        phone.goto(f"{base}/s/{STUDY}?PROLIFIC_PID=newcomer2&STUDY_ID=st&SESSION_ID=se")
        expect(phone.get_by_role("heading", name="This study is full")).to_be_visible()
        page.get_by_label("All conditions (cap)").fill("")
        page.get_by_role("button", name="Save limits").click()
        expect(page.get_by_text("Open: new participants can start.")).to_be_visible()
        phone.goto(f"{base}/s/{STUDY}?PROLIFIC_PID=newcomer2&STUDY_ID=st&SESSION_ID=se")
        expect(phone.get_by_role("heading", name="Before you begin")).to_be_visible()

        # the raw ids, and the log of every step above
        with page.expect_download() as info:
            page.get_by_role("link", name="prolific-ids.csv").click()
        info.value.save_as(tmp_path / "ids.csv")
        rows = list(csv.DictReader((tmp_path / "ids.csv").open()))
        assert len([r for r in rows if r["status"] == "completed"]) == 3
        assert {r["completion_code"] for r in rows if r["status"] == "completed"} == {"FMAGREE1"}
        page.reload()
        log = page.locator("section[aria-labelledby=log] tbody").inner_text()
        for action in ("study paused", "limits changed", "study opened", "raw ids downloaded"):
            assert action in log, action

        # the participant list: filters as links, a participant's answers
        page.locator("#people").get_by_role("link", name="completed", exact=True).click()
        expect(page.get_by_role("heading", name="Participants")).to_be_visible()
        assert "status=completed" in page.url
        assert page.locator("#people tbody tr").count() == 3
        _fits(page, "participants")
        page.locator("#people tbody tr").first.get_by_role("link").click()
        expect(page.get_by_role("heading", name="Trials")).to_be_visible()
        _fits(page, "participant")

        for path, name in (
            (f"/r/studies/{STUDY}", "study"),
            (f"/r/studies/{STUDY}/participants", "participants"),
            (page.url.removeprefix(base), "participant"),
            ("/r/", "studies"),
        ):
            on_phone = desk.new_page()
            on_phone.set_viewport_size(PHONE)
            on_phone.on("console", lambda m: _console(errors, m))
            on_phone.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            on_phone.goto(base + path)
            _fits(on_phone, name)
            on_phone.close()
        browser.close()
    assert errors == []
    assert turned_away and all("status of 503" in e for e in turned_away)
