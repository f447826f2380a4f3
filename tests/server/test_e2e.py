"""A participant completes seagull-learning in a real browser (Debian's Chromium, via Playwright),
clicking through every step; screenshots of the consent, a trial with an explanation and the
completion page are saved under test-artifacts/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.bots import local_server, run_bots
from app.settings import Settings
from app.studies.loader import LoadedStudy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed")]


@pytest.fixture(params=["sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:  # one database is enough for the browser test
    from app.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    upgrade(url)
    return url


def test_a_participant_completes_seagull_learning_by_clicking(
    settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    study = studies["seagull-learning"]
    # a stand-in for a first real participant: it takes the first condition ("none")
    run_bots(study, 1, "random", None, 9, settings, studies, as_bots=False)
    ARTIFACTS.mkdir(exist_ok=True)
    with local_server(settings, studies) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/s/seagull-learning?PROLIFIC_PID=browser1&STUDY_ID=s&SESSION_ID=x")
        expect(page.get_by_role("heading", name="Before you begin")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "consent.png"), full_page=True)
        page.get_by_role("button", name="I agree to take part").click()
        page.get_by_label("How old are you?").fill("29")  # type: ignore[call-arg]
        page.get_by_text("I watch birds regularly").click()
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", name="The eight species")).to_be_visible()
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", name="Learning")).to_be_visible()
        page.get_by_role("button", name="Continue").click()
        shot = False
        for _ in range(80):
            page.wait_for_load_state("load")
            if page.get_by_role("heading", name="All done").count():
                break
            if page.locator("form.trial-form").count():
                if not shot and page.locator("figure.explanation").count():
                    page.screenshot(path=str(ARTIFACTS / "trial-with-explanation.png"), full_page=True)
                    shot = True
                page.locator("form.trial-form label.choice").first.click()
                if page.locator("input[name=confidence]").count():
                    page.locator("label.likert-point").nth(3).click()
                page.get_by_role("button", name="Submit").click()
            elif page.get_by_role("link", name="Continue").count():
                page.get_by_role("link", name="Continue").click()
            elif page.get_by_text("Ivory Gull", exact=True).count() and "reading carefully" in page.content():
                page.get_by_text("Ivory Gull", exact=True).click()
                page.get_by_role("button", name="Continue").click()
            elif page.locator("input[name=q_helpful]").count():
                page.locator("label.likert-point").nth(5).click()
                page.get_by_role("button", name="Continue").click()
            else:
                page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", name="All done")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "completion.png"), full_page=True)
        assert shot, "no trial showed an explanation"
        assert "cc=FMLEARN1" in (
            page.get_by_role("link", name="Return to Prolific to finish").get_attribute("href") or ""
        )
        browser.close()
    for name in ("consent.png", "trial-with-explanation.png", "completion.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000


def test_a_researcher_monitors_analyses_and_downloads(
    settings: Settings, studies: dict[str, LoadedStudy], tmp_path: Path
) -> None:
    import threading

    import pandas as pd
    from playwright.sync_api import expect, sync_playwright

    from app.db import make_engine, session_factory, transaction
    from app.export.columns import trial_columns
    from app.services.accounts import add_researcher

    engine = make_engine(settings.db_url)
    with transaction(session_factory(engine)) as s:
        add_researcher(s, "ada@example.org", "correct horse battery staple")
    engine.dispose()
    study = studies["seagull-agreement"]
    with local_server(settings, studies) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(accept_downloads=True)
        page.goto(f"{base}/r/login")
        page.get_by_label("E-mail").fill("ada@example.org")
        page.get_by_label("Password").fill("correct horse battery staple")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Studies")).to_be_visible()
        page.get_by_role("link", name=study.spec.title).click()
        expect(page.get_by_role("heading", name="Live monitor")).to_be_visible()
        bots = threading.Thread(  # stand-ins for real participants: the monitor counts real ones only
            target=run_bots, args=(study, 4, "always-agree", base, 21, settings, studies), kwargs={"as_bots": False}
        )
        bots.start()  # the monitor refreshes itself while they take the study
        expect(page.locator("#monitor")).to_contain_text("prediction", timeout=20_000)
        bots.join(timeout=120)
        page.wait_for_timeout(6000)  # one more polling round after the bots finished
        completed = page.locator("#monitor tbody tr").first.locator("td").nth(2).text_content()
        assert completed is not None and int(completed) >= 1
        page.screenshot(path=str(ARTIFACTS / "researcher-monitor.png"), full_page=True)
        page.get_by_role("link", name="Show accuracy so far").click()
        # the study's first report is computed on this request (the mixed model, in R where present)
        expect(page.locator("#accuracy table")).to_be_visible(timeout=90_000)
        so_far = [r.split("\t")[:3] for r in page.locator("#accuracy table tbody").inner_text().splitlines()]
        with page.expect_download() as info:
            page.get_by_role("link", name="trials.csv", exact=True).click()  # real participants only
        path = tmp_path / "trials.csv"
        info.value.save_as(path)
        page.get_by_role("link", name="Analysis", exact=True).click()
        expect(page.get_by_role("heading", name="Accuracy by condition (test trials)")).to_be_visible()
        # the dashboard's "accuracy so far" is the analysis page's table: same conditions, trials, right answers
        analysed = page.locator("#accuracy .table-scroll tbody").inner_text().splitlines()
        assert so_far and [r.split("\t")[:3] for r in analysed] == so_far
        page.screenshot(path=str(ARTIFACTS / "researcher-analysis.png"), full_page=True)
        browser.close()
    trials = pd.read_csv(path)
    assert list(trials.columns) == [c.name for c in trial_columns(study)]
    assert len(trials) == 4 * 20 and set(trials["response"]) == {"yes"}
