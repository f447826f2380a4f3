"""A hostile participant (and a careless or hostile visitor of the researcher's pages) against a real
`fieldmark serve` process, over real HTTP, on SQLite and on PostgreSQL: every case of issue 12.

One server per database for the whole module; every test uses its own Prolific ids, so the tests
do not depend on each other. Every response any test receives is recorded, and the module ends by
checking that none was a 5xx and that the server logged no traceback.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.bots import Bot, BotResult, PageParser, ServerProcess, run_bots, start_server, stop_server
from app.db import make_engine, session_factory, transaction
from app.services.accounts import add_researcher
from app.settings import Settings
from app.studies.loader import LoadedStudy
from app.web import page_token
from tests.server.conftest import REPO, SECRET, migrated_database

PASSWORD = "correct horse battery staple"
EMAIL = "eve@example.org"
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')


@dataclass
class Live:
    server: ServerProcess
    db_url: str
    log: Path
    statuses: list[tuple[int, str, str]] = field(default_factory=list)  # (status, method, path)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def browser(self, **kw: object) -> httpx.Client:
        """A fresh browser: its own cookies; every response recorded."""

        def record(response: httpx.Response) -> None:
            with self.lock:
                self.statuses.append((response.status_code, response.request.method, response.request.url.path))

        return httpx.Client(
            base_url=self.server.url, follow_redirects=False, timeout=30, event_hooks={"response": [record]}, **kw
        )  # type: ignore[arg-type]

    def sql(self, query: str, **params: object) -> list[tuple[object, ...]]:
        engine = sa.create_engine(self.db_url)
        try:
            with engine.connect() as c:
                return [tuple(r) for r in c.execute(sa.text(query), params)]
        finally:
            engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, assets_dir: Path) -> Iterator[Live]:
    home = tmp_path_factory.mktemp(f"hostile-{request.param}")
    url = migrated_database(request.param, home)
    engine = make_engine(url)
    with transaction(session_factory(engine)) as s:
        add_researcher(s, EMAIL, PASSWORD)
    engine.dispose()
    env = {
        "FIELDMARK_ENVIRONMENT": "test",
        "FIELDMARK_HOME": str(home),
        "FIELDMARK_DATABASE_URL": url,
        "FIELDMARK_STUDIES_DIR": str(REPO / "studies"),
        "FIELDMARK_ASSETS_DIR": str(assets_dir),
        "FIELDMARK_SECRET_KEY": SECRET,
        "FIELDMARK_LOGIN_ATTEMPTS_PER_MINUTE": "10",
    }
    log = home / "server.log"
    server = start_server(env, log)
    yield Live(server, url, log)
    stop_server(server)


def settings_for(live: Live, assets_dir: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=live.db_url,
        studies_dir=REPO / "studies",
        assets_dir=assets_dir,
        secret_key=SECRET,
    )


def enter(b: httpx.Client, study: str, query: str = "") -> httpx.Response:
    return b.get(f"/s/{study}" + (f"?{query}" if query else ""))


def join(b: httpx.Client, study: str, pid: str, session: str = "se") -> str:
    """Open the study link as Prolific sends it and agree: returns the private link's code."""
    r = enter(b, study, f"PROLIFIC_PID={pid}&STUDY_ID=st&SESSION_ID={session}")
    assert r.status_code == 303, r.text
    code = r.headers["location"].rsplit("/", 1)[-1]
    assert b.get(f"/p/{code}").status_code == 200
    assert answer(b, code, 0, choice="agree").status_code == 303
    return code


def answer(b: httpx.Client, code: str, page: int, **fields: str) -> httpx.Response:
    return b.post(f"/p/{code}", data={"page": str(page), "token": page_token(SECRET, code), **fields})


def rows_for(live: Live, pid: str) -> list[tuple[object, ...]]:
    return live.sql("SELECT code, status, origin FROM participants WHERE external_pid = :pid", pid=pid)


