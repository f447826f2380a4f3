"""The researcher's side: accounts, login, route protection, dashboard, previews."""

import re

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import ValidationError
from sqlalchemy import select

from app.bots import run_bots
from app.db import transaction
from app.errors import AppError
from app.models import Participant
from app.services.accounts import COOKIE, add_researcher
from app.settings import Settings
from app.studies.loader import LoadedStudy
from tests.server.helpers import post, start

PASSWORD = "correct horse battery staple"


def make_researcher(client: TestClient, email: str = "ada@example.org") -> None:
    with transaction(client.app.state.sessions) as s:  # type: ignore[attr-defined]
        add_researcher(s, email, PASSWORD)


def try_login(client: TestClient, email: str, password: str, **headers: str) -> Response:
    """The login form as a browser sends it: first the page (its CSRF token), then the post."""
    form = client.get("/r/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    return client.post("/r/login", data={"email": email, "password": password, "csrf": token}, headers=headers)


def login(client: TestClient, email: str = "ada@example.org", password: str = PASSWORD) -> str:
    r = try_login(client, email, password)
    assert r.status_code == 303, r.text
    return r.cookies[COOKIE]


def csrf_of(client: TestClient, path: str = "/r/") -> str:
    import re

    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)  # type: ignore[union-attr]


def test_accounts_refuse_bad_input(client: TestClient) -> None:
    with transaction(client.app.state.sessions) as s:  # type: ignore[attr-defined]
        _, generated = add_researcher(s, "Grace@Example.org", None)
        assert len(generated) >= 16
        with pytest.raises(AppError, match="already exists"):
            add_researcher(s, "grace@example.org", PASSWORD)
        with pytest.raises(AppError, match="not an e-mail address"):
            add_researcher(s, "grace", PASSWORD)
        with pytest.raises(AppError, match="at least 12 characters"):
            add_researcher(s, "h@example.org", "short")


def test_login_logout_and_cookie_flags(client: TestClient) -> None:
    make_researcher(client)
    assert try_login(client, "ada@example.org", "wrong").status_code == 401
    r = try_login(client, "ADA@example.org", PASSWORD)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/r/").status_code == 200
    old = client.cookies[COOKIE]
    assert client.post("/r/logout", data={"csrf": csrf_of(client)}).status_code == 303
    client.cookies.set(COOKIE, old)  # an old cookie is dead after logout
    assert client.get("/r/").status_code == 303


def test_login_is_rate_limited_counting_each_failure_once(client: TestClient) -> None:
    make_researcher(client)
    for _ in range(9):  # the limit is 10 a minute: nine failures leave one try
        assert try_login(client, "ada@example.org", "nope").status_code == 401
    assert try_login(client, "ada@example.org", PASSWORD).status_code == 303
    with TestClient(client.app, follow_redirects=False) as stranger:
        for _ in range(10):
            try_login(stranger, "ada@example.org", "nope")
        r = try_login(stranger, "ada@example.org", PASSWORD)
        assert r.status_code == 429 and "Too many attempts" in r.text


def test_a_stranger_cannot_lock_the_owner_out(app) -> None:  # type: ignore[no-untyped-def]
    owner = TestClient(app, follow_redirects=False, client=("192.0.2.1", 50000))
    stranger = TestClient(app, follow_redirects=False, client=("198.51.100.7", 50000))
    with owner, stranger:
        make_researcher(owner)
        login(owner)  # this browser is now known to the account (its device cookie)
        assert owner.post("/r/logout", data={"csrf": csrf_of(owner)}).status_code == 303
        for _ in range(25):
            try_login(stranger, "ada@example.org", "guess")
        assert try_login(stranger, "ada@example.org", PASSWORD).status_code == 429  # locked for strangers
        with TestClient(app, follow_redirects=False, client=("192.0.2.1", 50001)) as new_browser:
            assert try_login(new_browser, "ada@example.org", PASSWORD).status_code == 429  # and new browsers
        assert try_login(owner, "ada@example.org", PASSWORD).status_code == 303  # never for the owner's own


def test_x_forwarded_for_is_not_believed_by_default(client: TestClient) -> None:
    make_researcher(client)
    for k in range(10):  # password spraying, each try claiming another address
        try_login(client, f"user{k}@example.org", "guess", **{"X-Forwarded-For": f"10.0.0.{k}"})
    r = try_login(client, "ada@example.org", PASSWORD, **{"X-Forwarded-For": "10.9.9.9"})
    assert r.status_code == 429


