"""Bad input gets a 4xx, never a 500, on both databases: NUL characters anywhere, numbers out of range."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.server.helpers import start
from tests.server.test_researcher import login, make_researcher


@pytest.mark.parametrize(
    "path",
    ["/p/%00abc", "/s/seagull-learning%00", "/s/seagull-learning?PROLIFIC_PID=a%00b", "/static/%00.css", "/asset/%00"],
)
def test_a_nul_in_the_address_is_refused(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 400


def test_a_nul_in_a_cookie_or_a_form_is_refused(client: TestClient) -> None:
    r = client.get("/s/seagull-learning", headers={"cookie": 'fm-p-seagull-learning="a\\000b"'})
    assert r.status_code == 400
    r = client.get("/r/", headers={"cookie": 'fm-session="\\000"'})
    assert r.status_code == 400
    assert client.post("/r/login", data={"email": "a\x00@example.org", "password": "x"}).status_code == 400
    code = start(client, "seagull-learning")
    assert client.post(f"/p/{code}", data={"page": "0", "choice": "agree\x00"}).status_code == 400


def test_numbers_beyond_the_databases_range_are_refused(client: TestClient) -> None:
    make_researcher(client)
    login(client)
    for pid in ("2147483648", "99999999999999999999999", "-1", "0"):
        assert client.get(f"/r/studies/seagull-learning/participants/{pid}").status_code in (404, 422), pid
    assert client.get("/r/studies/seagull-learning/participants/2147483647").status_code == 404
