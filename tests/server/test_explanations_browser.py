"""Each explanation in real Chromium (Debian's, via Playwright), on a desktop and on a phone: it
fits without sideways scrolling, its text is at least 12 px, the answer is a few Tab presses
away, the SAG is one file (the phone layout on a phone), the heatmap's original colours show
with the checkbox, and a concept's gallery opens from the trial."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import httpx
import pytest

from app.bots import Bot, PageParser, local_server
from app.settings import Settings
from app.studies.loader import LoadedStudy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "explanations"

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed")]

SMALL_TEXT = """() => [...document.querySelectorAll('figure.explanation *')].filter(el =>
  [...el.childNodes].some(c => c.nodeType === 3 && c.textContent.trim()) && el.offsetParent &&
  parseFloat(getComputedStyle(el).fontSize) < 12).map(el => el.textContent.trim())"""


@pytest.fixture(params=["sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:  # one database is enough for the browser
    from app.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    upgrade(url)
    return url


class ToTrial(Bot):
    """Takes the study until the first trial showing `kind`, and stops there (its code in `code`)."""

    def __init__(self, client: httpx.Client, study: LoadedStudy, kind: str) -> None:
        super().__init__(client, study, "oracle", random.Random(0))  # type: ignore[arg-type]
        self.kind, self.code = kind, ""

    def fill(self, page: PageParser, form, r):  # type: ignore[no-untyped-def]
        if page.task and f'class="explanation explanation-{self.kind}"' in self.last_html:
            self.code = form.action.removeprefix("/p/")
            raise LookupError
        return super().fill(page, form, r)


def trial_code(base: str, study: LoadedStudy, kind: str) -> str:
    for k in range(len(study.spec.conditions)):  # balanced assignment: one of these gets the condition
        with httpx.Client(base_url=base) as c:
            bot = ToTrial(c, study, kind)
            try:
                bot.run(f"/s/{study.id}?PROLIFIC_PID={kind}{k}")
            except LookupError:
                return bot.code
    raise AssertionError(f"no {kind} trial in {study.id}")


@pytest.mark.parametrize("size", [(1366, 850), (390, 844)], ids=["desktop", "phone"])
def test_explanations_in_chromium(settings: Settings, studies: dict[str, LoadedStudy], size: tuple[int, int]) -> None:
    from playwright.sync_api import sync_playwright

    study = studies["seagull-learning"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with local_server(settings, studies) as base, sync_playwright() as pw:
        codes = {kind: trial_code(base, study, kind) for kind in ("sag", "heatmap", "concepts")}
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        for kind, code in codes.items():
            page.goto(f"{base}/p/{code}")
            page.wait_for_load_state("load")
            page.screenshot(path=str(ARTIFACTS / f"{kind}-{size[0]}.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= size[0], kind
            assert page.evaluate(SMALL_TEXT) == [], kind
            presses = 0
            while not page.evaluate("document.activeElement.name === 'answer'"):
                page.keyboard.press("Tab")
                presses += 1
                assert presses <= 4, f"{kind}: the answer is more than 4 Tab presses away"
            if kind == "sag":
                img = page.locator("img.xp-sag")
                assert img.evaluate("i => i.complete && i.naturalWidth > 0")
                phone = page.locator("picture source").get_attribute("srcset")
                assert (img.evaluate("i => new URL(i.currentSrc).pathname") == phone) == (size[0] < 600)
            elif kind == "heatmap":
                overlay = page.locator("img.xp-overlay")
                assert overlay.evaluate("i => getComputedStyle(i).opacity") == "1"
                page.get_by_label("Show the picture's own colours").check()
                page.wait_for_timeout(300)
                assert overlay.evaluate("i => getComputedStyle(i).opacity") == "0"
            else:
                gallery = page.locator("details.xp-gallery img").first
                assert not gallery.is_visible()
                page.get_by_text("Where these concepts are strongest").click()
                assert gallery.is_visible()
        browser.close()
