"""Every screen of every shipped study, in every condition, in real Chromium at 1366x850 and 390x844.

A researcher's preview participant per (study, condition) walks the study by clicking, from the
consent to the completion page; every page is checked at both sizes (tests/server/browse.py): no
sideways scrolling, the answer control on the first desktop screen, no console errors, no broken
images, no text under 12 px. Screenshots of the first page of each step go to var/screens/
(printed at the end). One browser and one context for the whole module; about a minute.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.bots import local_server
from app.db import make_engine, session_factory, transaction
from app.migrate import upgrade
from app.services import participation as svc
from app.studies.loader import LoadedStudy, load_all
from tests.server.browse import walk
from tests.server.conftest import REPO, SECRET, server_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO / "var" / "screens"

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed")]


def _cases() -> list[tuple[str, str]]:
    import yaml

    out = []
    for path in sorted((REPO / "studies").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        out += [(doc["id"], c["id"]) for c in doc["conditions"]]
    return out


CASES = _cases()  # read from studies/: a new study or condition is walked without naming it here
Studies = dict[str, LoadedStudy]
PENDING: dict[tuple[str, str], str] = {}  # (study, condition) -> why it fails until another branch lands


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, assets_dir: Path) -> Iterator[tuple[str, Any, Studies]]:
    """The factory's run, or FIELDMARK_BROWSER_ASSETS (an assets folder holding a run `demo`, e.g.
    one `make demo` or the pipeline built) to look at real diagrams and cards."""
    assets_dir = Path(os.environ.get("FIELDMARK_BROWSER_ASSETS") or assets_dir)
    home = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{home / 'browser.db'}"
    upgrade(url)
    settings = server_settings(home, url, assets_dir)
    studies = load_all(REPO / "studies", assets_dir, SECRET)
    with local_server(settings, studies) as base:
        yield base, settings, studies


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        context = browser.new_context()
        yield context
        context.close()
        browser.close()
    if SHOTS.exists():
        print(f"\nscreenshots: {SHOTS}")


def preview_code(settings: Any, study: LoadedStudy, condition: str) -> str:
    engine = make_engine(settings.db_url)
    try:
        with transaction(session_factory(engine)) as s:
            return svc.preview(s, study, condition, "browser-suite").code
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("study_id", "condition"),
    [
        pytest.param(s, c, marks=pytest.mark.xfail(strict=True, reason=PENDING[(s, c)]) if (s, c) in PENDING else ())
        for s, c in CASES
    ],
)
def test_every_page_fits_both_screens(
    served: tuple[str, Any, Studies], browser_context: Any, study_id: str, condition: str
) -> None:
    base, settings, studies = served
    study = studies[study_id]
    code = preview_code(settings, study, condition)
    shots = SHOTS / f"{study_id}-{condition}"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    attention = {a for st in study.spec.steps if (a := getattr(st, "answer", None))}
    page = browser_context.new_page()
    started = time.monotonic()
    try:
        found = walk(page, f"{base}/p/{code}", f"{study_id}-{condition}", shots, attention)
    finally:
        page.close()
    print(f"{study_id}/{condition}: {found.pages} pages in {time.monotonic() - started:.1f} s, shots in {shots}")
    assert found.kinds >= {"consent", "trials", "completion"}, found.kinds
    assert found.banners == found.pages  # a researcher's preview says so on every page
    assert all(p.stat().st_size > 5_000 for p in found.shots)
    assert not found.problems, "\n".join(found.problems[:40])


ONSET_CASES = [(s, c) for s, c in CASES if s == "sag-counterfactual" or c not in ("none", "prediction")]
DELAY_MS = 1000

# When each picture of the trial finished arriving (resource timing), and the onset the page recorded.
TIMINGS = """() => {
  const urls = [...document.querySelectorAll(".trial img")].map((im) => im.src);
  document.querySelectorAll(".trial svg image").forEach((el) => {
    const href = el.getAttribute("href") || el.getAttribute("xlink:href");
    if (href && !href.startsWith("data:")) urls.push(new URL(href, location.href).href);
  });
  const end = (url) => Math.max(0, ...performance.getEntriesByName(url).map((e) => e.responseEnd));
  const stimulus = document.querySelector("[data-stimulus]").src;
  return {onset: parseFloat(document.querySelector("[data-onset]").value), stimulus: end(stimulus),
          last: Math.max(...urls.map(end)), pictures: urls.length};
}"""


@pytest.mark.parametrize(("study_id", "condition"), ONSET_CASES)
def test_onset_is_when_every_picture_of_the_trial_is_shown(
    served: tuple[str, Any, Studies], browser_context: Any, study_id: str, condition: str
) -> None:
    """The explanation's pictures (and A and B) are held back 1 s, the gull is not: onset waits for
    them, in every condition alike (the gull's own arrival is not the onset)."""
    from tests.server.browse import answer

    base, settings, studies = served
    study = studies[study_id]
    url = f"{base}/p/{preview_code(settings, study, condition)}"
    browser = browser_context.browser
    first = browser.new_context()  # a fresh cache: every picture comes over the network
    page = first.new_page()
    page.goto(url, wait_until="load")
    while page.locator("main").get_attribute("data-page") != "trials":
        answer(page, page.locator("main").get_attribute("data-page") or "", set())
    stimulus = page.locator("[data-stimulus]").get_attribute("src")
    first.close()

    context = browser.new_context()

    def slow(route: Any) -> None:
        if not route.request.url.endswith(stimulus):
            time.sleep(DELAY_MS / 1000)
        route.continue_()

    context.route("**/asset/**", slow)
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.wait_for_function("document.querySelector('[data-onset]').value !== ''")
    t = page.evaluate(TIMINGS)
    inline = page.locator(".trial .explanation svg").count()
    context.close()
    if t["pictures"] == 1:  # an explanation drawn in the page itself (an inline SVG) arrives with it
        assert inline, t
    else:
        assert t["last"] > t["stimulus"] + 100, t  # the explanation did come later (a busy machine blurs by how much)
    # onset: once the last picture is decoded and painted (a few frames; more on a busy machine)
    assert t["last"] <= t["onset"] <= t["last"] + 500, t


def test_the_pages_that_end_a_visit_fit_both_screens(served: tuple[str, Any, Studies], browser_context: Any) -> None:
    """The other page types: screened out, declined, already taken part, a bad link, a missing page."""
    from tests.server.browse import Walk, check

    base = served[0]
    found = Walk()
    shots = SHOTS / "endings"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(f"{base}/s/seagull-learning?PROLIFIC_PID=young1&STUDY_ID=s&SESSION_ID=x", wait_until="load")
        page.locator("button[value=agree]").click()
        page.get_by_label("How old are you?").fill("16")  # type: ignore[call-arg]
        page.get_by_text("Nothing in particular").click()
        page.locator("form button[type=submit]").click()
        page.wait_for_load_state("load")
        assert "not eligible" in page.inner_text("main")
        check(page, "screened-out", found, shots)
        page.goto(f"{base}/s/seagull-learning?PROLIFIC_PID=young1&STUDY_ID=s&SESSION_ID=x", wait_until="load")
        assert "already" in page.inner_text("h1")
        check(page, "already-taken-part", found, shots)
        page.goto(f"{base}/s/seagull-agreement", wait_until="load")
        page.locator("button[value=decline]").click()
        page.wait_for_load_state("load")
        assert "chose not to take part" in page.inner_text("main")
        check(page, "declined", found, shots)
        for name, path in (("bad-link", "/p/not-a-code"), ("no-study", "/s/no-such-study"), ("no-page", "/nothing")):
            page.goto(base + path, wait_until="load")
            check(page, name, found, shots)
    finally:
        page.close()
    # already taken part (409) and the error pages (404) answer 4xx, which the console reports; nothing else may fail
    assert all("responded with a status of 4" in e for e in errors) and not found.problems, errors + found.problems
    assert len(found.shots) == 12


@pytest.mark.parametrize(("study_id", "condition"), [("seagull-learning", "sag"), ("sag-counterfactual", "sag")])
def test_the_skip_link_leads_the_keyboard_to_the_answer(
    served: tuple[str, Any, Studies], browser_context: Any, study_id: str, condition: str
) -> None:
    """Tab, Enter on "Skip to the question", Tab: the first answer, past any explanation."""
    from tests.server.browse import answer

    base, settings, studies = served
    page = browser_context.new_page()
    try:
        page.goto(f"{base}/p/{preview_code(settings, studies[study_id], condition)}", wait_until="load")
        while page.locator("main").get_attribute("data-page") != "trials":
            answer(page, page.locator("main").get_attribute("data-page") or "", set())
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to the question"
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        focused = page.evaluate("[document.activeElement.name, document.activeElement.type]")
        assert focused == ["answer", "radio"], focused
    finally:
        page.close()


def test_without_javascript_the_pictures_show_and_the_answer_posts(
    served: tuple[str, Any, Studies], browser_context: Any
) -> None:
    """Hiding the pictures until they have all loaded is JavaScript's: without it nothing is hidden."""
    from tests.server.browse import answer

    base, settings, studies = served
    context = browser_context.browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{base}/p/{preview_code(settings, studies['sag-counterfactual'], 'heatmap')}", wait_until="load")
        while page.locator("main").get_attribute("data-page") != "trials":
            answer(page, page.locator("main").get_attribute("data-page") or "", set())
        assert page.locator(".trial").evaluate("el => getComputedStyle(el).visibility") == "visible"
        assert page.locator(".trial img").count() == 5  # the gull, the heatmap (over its original), A and B
        answer(page, "trials", set())
        assert page.locator("main").get_attribute("data-page") == "feedback"
    finally:
        context.close()
