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
    run_bots(study, 1, "random", None, 9, settings, studies)  # takes the first condition ("none")
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