def test_the_login_form_needs_its_csrf_token(client: TestClient) -> None:
    make_researcher(client)
    assert client.post("/r/login", data={"email": "ada@example.org", "password": PASSWORD}).status_code == 403
    client.get("/r/login")
    forged = {"email": "ada@example.org", "password": PASSWORD, "csrf": "made-up"}
    assert client.post("/r/login", data=forged).status_code == 403


def all_routes(app) -> list:  # type: ignore[no-untyped-def]
    """Every route of the app, including those of included routers (FastAPI wraps them)."""
    out = []
    for route in app.routes:
        inner = getattr(route, "original_router", None)
        out += list(inner.routes) if inner is not None else [route]
    return out


def test_every_researcher_route_requires_login(client: TestClient) -> None:
    checked = 0
    routes = all_routes(client.app)
    assert any(getattr(r, "path", "") == "/p/{code}" for r in routes)  # the enumeration sees every router
    for route in routes:
        path = getattr(route, "path", "")
        if not path.startswith("/r") or path == "/r/login":
            continue
        url = (
            path.replace("{study_id}", "seagull-agreement")
            .replace("{participant_id}", "1")
            .replace("{name}", "trials.csv")
        )
        for method in route.methods:
            r = client.request(method, url)
            assert r.status_code in (303, 401), (method, url, r.status_code)
            assert r.status_code == 401 or r.headers["location"] == "/r/login"
            checked += 1
    assert checked >= 9


def test_forms_need_the_session_csrf_token(client: TestClient) -> None:
    make_researcher(client)
    login(client)
    r = client.post("/r/studies/seagull-agreement/preview", data={"condition": "heatmap", "csrf": "forged"})
    assert r.status_code == 403 and "security token" in r.text
    assert client.post("/r/logout", data={}).status_code == 403


def test_participants_cannot_reach_each_other(client: TestClient) -> None:
    a = start(client, "seagull-agreement", pid="alice")
    b = start(client, "seagull-agreement", pid="bob")
    assert a != b
    from app.web import page_token
    from tests.server.conftest import SECRET

    r = client.post(f"/p/{b}", data={"page": "0", "token": page_token(SECRET, a), "choice": "agree"})
    assert r.status_code == 403
    r = client.post(f"/p/{b}/event", data={"kind": "asset_error", "token": page_token(SECRET, a)})
    assert r.status_code == 400
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert all(p.cursor == 0 for p in s.scalars(select(Participant)))
    assert post(client, a, 0, choice="agree").status_code == 303  # with their own token it works


def test_production_refuses_default_secrets() -> None:
    with pytest.raises(ValidationError, match="FIELDMARK_SECRET_KEY must be set"):
        Settings(environment="production", base_url="https://x.org")
    with pytest.raises(ValidationError, match="https://"):
        Settings(environment="production", secret_key="s" * 48, base_url="http://x.org")


def test_monitor_preview_and_hidden_accuracy(
    client: TestClient, settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    run_bots(studies["seagull-agreement"], 4, "oracle", None, 5, settings, studies)
    make_researcher(client)
    login(client)
    page = client.get("/r/studies/seagull-agreement")
    assert page.status_code == 200 and 'hx-trigger="every 5s"' in page.text
    assert "100.0%" not in page.text and "Show accuracy so far" in page.text  # hidden until asked
    frag = client.get("/r/studies/seagull-agreement/monitor", headers={"HX-Request": "true"})
    assert frag.status_code == 200 and "<html" not in frag.text
    for cond in ("prediction", "heatmap", "examples", "concepts"):  # bots are not counted, but said
        assert f'<th scope="row">{cond}</th><td>0</td><td>0</td><td>0</td>' in frag.text
    assert "Not counted: 4 bot participations." in frag.text
    acc = client.get("/r/studies/seagull-agreement/accuracy")
    assert "100.0%" not in acc.text  # nor is their accuracy
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        pid = s.scalar(select(Participant.id))
    detail = client.get(f"/r/studies/seagull-agreement/participants/{pid}")
    assert detail.status_code == 200 and "verify #1" in detail.text and "(bot)" in detail.text
    r = client.post("/r/studies/seagull-agreement/preview", data={"condition": "examples", "csrf": csrf_of(client)})
    assert r.status_code == 303 and r.headers["location"].startswith("/p/")
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        pilot = s.scalar(select(Participant).where(Participant.origin == "pilot"))
        assert pilot is not None and pilot.condition == "examples"
    frag = client.get("/r/studies/seagull-agreement/monitor").text
    assert '<th scope="row">examples</th><td>0</td><td>0</td><td>0</td>' in frag  # the pilot is not counted
    assert "Not counted: 4 bot, 1 pilot participations." in frag
