"""What a trial page shows of each explanation: readable, opaque, the same names everywhere."""

import random
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.bots import Bot, PageParser
from app.studies.loader import LoadedStudy
from pipeline.render.heatmap import css_ramp

STATIC = Path(__file__).resolve().parents[2] / "static"


class Collector(Bot):
    """An oracle bot that keeps every trial page, by the kind of explanation it shows ("none")."""

    def __init__(self, client: TestClient, study: LoadedStudy) -> None:
        super().__init__(client, study, "oracle", random.Random(0))  # type: ignore[arg-type]
        self.pages: dict[str, list[str]] = {}

    def fill(self, page: PageParser, form, r):  # type: ignore[no-untyped-def]
        m = re.search(r'class="explanation explanation-(\w+)"', self.last_html)
        if page.task:
            self.pages.setdefault(m.group(1) if m else "none", []).append(self.last_html)
        return super().fill(page, form, r)


def trial_pages(client: TestClient, study: LoadedStudy) -> dict[str, list[str]]:
    """Every trial page of one participant per condition."""
    bot = Collector(client, study)
    for k in range(len(study.spec.conditions)):
        assert bot.run(f"/s/{study.id}?PROLIFIC_PID=explain{k}").status == "completed"
    return bot.pages


def explanation(html: str) -> str:
    found = re.search(r"<!-- explanation -->.*?<!-- /explanation -->", html, re.S)
    assert found
    return found.group(0)


def test_sag_is_a_file_of_its_own_with_a_key(client: TestClient, studies: dict[str, LoadedStudy]) -> None:
    study = studies["seagull-learning"]
    part = explanation(trial_pages(client, study)["sag"][0])
    assert "<svg" not in part and "data-confidence" not in part and "tabindex" not in part
    desktop = re.search(r'<img src="(/asset/[^"]+)" alt="([^"]+)" class="xp-sag">', part)
    phone = re.search(r'<source media="\(max-width: 600px\)" srcset="(/asset/[^"]+)">', part)
    assert desktop and phone and "Green: squares" in part and "Red: one of them" in part
    assert "96%" in desktop.group(2)  # the alt text gives the shares the diagram prints
    for url, widest in ((desktop.group(1), 516), (phone.group(1), 240)):
        r = client.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
        width = re.search(r'<svg [^>]*width="(\d+)"', r.text)
        assert width and int(width.group(1)) <= widest and "96%" in r.text and "not drawn" not in r.text
        assert not re.search(r'\bid="|tabindex|data-', r.text)  # nothing that names or focuses
    assert len(part) < 3000  # not the diagram inlined


def test_heatmap_has_a_scale_and_the_original_colours(client: TestClient, studies: dict[str, LoadedStudy]) -> None:
    html = trial_pages(client, studies["seagull-learning"])["heatmap"][0]
    part = explanation(html)
    stimulus = re.search(r'<img src="([^"]+)"[^>]*data-stimulus', html)
    assert stimulus and f'<img src="{stimulus.group(1)}" alt="The same picture in its own colours"' in part
    assert 'class="xp-toggle"' in part and 'class="xp-ramp"' in part and "Warm colours" in part
    css = (STATIC / "explanations.css").read_text()
    assert css_ramp() in css  # the scale is the overlay's own colour map
    assert ".explanation-heatmap:has(.xp-toggle:checked) .xp-overlay { opacity: 0; }" in css


def test_concept_cards_in_html_with_consistent_names(client: TestClient, studies: dict[str, LoadedStudy]) -> None:
    shown = explanation(trial_pages(client, studies["seagull-agreement"])["concepts"][0])  # shows the model's answer
    hidden = explanation(trial_pages(client, studies["seagull-learning"])["concepts"][0])  # does not
    assert "The model's concepts for <strong>" in shown
    assert "for the species it chose" in hidden and "<strong>" not in hidden.split("</p>")[0]
    for part in (shown, hidden):
        names = re.findall(r"<strong>(Concept \d+ \(\w+\))</strong>", part)
        assert names and len(names) == len(set(names))
        assert part.count("The model relied mostly on") == 1  # the summary once
        assert "<details" in part and part.count("Where concept") >= 2  # the gallery, openable from the trial
    names = set(re.findall(r"Concept \d+ \(\w+\)", shown))
    gallery = set(re.findall(r'<p class="xp-gallery-name">([^<]+)</p>', shown))
    assert gallery <= names


def test_two_concepts_on_one_spot_are_said_so(client: TestClient, studies: dict[str, LoadedStudy]) -> None:
    study = studies["seagull-agreement"]
    entry = next(e for e in study.manifest.images if e.image_id % 2 == 0 and e.explanation("xnn", "predicted"))
    cards = entry.explanation("xnn", "predicted")
    assert cards is not None and cards.significant[1].same_spot_as == cards.significant[0].concept
    pages = trial_pages(client, study)["concepts"]
    assert any("Lights the same spot as concept" in explanation(p) for p in pages)


def test_every_trial_of_every_condition_links_the_species_guide(
    client: TestClient, studies: dict[str, LoadedStudy]
) -> None:
    study = studies["seagull-agreement"]
    pages = trial_pages(client, study)
    assert set(pages) == {"none", "heatmap", "examples", "concepts"}  # every condition's trials
    for html in (p for kind in pages.values() for p in kind):
        link = re.search(r'<a class="guide-link" href="(/p/[^"]+/guides)" target="_blank"', html)
        assert link, "a trial without the species guide"
    guide = client.get(link.group(1))
    assert guide.status_code == 200 and "Species guide" in guide.text
    images = re.findall(r'<img src="(/asset/[^"]+)"', guide.text)
    assert len(images) == len(study.spec.guides) == 8
    assert all(client.get(u).status_code == 200 for u in images)
    learning = [p for ps in trial_pages(client, studies["seagull-learning"]).values() for p in ps]
    tests = [p for p in learning if '<p class="trial-count">Test:' in p]  # the test block: on one's own
    assert tests and not any("guide-link" in p for p in tests)
    assert all("guide-link" in p for p in learning if p not in tests)


def test_a_run_drawn_before_the_phone_diagram_says_how_to_update(tmp_path: Path) -> None:
    import json

    from app.errors import StudyError
    from app.studies.loader import load_study
    from tests.factory import build_run

    assets = build_run(tmp_path / "assets")
    path = assets / "demo" / "manifest.json"
    doc = json.loads(path.read_text())
    for image in doc["images"]:
        for e in image["explanations"]:
            e.pop("diagram_phone", None)
    path.write_text(json.dumps(doc))
    study = Path(__file__).resolve().parents[2] / "studies" / "seagull-learning.yaml"
    with pytest.raises(
        StudyError,
        match=r"sag\.diagram_phone: Field required and \d+ more\); .*running 'fieldmark explain' on it again",
    ):
        load_study(study, assets, "s" * 48)