def login(b: httpx.Client, email: str = EMAIL, password: str = PASSWORD, **headers: str) -> httpx.Response:
    form = b.get("/r/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    return b.post("/r/login", data={"email": email, "password": password, "csrf": token.group(1)}, headers=headers)


# -- impersonation and re-entry ---------------------------------------------------------------------
def test_a_prolific_id_alone_never_takes_over_a_participation(live: Live) -> None:
    with live.browser() as victim, live.browser() as stranger:
        code = join(victim, "seagull-learning", "victimB", session="sessB")
        for query in ("PROLIFIC_PID=victimB", "PROLIFIC_PID=victimB&STUDY_ID=st&SESSION_ID=guessed"):
            r = enter(stranger, "seagull-learning", query)
            assert r.status_code == 409 and "already started this study" in r.text
            assert code not in r.text and code not in r.headers.get("location", "")
            assert page_token(SECRET, code) not in r.text
        # the same submission opened from Prolific on another device (its SESSION_ID): resumed
        with live.browser() as second_device:
            r = enter(second_device, "seagull-learning", "PROLIFIC_PID=victimB&STUDY_ID=st&SESSION_ID=sessB")
            assert r.status_code == 303 and r.headers["location"] == f"/p/{code}"
    assert len(rows_for(live, "victimB")) == 1


def test_second_attempts_get_the_already_taken_part_page(live: Live, studies: dict[str, LoadedStudy]) -> None:
    with live.browser() as b:  # screened out (16 years old), then back with only the cookie
        r = enter(b, "seagull-learning")
        code = r.headers["location"].rsplit("/", 1)[-1]
        assert answer(b, code, 0, choice="agree").status_code == 303
        assert answer(b, code, 1, q_age="16", q_birding="1").status_code == 303
        for _ in range(2):
            again = enter(b, "seagull-learning")
            assert again.status_code == 409 and "You have already taken part" in again.text
        assert b.get(f"/p/{code}").status_code == 200  # their own link still says why it ended
    status = live.sql("SELECT status FROM participants WHERE code = :c", c=code)
    assert status == [("screened_out",)]
    with live.browser() as b:  # completed, then back with the cookie and with the Prolific id elsewhere
        bot = Bot(b, studies["seagull-agreement"], "oracle", random.Random(3))
        result = bot.run(f"{live.server.url}/s/seagull-agreement?PROLIFIC_PID=doneC&STUDY_ID=st&SESSION_ID=sc")
        assert result.status == "completed", result.status
        assert enter(b, "seagull-agreement").status_code == 409
        assert enter(b, "seagull-agreement", "PROLIFIC_PID=doneC").status_code == 409
    with live.browser() as other:
        r = enter(other, "seagull-agreement", "PROLIFIC_PID=doneC&STUDY_ID=st&SESSION_ID=sc")
        assert r.status_code == 409 and "You have already taken part" in r.text
    assert [row[1] for row in rows_for(live, "doneC")] == ["completed"]


def test_declining_has_its_own_no_consent_code(live: Live) -> None:
    with live.browser() as b:
        r = enter(b, "seagull-learning", "PROLIFIC_PID=declineD&STUDY_ID=st&SESSION_ID=sd")
        code = r.headers["location"].rsplit("/", 1)[-1]
        assert answer(b, code, 0, choice="decline").status_code == 303
        ended = b.get(f"/p/{code}").text
        assert "cc=FMNOCONS1" in ended and "FMSCREEN1" not in ended and "FMLEARN1" not in ended
        back = enter(b, "seagull-learning", "PROLIFIC_PID=declineD&STUDY_ID=st&SESSION_ID=sd")
        assert back.status_code == 409 and "FMSCREEN1" not in back.text and "FMLEARN1" not in back.text
    assert [row[1] for row in rows_for(live, "declineD")] == ["declined"]


def test_link_previews_and_crawlers_make_no_participants(live: Live) -> None:
    before = live.sql("SELECT count(*) FROM participants")[0][0]
    for k in range(3):
        with live.browser(headers={"user-agent": "Slackbot-LinkExpanding 1.0"}) as preview:
            r = enter(preview, "seagull-learning", f"PROLIFIC_PID=ghost{k}&STUDY_ID=st&SESSION_ID=g{k}")
            assert r.status_code == 303
            assert preview.get(r.headers["location"]).status_code == 200  # it reads the consent page
        with live.browser() as no_cookies:  # one that does not keep cookies
            r = enter(no_cookies, "seagull-agreement", f"PROLIFIC_PID=ghostx{k}")
            no_cookies.cookies.clear()
            assert no_cookies.get(r.headers["location"]).status_code == 404
    assert live.sql("SELECT count(*) FROM participants")[0][0] == before
    # the same person opening the link twice (two tabs) and agreeing in both: one participation
    with live.browser() as b:
        first = enter(b, "seagull-learning", "PROLIFIC_PID=tabsT&STUDY_ID=st&SESSION_ID=t")
        second = enter(b, "seagull-learning", "PROLIFIC_PID=tabsT&STUDY_ID=st&SESSION_ID=t")
        assert first.headers["location"] == second.headers["location"]
        code = first.headers["location"].rsplit("/", 1)[-1]
        assert answer(b, code, 0, choice="agree").status_code == 303
        assert answer(b, code, 0, choice="agree").status_code == 303
    assert len(rows_for(live, "tabsT")) == 1


def test_bots_and_pilots_stay_out_of_counts_and_exports(
    live: Live, studies: dict[str, LoadedStudy], assets_dir: Path
) -> None:
    results = run_bots(studies["seagull-agreement"], 2, "random", live.server.url, 21, settings_for(live, assets_dir))
    assert all(r.status in ("completed", "ended") for r in results)
    assert {row[0] for row in live.sql("SELECT origin FROM participants WHERE external_pid LIKE 'bot21x%'")} == {"bot"}
    with live.browser() as r:
        assert login(r).status_code == 303
        monitor = r.get("/r/studies/seagull-agreement/monitor").text
        assert re.search(r"Not counted: \d+ bot", monitor)
        people = r.get("/r/studies/seagull-agreement/export/participants.csv").text
        assert ",bot," not in people
        every = r.get("/r/studies/seagull-agreement/export/participants.csv?origins=all")
        assert ",bot," in every.text and "all-origins" in every.headers["content-disposition"]


# -- server errors ----------------------------------------------------------------------------------
def test_nul_bytes_and_out_of_range_ids_get_a_4xx(live: Live) -> None:
    with live.browser() as b:
        for path in ("/p/%00", "/p/abc%00def", "/s/seagull-learning%00", "/p/x/feedback/%00", "/asset/%00"):
            assert 400 <= b.get(path).status_code < 500, path
        assert 400 <= enter(b, "seagull-learning", "PROLIFIC_PID=a%00b").status_code < 500
        r = b.get("/s/seagull-learning", headers={"cookie": 'fm-p-seagull-learning="\\000x"'})
        assert 400 <= r.status_code < 500
        r = b.get("/r/", headers={"cookie": 'fm-session="\\000"'})
        assert 400 <= r.status_code < 500
        assert 400 <= b.post("/r/login", data={"email": "eve\x00@example.org", "password": "x"}).status_code < 500
        assert 400 <= login(b, "eve\x00@example.org", "x").status_code < 500
        assert login(b).status_code == 303
        for pid in ("2147483648", "9223372036854775808", "1" + "0" * 40, "-5", "1e3", "%00"):
            r = b.get(f"/r/studies/seagull-learning/participants/{pid}")
            assert 400 <= r.status_code < 500, (pid, r.status_code)


def test_malformed_participant_forms_get_a_4xx_and_change_nothing(live: Live) -> None:
    with live.browser() as b:
        code = join(b, "seagull-learning", "malformedM")
        token = page_token(SECRET, code)
        cases = [
            {"page": "abc", "token": token},
            {"page": "99999999999999999999999", "token": token},
            {"page": "1", "token": "forged"},
            {"page": "1"},
            {"page": "1", "token": token, "q_age": "1e400", "q_birding": "1"},
            {"page": "1", "token": token, "q_age": "34", "q_birding": "99"},
            {"page": "1", "token": token, "q_age": "34", "q_birding": "1", "x" * 100: "1"},
        ]
        for data in cases:
            r = b.post(f"/p/{code}", data=data)
            assert 400 <= r.status_code < 500, (data, r.status_code)
        assert 400 <= b.post(f"/p/{code}", files={"q_age": ("a.txt", b"34")}, data={"page": "1"}).status_code < 500
        assert b.get(f"/p/{code}/feedback/99999999999999999999").status_code == 303  # nothing to show: back
        assert b.post(f"/p/{code}/event", data={"kind": "rm -rf", "token": token}).status_code == 400
    assert live.sql("SELECT cursor FROM participants WHERE code = :c", c=code) == [(1,)]


# -- what held before, and must keep holding ---------------------------------------------------------
def test_researcher_pages_refuse_anonymous_and_participant_cookies(live: Live) -> None:
    with live.browser() as b:
        join(b, "seagull-agreement", "anonA")
        for path in ("/r/", "/r/studies/seagull-agreement", "/r/studies/seagull-agreement/export/trials.csv"):
            r = b.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/r/login", path
        assert b.post("/r/studies/seagull-agreement/delete", data={"what": "all", "confirm": "x"}).status_code == 303
        forged = httpx.Cookies({"fm-session": "eyJpZCI6MX0.forged"})
        assert b.get("/r/", cookies=forged).status_code == 303


def test_double_and_concurrent_submits_store_one_row(live: Live) -> None:
    with live.browser() as b:
        code = join(b, "seagull-learning", "doubleD")
        replies: list[int] = []

        def send() -> None:
            with live.browser() as tab:
                replies.append(answer(tab, code, 1, q_age="40", q_birding="1").status_code)

        threads = [threading.Thread(target=send) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(s == 303 for s in replies), replies
        assert answer(b, code, 0, choice="decline").status_code == 303  # a stale form: changes nothing
    pid = live.sql("SELECT id, status, cursor FROM participants WHERE code = :c", c=code)
    assert [(s, c) for _, s, c in pid] == [("started", 2)]
    keys = live.sql("SELECT key FROM responses WHERE participant_id = :p ORDER BY key", p=pid[0][0])
    assert [k for (k,) in keys] == ["about-you", "consent"]


class Scripter(Bot):
    """Answers every free-text question with markup and a spreadsheet formula."""

    def fill(self, page, form, r):  # type: ignore[no-untyped-def]
        data = super().fill(page, form, r)
        for name in form.texts:
            data[name] = "<script>alert('x')</script>=HYPERLINK(1)"
        return data


def test_markup_in_answers_is_escaped_for_the_researcher(live: Live, studies: dict[str, LoadedStudy]) -> None:
    with live.browser() as b:
        bot = Scripter(b, studies["seagull-learning"], "random", random.Random(5))
        result = bot.run(f"{live.server.url}/s/seagull-learning?PROLIFIC_PID=xssX&STUDY_ID=st&SESSION_ID=x")
        assert result.status in ("completed", "ended"), result.status
    pid = live.sql("SELECT id FROM participants WHERE external_pid = 'xssX'")[0][0]
    with live.browser() as r:
        assert login(r).status_code == 303
        page = r.get(f"/r/studies/seagull-learning/participants/{pid}")
        assert page.status_code == 200 and "<script>alert" not in page.text
        if result.status == "completed":
            assert "&lt;script&gt;" in page.text
            exported = r.get("/r/studies/seagull-learning/export/participants.csv").text
            assert "'=HYPERLINK" not in exported or ",=HYPERLINK" not in exported


def test_oversized_bodies_and_path_traversal_are_refused(live: Live) -> None:
    with live.browser() as b:
        code = join(b, "seagull-learning", "bigB")
        big = answer(b, code, 1, q_age="40", q_birding="1", filler="x" * 200_000)
        assert big.status_code == 413
        for path in ("/asset/..%2F..%2Fapp%2Fsettings.py", "/static/..%2Fapp%2Fsettings.py", "/static/../README.md"):
            r = b.get(path)
            assert r.status_code == 404 and "DEV_SECRET" not in r.text, path


# -- the answer key and the clocks (issue 12's integrity cases) --------------------------------------
def test_the_counterfactual_answer_is_not_always_image_a(live: Live, studies: dict[str, LoadedStudy]) -> None:
    study = studies["sag-counterfactual"]
    for k in range(3):
        with live.browser() as b:
            bot = Bot(b, study, "oracle", random.Random(k))
            query = f"PROLIFIC_PID=sideS{k}&STUDY_ID=st&SESSION_ID=s{k}"
            result = bot.run(f"{live.server.url}/s/sag-counterfactual?{query}")
            # an oracle reads A and B off the page: always right only if page, key and score agree
            assert result.status == "completed" and result.correct == result.answered > 0, result
    rows = live.sql(
        'SELECT p.external_pid, r.step_id, r.answer, r.correct, r."values" FROM responses r '
        "JOIN participants p ON p.id = r.participant_id "
        "WHERE p.external_pid LIKE 'sideS%' AND r.task = 'counterfactual'"
    )
    sides: dict[tuple[object, object], list[str]] = {}
    for pid, block, answer, correct, values in rows:
        v = values if isinstance(values, dict) else json.loads(str(values))
        assert answer == v["answer_side"] and correct
        sides.setdefault((pid, block), []).append(v["answer_side"])
    assert {side for got in sides.values() for side in got} == {"a", "b"}
    assert all(abs(got.count("a") - got.count("b")) <= 1 for got in sides.values()), sides


def _to_next_trial(b: httpx.Client, study: LoadedStudy, code: str) -> dict[str, str]:
    """Answer the pages before the next trial as a bot would; the trial's form, filled in."""
    bot = Bot(b, study, "random", random.Random(1))
    for _ in range(20):
        page = PageParser()
        page.feed(b.get(f"/p/{code}").text)
        form = next(f for f in page.forms if f.action.startswith("/p/"))
        data = bot.fill(page, form, BotResult())
        if page.task:
            return {k: v for k, v in data.items() if isinstance(v, str)}
        assert b.post(f"/p/{code}", data=data).status_code == 303
    raise AssertionError("no trial")


def test_impossible_client_timings_are_not_stored(live: Live, studies: dict[str, LoadedStudy]) -> None:
    study = studies["seagull-agreement"]
    with live.browser() as b:
        code = join(b, "seagull-agreement", "clockC")
        for onset, response in (("90000", "1000"), ("0", "1e10"), ("nan", "5"), ("-1", "20")):
            data = _to_next_trial(b, study, code)
            data |= {"onset_ms": onset, "response_ms": response}
            assert b.post(f"/p/{code}", data=data).status_code == 303, (onset, response)
    rows = live.sql(
        'SELECT r.rt_ms, r.onset_ms, r.server_rt_ms, r."values" FROM responses r JOIN participants p '
        "ON p.id = r.participant_id WHERE p.external_pid = 'clockC' AND r.task IS NOT NULL ORDER BY r.page"
    )
    assert len(rows) == 4
    for rt, onset, server_rt, values in rows:
        v = values if isinstance(values, dict) else json.loads(str(values))
        assert rt is None and onset is None and v["timing_discarded"]
        assert server_rt is not None and 0 <= float(server_rt) < 600_000  # type: ignore[arg-type]


# -- accounts (late: their failures lock this shared address for a minute) -----------------------
def test_login_counts_each_failure_once_and_ignores_forged_addresses(live: Live) -> None:
    with live.browser() as owner:
        for _ in range(9):  # ten a minute: nine failures leave the owner one try
            assert login(owner, password="wrong").status_code == 401
        assert login(owner).status_code == 303
    with live.browser() as sprayer:  # password spraying, claiming another address on every try
        for k in range(10):  # all counted against the one real address (believed, each would count 1)
            login(sprayer, f"nobody{k}@example.org", "guess", **{"X-Forwarded-For": f"203.0.113.{k}"})
        assert login(sprayer, "nobody@example.org", "guess", **{"X-Forwarded-For": "203.0.113.99"}).status_code == 429


def test_the_login_form_has_csrf_protection(live: Live) -> None:
    with live.browser() as b:
        assert b.post("/r/login", data={"email": EMAIL, "password": PASSWORD}).status_code == 403
        b.get("/r/login")
        assert b.post("/r/login", data={"email": EMAIL, "password": PASSWORD, "csrf": "guess"}).status_code == 403


def test_serve_refuses_a_public_address_with_the_default_secret(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("fieldmark")
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "FIELDMARK_HOME": str(tmp_path),
        "FIELDMARK_STUDIES_DIR": str(REPO / "studies"),
    }
    done = subprocess.run(
        [str(exe), "serve", "--host", "0.0.0.0", "--no-upgrade"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "refusing to serve on 0.0.0.0" in done.stderr


def test_no_request_got_a_5xx_and_the_server_logged_no_traceback(live: Live) -> None:
    """Last in the module: every response of every test above, on this database."""
    assert len(live.statuses) > 150
    errors = [s for s in live.statuses if s[0] >= 500]
    assert errors == []
    log = live.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
