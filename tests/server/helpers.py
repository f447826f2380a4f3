"""Walking a study by hand in tests: start, read the page, answer it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.bots import PageParser
from app.web import page_token
from tests.server.conftest import SECRET


def start(client: TestClient, study: str, pid: str | None = None) -> str:
    url = f"/s/{study}" + (f"?PROLIFIC_PID={pid}&STUDY_ID=st&SESSION_ID=se" if pid else "")
    r = client.get(url)
    assert r.status_code == 303, r.text
    return r.headers["location"].rsplit("/", 1)[-1]


def page(client: TestClient, code: str) -> PageParser:
    r = client.get(f"/p/{code}")
    assert r.status_code == 200, r.text
    p = PageParser()
    p.feed(r.text)
    p.html = r.text  # type: ignore[attr-defined]
    return p


def post(client: TestClient, code: str, page_index: int, **fields: Any) -> Any:
    data = {"page": str(page_index), "token": page_token(SECRET, code), **fields}
    return client.post(f"/p/{code}", data=data)


def current_index(p: PageParser) -> int:
    form = next(f for f in p.forms if f.action.startswith("/p/"))
    return int(form.hidden["page"])


def advance(client: TestClient, code: str, **fields: Any) -> Any:
    """Answer the current page with `fields` (plus consent/continue defaults)."""
    p = page(client, code)
    return post(client, code, current_index(p), **fields)
