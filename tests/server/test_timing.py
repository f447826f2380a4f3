"""Timings: impossible client times are dropped (never refused), and the server keeps its own clock.

A participant cannot fix a hidden field, so an answer with impossible onset/response times is
stored with empty client times and the reason (`timing_discarded`); every answer also gets the
server's response time (page first served -> answer received), so the too-fast exclusion works
without JavaScript and cannot be fooled by a forged client clock.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.bots import Bot, PageParser, local_server
from app.export.files import export
from app.main import create_app
from app.models import Participant, Response
from app.settings import Settings
from app.steps.trials import client_times
from app.studies.loader import LoadedStudy
from tests.server.helpers import advance, current_index, page, post, start


def _trial_page(client: TestClient) -> tuple[str, int]:
    """A seagull-agreement participant on their first trial."""
    code = start(client, "seagull-agreement")
    advance(client, code, choice="agree")
    advance(client, code)
    return code, current_index(page(client, code))


def _rows(client: TestClient) -> list[Response]:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        return list(s.scalars(select(Response).where(Response.step_type == "trials").order_by(Response.id)))


@pytest.mark.parametrize(
    ("onset", "response", "reason"),
    [
        ("90000", "1000", "response_ms is before onset_ms"),  # was stored as rt_ms = -89000
        ("0", "1e10", "beyond 24 hours"),
        ("-5", "100", "negative"),
        ("nan", "100", "beyond 24 hours"),
        ("100", "inf", "beyond 24 hours"),
        ("soon", "100", "onset_ms is not a number"),
        ("100", "", "response_ms is missing"),
    ],
)
def test_impossible_client_times_are_dropped_and_the_answer_kept(
    client: TestClient, onset: str, response: str, reason: str
) -> None:
    code, index = _trial_page(client)
    r = post(client, code, index, answer="yes", onset_ms=onset, response_ms=response)
    assert r.status_code == 303  # the participant goes on
    assert current_index(page(client, code)) == index + 1
    [row] = _rows(client)
    assert row.answer == "yes" and row.onset_ms is None and row.response_ms is None and row.rt_ms is None
    assert reason in (row.values or {}).get("timing_discarded", "")
    assert row.server_rt_ms is not None and row.server_rt_ms >= 0


def test_plausible_client_times_are_kept() -> None:
    assert client_times({"onset_ms": "1000.5", "response_ms": "2500"}) == (1000.5, 2500.0, None)
    assert client_times({}) == (None, None, None)  # no JavaScript: nothing to say
    assert client_times({"onset_ms": " ", "response_ms": ""}) == (None, None, None)


def test_the_server_clock_times_each_trial_from_the_page_served(client: TestClient) -> None:
    code, index = _trial_page(client)
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        p = s.scalar(select(Participant).where(Participant.code == code))
        assert p.served_page == index and p.served_at is not None
        first = p.served_at
    time.sleep(0.25)
    page(client, code)  # a refresh keeps the first time: the page has been open since then
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(Participant.served_at).where(Participant.code == code)) == first
    post(client, code, index, answer="no")  # no JavaScript: no client times
    [row] = _rows(client)
    assert row.rt_ms is None and row.onset_ms is None and not (row.values or {}).get("timing_discarded")
    assert row.served_at is not None and 250 <= row.server_rt_ms < 60_000
    received = row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=dt.UTC)
    served = row.served_at if row.served_at.tzinfo else row.served_at.replace(tzinfo=dt.UTC)
    assert abs((received - served).total_seconds() * 1000 - row.server_rt_ms) < 1


class NoScript(Bot):
    """A participant without JavaScript who clicks through: no client times at all."""

    def fill(self, page: PageParser, form: Any, r: Any) -> dict[str, str | list[str]]:
        data = super().fill(page, form, r)
        data.pop("onset_ms", None)
        data.pop("response_ms", None)
        return data


def test_too_fast_is_caught_without_javascript_and_despite_forged_times(
    settings: Settings, studies: dict[str, LoadedStudy], tmp_path: Path
) -> None:
    study = studies["seagull-learning"]  # exclusions: min_median_rt_ms 800
    import httpx

    with local_server(settings, studies) as base:
        for k, kind in enumerate((NoScript, Bot)):  # Bot sends client times of 0.7 to 4 s: forged, far too slow
            with httpx.Client(base_url=base, timeout=30) as c:
                result = kind(c, study, "oracle", random.Random(k)).run(f"{base}/s/{study.id}?PROLIFIC_PID=fast{k}")
                assert result.status == "completed", result
        # and one who really took their time: their pages were served two seconds before each answer
        app = create_app(settings, studies)
        with httpx.Client(base_url=base, timeout=30) as c:
            slow = _Slow(c, study, "oracle", random.Random(9), app)
            assert slow.run(f"{base}/s/{study.id}?PROLIFIC_PID=slow").status == "completed"
    with app.state.sessions() as s:
        export(s, study, tmp_path, settings.secret_key)
    app.state.engine.dispose()
    trials = pd.read_csv(tmp_path / "trials.csv")
    people = pd.read_csv(tmp_path / "participants.csv").set_index("status")
    assert trials["server_rt_ms"].notna().all() and len(people) == 3
    by = trials.groupby("participant")
    flagged = by["excluded_too_fast"].first()
    client_median = by["rt_ms"].median()
    assert flagged.sum() == 2  # the no-JS clicker and the forged clock; not the slow one
    assert client_median.isna().sum() == 1  # the no-JS participant has no client times
    assert (by["server_rt_ms"].median()[~flagged] >= 2000).all()
    assert people["median_server_rt_ms"].notna().all()


class _Slow(Bot):
    """Answers as if each page had been open for two seconds (the served time moved back)."""

    def __init__(self, client: Any, study: LoadedStudy, strategy: str, rng: random.Random, app: Any) -> None:
        super().__init__(client, study, strategy, rng)
        self.app = app

    def fill(self, page: PageParser, form: Any, r: Any) -> dict[str, str | list[str]]:
        code = form.action.rsplit("/", 1)[-1]
        with self.app.state.sessions() as s, s.begin():
            earlier = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
            s.execute(update(Participant).where(Participant.code == code).values(served_at=earlier))
        return super().fill(page, form, r)
