"""What every participant screen promises, over HTTP: entries kept after a validation error, the
completion code shown, previews marked, no empty sections; compressed text, a favicon, and files
cached for as long as their names stay the same. (Layout and sizes: test_browser.py.)"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from fastapi.testclient import TestClient

from app.bots import run_bots
from app.services import participation as svc
from app.settings import Settings
from app.static import static_url
from app.studies.loader import AssetIndex, LoadedStudy
from tests.server.helpers import advance, page, start


def test_a_page_shown_again_after_an_error_keeps_what_was_entered(client: TestClient) -> None:
    code = start(client, "seagull-learning")
    advance(client, code, choice="agree")
    r = advance(client, code, q_age="12.5", q_birding="2")  # not a whole number: shown again
    assert r.status_code == 422 and "Please enter a whole number" in r.text
    assert re.search(r'name="q_age"[^>]*value="12.5"', r.text)
    assert re.search(r'name="q_birding" value="2" checked', r.text)
    r = advance(client, code, q_age="34")  # the typed age survives a missing answer elsewhere
    assert r.status_code == 422 and re.search(r'name="q_age"[^>]*value="34"', r.text)
    assert "checked" not in r.text  # and nothing is ticked that was not
    advance(client, code, q_age="34", q_birding="1")
    assert "The eight species" in page(client, code).h1


def test_a_trial_shown_again_keeps_the_chosen_answer(client: TestClient, studies: dict[str, LoadedStudy]) -> None:
    code = start(client, "sag-counterfactual")
    advance(client, code, choice="agree")
    advance(client, code)  # what to do
    for _ in range(3):  # practice
        advance(client, code, answer="a")
    r = advance(client, code, answer="b")  # the test block asks how sure: not said
    assert r.status_code == 422 and "Please say how sure you are." in r.text
    assert 'name="answer" value="b" checked' in r.text and 'value="a" checked' not in r.text


def test_the_completion_page_shows_the_code_and_says_100_percent(
    client: TestClient, settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    for study_id in ("sag-counterfactual", "seagull-agreement"):
        (done,) = run_bots(studies[study_id], 1, "random", None, 3, settings, studies)
        assert done.status == "completed"
        html = client.get(f"/p/{done.code}").text
        code = studies[study_id].spec.prolific.completion_code  # type: ignore[union-attr]
        assert f'<code id="completion-code">{code}</code>' in html  # to copy if the redirect fails
        assert f"cc={code}" in html and "100% done" in html and 'aria-valuenow="' in html


def test_preview_pages_carry_a_banner_and_real_ones_do_not(client: TestClient, studies: dict[str, LoadedStudy]) -> None:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        preview = svc.preview(s, studies["seagull-agreement"], "heatmap", "ada@example.org").code
        s.commit()
    assert "preview-banner" in client.get(f"/p/{preview}").text
    assert "preview-banner" not in client.get(f"/p/{start(client, 'seagull-agreement')}").text


def test_no_empty_method_section_without_an_explanation(client: TestClient, studies: dict[str, LoadedStudy]) -> None:
    shown = {}
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        for study, condition in (("seagull-learning", "none"), ("seagull-agreement", "prediction")):
            shown[condition] = svc.preview(s, studies[study], condition, "ada@example.org").code
        s.commit()
    code = shown["none"]
    advance(client, code, choice="agree")
    advance(client, code, q_age="34", q_birding="1")
    advance(client, code)  # the guides
    learning = page(client, code).html  # type: ignore[attr-defined]
    assert "Learning" in learning and "What you will see" not in learning
    code = shown["prediction"]
    advance(client, code, choice="agree")
    told = page(client, code).html  # type: ignore[attr-defined]
    assert "What you will see" in told and "You will see the model's answer and how sure it was." in told


def test_text_is_compressed_and_pictures_are_not(client: TestClient, studies: dict[str, LoadedStudy]) -> None:
    code = start(client, "seagull-learning")
    html = client.get(f"/p/{code}", headers={"Accept-Encoding": "gzip"})
    assert html.headers["content-encoding"] == "gzip" and "accept-encoding" in html.headers["vary"].lower()
    css = client.get("/static/fieldmark.css", headers={"Accept-Encoding": "gzip"})
    assert css.headers["content-encoding"] == "gzip"
    raw = client.get("/static/fieldmark.css", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.text == css.text  # httpx decoded the gzip one
    assert len(gzip.compress(raw.content)) < len(raw.content) / 2
    study = studies["seagull-learning"]
    assert study.assets is not None
    png = client.get(study.assets.url(study.entries[next(iter(study.entries))].image))
    assert png.headers["content-type"] == "image/png" and "content-encoding" not in png.headers
    svg = next(t for t, path in study.assets.by_token.items() if path.suffix == ".svg")  # a SAG diagram
    drawn = client.get(f"/asset/{svg}", headers={"Accept-Encoding": "gzip"})
    assert drawn.headers["content-type"].startswith("image/svg+xml") and drawn.headers["content-encoding"] == "gzip"


def test_files_are_cached_for_as_long_as_their_names_hold(client: TestClient, studies: dict[str, LoadedStudy]) -> None:
    page_html = client.get(f"/p/{start(client, 'seagull-learning')}").text
    url = static_url("fieldmark.css")
    assert url in page_html and re.fullmatch(r"/static/fieldmark\.css\?v=[0-9a-f]{12}", url)
    assert client.get(url).headers["cache-control"] == "public, max-age=31536000, immutable"
    assert client.get("/static/fieldmark.css").headers["cache-control"] == "no-cache"  # an unversioned link
    assert client.get("/static/fieldmark.css?v=0123456789ab").headers["cache-control"] == "no-cache"  # an old one
    study = studies["seagull-learning"]
    assert study.assets is not None
    asset = client.get(study.assets.url(study.entries[next(iter(study.entries))].image))
    assert asset.headers["cache-control"] == "private, max-age=31536000, immutable"
    icon = client.get("/favicon.ico")
    assert (
        icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon" and icon.content[:4] == b"\0\0\1\0"
    )
    assert client.get(static_url("favicon.svg")).headers["content-type"].startswith("image/svg+xml")


def test_a_file_rebuilt_in_place_gets_a_new_name(tmp_path: Path) -> None:
    run = tmp_path / "demo"
    run.mkdir()
    (run / "a.png").write_bytes(b"one")
    before = AssetIndex("secret", run).token("a.png")
    assert AssetIndex("secret", run).token("a.png") == before  # stable while the file is the same
    (run / "a.png").write_bytes(b"other")
    assert AssetIndex("secret", run).token("a.png") != before
