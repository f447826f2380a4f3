"""Answer keys and model correctness never reach a participant's browser.

A crawler takes every shipped study in every condition and checks every page served before an
answer: no image ids or file names, no true class outside the answer options, no correctness
flags, and asset addresses that say nothing about what they show.
"""

import random
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.bots import Bot, PageParser
from app.models import Participant
from app.studies.loader import LoadedStudy
from app.studies.pages import page_count
from tests.server.conftest import SHIPPED_IDS

ALLOWED_HIDDEN = {"page", "token", "stage", "onset_ms", "response_ms", "timed_out"}
FORBIDDEN = re.compile(
    r"true_class|model_correct|is_correct|\bcorrect\b|predicted\.png|-predicted|-true|"
    r"explanations/|images/\d|\.npy|manifest",
    re.I,
)


class Crawler(Bot):
    """An oracle bot that inspects each page before answering it."""

    def __init__(self, client: TestClient, study: LoadedStudy) -> None:
        super().__init__(client, study, "oracle", random.Random(0))  # type: ignore[arg-type]
        self.pages_seen = 0
        self.names_by_id = {c.id: c.name for c in study.manifest.classes}

    def fill(self, page: PageParser, form, r):  # type: ignore[no-untyped-def]
        html = self.last_html
        self.pages_seen += 1
        assert set(form.hidden) <= ALLOWED_HIDDEN, form.hidden
        assert not FORBIDDEN.search(html), FORBIDDEN.search(html)
        for src in re.findall(r'(?:src|href)="(/asset/[^"]+)"', html):
            assert re.fullmatch(r"/asset/[A-Za-z0-9_-]{24}", src), src
        if page.task:
            stimulus = next(src for src, a in page.images if "data-stimulus" in a)
            item = self.key.item(stimulus)  # type: ignore[union-attr]
            truth = self.names_by_id[item.true_class]
            # the explanation itself may name species (nearest examples show theirs); the rest may
            # name the true class only as one of the options or as the model's (shown) answer
            shown = "".join(re.findall(r"<!-- explanation -->(.*?)<!-- /explanation -->", html, flags=re.S))
            rest = re.sub(r"<!-- explanation -->.*?<!-- /explanation -->", "", html, flags=re.S)
            allowed = int(truth in page.labels.values()) + int(page.model_says == truth)
            assert rest.count(truth) <= allowed, (truth, page.task)
            # the explanation explains the model's prediction: it names no species but the predicted one
            named = {n for n in self.names_by_id.values() if n in shown}
            assert named <= {self.names_by_id[item.predicted_class]}, (named, item)
        return super().fill(page, form, r)


@pytest.mark.parametrize("study_id", SHIPPED_IDS)
def test_no_page_of_any_condition_leaks_the_answer(
    client: TestClient, studies: dict[str, LoadedStudy], study_id: str
) -> None:
    crawl_every_condition(client, studies[study_id])


def crawl_every_condition(client: TestClient, study: LoadedStudy) -> None:
    """One crawler per condition (balanced assignment gives each its own), all completed."""
    crawler = Crawler(client, study)
    for k in range(len(study.spec.conditions)):
        result = crawler.run(f"/s/{study.id}?PROLIFIC_PID=crawl{k}")
        assert result.status == "completed", result
        assert result.answered and result.correct == result.answered  # an oracle: every answer right
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        seen = {p.condition for p in s.scalars(select(Participant).where(Participant.study_id == study.id))}
    assert seen == {c.id for c in study.spec.conditions}  # every condition was crawled
    assert crawler.pages_seen == len(study.spec.conditions) * (page_count(study) - 1)  # every page with a form
