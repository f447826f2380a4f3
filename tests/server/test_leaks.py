"""Answer keys and model correctness never reach a participant's browser.

A crawler takes every shipped study in every condition and checks every page served before an
answer: no image ids or file names, no true class outside the answer options, no correctness
flags, and asset addresses that say nothing about what they show. It also keeps what a script
could read off each trial page (the position of each option, every id, attribute and title, the
page's size and the size of every asset it links) and checks that none of it predicts the right
answer better than chance: "the right answer is always Image A" and "the SAG diagram's title
carries the image id (and ids are numbered by species)" both failed this.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.bots import Bot, PageParser
from app.models import Participant
from app.steps import TASKS
from app.studies.loader import LoadedStudy
from app.studies.pages import page_count
from tests.server.conftest import SHIPPED_IDS

ALLOWED_HIDDEN = {"page", "token", "stage", "onset_ms", "response_ms", "timed_out"}
FORBIDDEN = re.compile(
    r"true_class|model_correct|is_correct|\bcorrect\b|predicted\.png|-predicted|-true|"
    r"explanations/|images/\d|\.npy|manifest",
    re.I,
)


@dataclass
class Seen:
    """One trial page before its answer: what a script could read off it, and the right answer."""

    group: tuple[str, str, str]  # (participant, block or "", task)
    key: str
    position: int  # of the right answer among the options
    options: int
    features: dict[str, tuple[float, ...] | str] = field(default_factory=dict)


class Features(HTMLParser):
    """Every attribute and every <title>/<desc> text of a page, as named features: the digits of
    a value are numbers (an id numbered by species shows as near numbers for one species), a
    value without digits is a category (a class name or a flag shows as the same value)."""

    def __init__(self) -> None:
        super().__init__()
        self.out: dict[str, list[tuple[float, ...] | str]] = {}
        self._text: str | None = None

    def add(self, name: str, value: str) -> None:
        if value.startswith("data:") or value.startswith("/asset/"):
            return  # embedded pictures are content; asset names are checked to be opaque above
        numbers = tuple(float(d) for d in re.findall(r"\d+", value))
        masked = re.sub(r"\d+", "#", value)
        family = f"{name}={masked}" if numbers else name
        self.out.setdefault(family, []).append(numbers or value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name not in ("src", "href") and value:
                self.add(f"{tag}@{name}", value)
        self._text = tag if tag in ("title", "desc") else None

    def handle_data(self, data: str) -> None:
        if self._text and data.strip():
            self.add(f"{self._text}@text", data.strip())

    def handle_endtag(self, tag: str) -> None:
        self._text = None


def page_features(html: str) -> dict[str, tuple[float, ...] | str]:
    """The first occurrence of each feature on the page (the rest repeat it or are per element)."""
    parser = Features()
    parser.feed(html)
    return {name: values[0] for name, values in parser.out.items()}


class Crawler(Bot):
    """An oracle bot that inspects each page before answering it."""

    def __init__(self, client: TestClient, study: LoadedStudy, sizes: bool = False) -> None:
        super().__init__(client, study, "oracle", random.Random(0))  # type: ignore[arg-type]
        self.pages_seen = 0
        self.names_by_id = {c.id: c.name for c in study.manifest.classes}
        self.seen: list[Seen] = []
        self.sizes = sizes  # also fetch every asset a trial page links, for its size
        self.condition = ""

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
            if 'class="neighbours"' in shown:  # always as many: a count that varied would say which are errors
                wanted = {c.neighbours for c in self.study.spec.conditions if c.explanation == "examples"}
                assert {len(re.findall(r'src="/asset/', shown))} == wanted, shown  # one picture each
            self.note(page, form, html)
        return super().fill(page, form, r)

    def note(self, page: PageParser, form, html: str) -> None:  # type: ignore[no-untyped-def]
        item = self.key.shown(page)  # type: ignore[union-attr]
        task = TASKS[page.task or ""]
        key, options = task.key(item), form.radios["answer"]
        # pooled per participant (one condition each) and task: a block's pages are not told apart
        seen = Seen((self.condition, "", page.task or ""), key, options.index(key), len(options))
        seen.features = page_features(html)
        if self.sizes:
            seen.features["page size"] = (float(len(re.sub(r'"data:[^"]*"', '""', html))),)
            for k, src in enumerate(dict.fromkeys(re.findall(r'(?:src|href)="(/asset/[^"]+)"', html))):
                seen.features[f"asset {k} size"] = (float(len(self.client.get(src).content)),)
        self.seen.append(seen)


def nearest_accuracy(values: list[tuple[float, ...] | str], keys: list[str]) -> float:
    """Leave-one-out accuracy of predicting each page's answer from the other pages' answers by
    the nearest value (equal categories; numbers by distance), ties by vote."""
    overall = Counter(keys).most_common()
    hits = 0
    for i, (v, k) in enumerate(zip(values, keys, strict=True)):
        others = [(w, y) for j, (w, y) in enumerate(zip(values, keys, strict=True)) if j != i]

        def distance(w: tuple[float, ...] | str, v: tuple[float, ...] | str = v) -> float:
            if isinstance(v, str) or isinstance(w, str) or len(v) != len(w):
                return 0.0 if v == w else math.inf
            return math.dist(v, w)

        best = min(distance(w) for w, _ in others)
        if best == math.inf:
            continue  # nothing alike: a script learns nothing here
        votes = Counter(y for w, y in others if distance(w) == best)
        top = max(votes.values())
        guess = next(y for y, _ in overall if votes.get(y) == top)
        hits += guess == k
    return hits / len(keys)


def chance(keys: list[str]) -> tuple[float, float]:
    """The best a script that reads nothing can do (always the commonest answer), and the margin
    within which sampling noise keeps a predictor that reads something useless (three standard
    errors)."""
    base = Counter(keys).most_common(1)[0][1] / len(keys)
    return base, 3 * math.sqrt(max(base * (1 - base), 0.05) / len(keys)) + 1 / len(keys)


def leaks(seen: list[Seen], kinds: str) -> list[str]:
    """What predicts the answer better than chance, per (condition, block, task)."""
    found = []
    groups: dict[tuple[str, str, str], list[Seen]] = {}
    for s in seen:
        groups.setdefault(s.group, []).append(s)
    for group, pages in groups.items():
        keys = [p.key for p in pages]
        if len(pages) < 4:
            continue
        base, margin = chance(keys)
        if kinds == "position":
            # position: the right answer's place among the options must not be a pattern; in a
            # verify task the options are always yes, no: the commonest answer's share is the
            # study's design (its correct/incorrect counts), anywhere else it is one in n
            expected = base if group[2] == "verify" else 1 / pages[0].options
            _, margin = chance(keys)
            share = Counter(p.position for p in pages).most_common(1)[0][1] / len(pages)
            if share > expected + margin:
                found.append(f"{group}: the right answer is at one position on {share:.0%} of trials")
            continue
        names = {n for p in pages for n in p.features if (n.endswith("size") == (kinds == "sizes"))}
        for name in sorted(names):
            have = [p for p in pages if name in p.features]
            if len(have) < 4:
                continue
            acc = nearest_accuracy([p.features[name] for p in have], [p.key for p in have])
            b, m = chance([p.key for p in have])
            if acc > b + m:
                found.append(f"{group}: {name!r} predicts the answer on {acc:.0%} of trials (chance {b:.0%})")
    return found


# In classify and simulate tasks the answer is the species the picture shows: every asset drawn
# from the picture carries it as the picture does, so sizes are checked where the answer is not
# in the picture (is the model right? which version keeps more confidence?).
SIZES_CHECKED = {"verify", "counterfactual"}


@pytest.mark.parametrize("study_id", SHIPPED_IDS)
def test_no_position_or_size_predicts_the_answer(
    client: TestClient, studies: dict[str, LoadedStudy], study_id: str
) -> None:
    study = studies[study_id]
    crawler = crawl_every_condition(client, study, sizes=True)
    assert crawler.seen
    found = leaks(crawler.seen, "position")
    found += leaks([s for s in crawler.seen if s.group[2] in SIZES_CHECKED], "sizes")
    assert not found, found


@pytest.mark.parametrize("study_id", SHIPPED_IDS)
def test_no_id_attribute_or_title_predicts_the_answer(
    client: TestClient, studies: dict[str, LoadedStudy], study_id: str
) -> None:
    crawler = crawl_every_condition(client, studies[study_id])
    found = leaks(crawler.seen, "attributes")
    assert not found, found


def test_the_leak_finder_finds_planted_leaks() -> None:
    """What the checks above would say about the two leaks they were written for."""
    rng = random.Random(3)
    species = [str(c) for c in range(59, 67)]
    always_a = [Seen(("sag", "test", "counterfactual"), "a", 0, 2) for _ in range(11)]
    assert leaks(always_a, "position")
    balanced = [Seen(("sag", "test", "counterfactual"), k, "ab".index(k), 2) for k in "abababbaab"]
    assert not leaks(balanced, "position")
    # ids numbered species by species (CUB's order), in a diagram's title; and opaque ones
    ids = [(s, 100 * k + rng.randint(0, 40)) for k, s in enumerate(species) for _ in range(2)]
    titled = [Seen(("sag", "learn", "classify"), s, 0, 8, {"title@id=sag-title-#": (float(i),)}) for s, i in ids]
    assert leaks(titled, "attributes")
    opaque = [Seen(("sag", "learn", "classify"), s, 0, 8, {"title@id=#": (float(rng.random()),)}) for s, _ in ids]
    assert not leaks(opaque, "attributes")
    flagged = [Seen(("x", "b", "verify"), k, 0, 2, {"div@data-answer": k}) for k in "yynnynynnyynnyynnyny"]
    assert leaks(flagged, "attributes")


@pytest.mark.parametrize("study_id", SHIPPED_IDS)
def test_no_page_of_any_condition_leaks_the_answer(
    client: TestClient, studies: dict[str, LoadedStudy], study_id: str
) -> None:
    crawl_every_condition(client, studies[study_id])


def crawl_every_condition(client: TestClient, study: LoadedStudy, sizes: bool = False) -> Crawler:
    """One crawler per condition (balanced assignment gives each its own), all completed."""
    crawler = Crawler(client, study, sizes)
    for k in range(len(study.spec.conditions)):
        crawler.condition = f"participant {k}"  # balanced assignment: one condition each
        result = crawler.run(f"/s/{study.id}?PROLIFIC_PID=crawl{k}")
        assert result.status == "completed", result
        assert result.answered and result.correct == result.answered  # an oracle: every answer right
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        seen = {p.condition for p in s.scalars(select(Participant).where(Participant.study_id == study.id))}
    assert seen == {c.id for c in study.spec.conditions}  # every condition was crawled
    assert crawler.pages_seen == len(study.spec.conditions) * (page_count(study) - 1)  # every page with a form
    return crawler
