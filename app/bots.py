"""Simulated participants that take a study over real HTTP, reading the pages as a browser would.

Strategies: `random` answers at random; `oracle` answers right (it looks the answer up with the
server's secret and the asset run, as only a researcher could); `always-agree` accepts the
model's answer (yes in verify tasks, the shown prediction otherwise); `follow-model` gives the
model's answer in every task. Questionnaires get valid answers and attention checks the
instructed one (random bots answer them at random).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import httpx

from app.services.entry import bot_key
from app.settings import Settings
from app.steps import TASKS, step_type
from app.studies.items import Item, swap
from app.studies.loader import LoadedStudy

STRATEGIES = ("random", "oracle", "always-agree", "follow-model")


@dataclass
class Form:
    action: str = ""
    hidden: dict[str, str] = field(default_factory=dict)
    radios: dict[str, list[str]] = field(default_factory=dict)
    checks: dict[str, list[str]] = field(default_factory=dict)
    numbers: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class PageParser(HTMLParser):
    """Just enough of a page for a bot: forms, images, links, the model's shown answer, headings."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.images: list[tuple[str, dict[str, str | None]]] = []
        self.links: list[str] = []
        self.h1 = ""
        self.model_says = ""
        self.task: str | None = None
        self.labels: dict[str, str] = {}
        self._in: list[tuple[str, str]] = []  # open elements: (tag, class)
        self._last_radio: str | None = None

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        a = dict(attrs_list)
        cls = a.get("class") or ""
        if tag not in ("input", "img", "br", "meta", "link"):
            self._in.append((tag, cls))
        if tag == "form":
            self.forms.append(Form(action=a.get("action") or ""))
            if "trial-form" in cls:
                self.task = a.get("data-task")
        elif tag == "input" and self.forms:
            f, name, kind, value = self.forms[-1], a.get("name") or "", a.get("type"), a.get("value") or ""
            if kind == "hidden":
                f.hidden[name] = value
            elif kind == "radio":
                f.radios.setdefault(name, []).append(value)
                self._last_radio = value
            elif kind == "checkbox":
                f.checks.setdefault(name, []).append(value)
            elif kind == "number":
                lo, hi = a.get("min"), a.get("max")
                f.numbers[name] = (float(lo) if lo else None, float(hi) if hi else None)
        elif tag == "textarea" and self.forms:
            self.forms[-1].texts.append(a.get("name") or "")
        elif tag == "button" and self.forms and a.get("name"):
            self.forms[-1].buttons.append((a.get("name") or "", a.get("value") or ""))
        elif tag == "img":
            self.images.append((a.get("src") or "", a))
        elif tag == "a" and a.get("href"):
            self.links.append(a.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if self._in:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if not self._in:
            return
        tag = self._in[-1][0]
        if tag == "h1":
            self.h1 += data.strip()
        elif tag == "strong" and any("model-says" in c for _, c in self._in):
            self.model_says += data.strip()
        elif tag == "span" and self._last_radio is not None and data.strip():
            self.labels.setdefault(self._last_radio, data.strip())


@dataclass
class BotResult:
    status: str = "running"
    answered: int = 0
    correct: int = 0
    pages: int = 0
    code: str = ""


class Key:
    """What an oracle may know: the study's item behind each trial picture's opaque name."""

    def __init__(self, study: LoadedStudy) -> None:
        assert study.assets is not None
        self.study = study
        self.item_of: dict[str, Item] = {}
        for sets in study.items.values():  # a block never reuses an earlier block's pictures
            for it in (it for items in sets for it in items):
                self.item_of[study.assets.token(study.entries[it.image_id].image)] = it

    def item(self, src: str) -> Item | None:
        return self.item_of.get(src.rsplit("/", 1)[-1])

    def shown(self, page: PageParser) -> Item | None:
        """The item of a trial page as this participant sees it: a counterfactual question's
        versions may be shown the other way round (the first version image on the page is A)."""
        stimulus = next((src for src, a in page.images if "data-stimulus" in a), "")
        item = self.item(stimulus)
        if item is None or item.question is None:
            return item
        assert self.study.assets is not None
        b = self.study.assets.url(item.question.b.image)
        first = next((src for src, _ in page.images if src in (b, self.study.assets.url(item.question.a.image))), None)
        return swap(item) if first == b else item


class Bot:
    def __init__(self, client: httpx.Client, study: LoadedStudy, strategy: str, rng: random.Random) -> None:
        self.client, self.study, self.strategy, self.rng = client, study, strategy, rng
        self.key = Key(study) if strategy in ("oracle", "follow-model") else None
        self.names = {c.name: str(c.id) for c in study.manifest.classes}
        self.last_html = ""

    def run(self, entry: str, max_pages: int = 500) -> BotResult:
        r = BotResult()
        resp = self.client.get(entry, follow_redirects=True)
        for _ in range(max_pages):
            r.pages += 1
            self.last_html = resp.text
            m = re.search(r"/p/([^/?#]+)", str(resp.url))
            r.code = m.group(1) if m else r.code
            page = PageParser()
            page.feed(resp.text)
            if resp.status_code >= 400:
                r.status = f"error {resp.status_code}: {page.h1}"
                return r
            if page.h1 == "All done":
                r.status = "completed"
                return r
            if page.h1 in ("Thank you", "You have already taken part"):
                r.status = "ended"
                return r
            form = next((f for f in page.forms if f.action.startswith("/p/")), None)
            if form is None:
                nxt = next((h for h in page.links if h.startswith("/p/")), None)
                if nxt is None:
                    r.status = f"stuck on {page.h1!r}"
                    return r
                resp = self.client.get(nxt, follow_redirects=True)
                continue
            data = self.fill(page, form, r)
            resp = self.client.post(form.action, data=data, follow_redirects=True)
        r.status = "too many pages"
        return r

    def fill(self, page: PageParser, form: Form, r: BotResult) -> dict[str, str | list[str]]:
        data: dict[str, str | list[str]] = dict(form.hidden)
        if form.buttons:  # consent, with what static/js/device.js reports of a laptop's browser
            data |= {"choice": "agree", "device_class": "desktop", "viewport_w": "1366", "viewport_h": "850"}
            data |= {"screen_w": "1440", "screen_h": "900"}
            return data
        for name, values in form.radios.items():
            if name == "answer" and page.task:
                data["answer"] = self.answer(page, form, r)
            elif name == "answer":  # attention check
                data["answer"] = self.attention(values)
            elif name == "confidence":
                data["confidence"] = str(self.rng.randint(1, 5))
            else:
                data[name] = self.rng.choice(values)
        for name, values in form.checks.items():
            data[name] = [self.rng.choice(values)]
        for name, (lo, hi) in form.numbers.items():
            low = 18.0 if lo is None or lo < 18 else lo
            data[name] = str(int(self.rng.uniform(low, hi if hi is not None else low + 40)))
        for name in form.texts:
            data[name] = "no comment"
        if page.task:
            onset = 1000.0 + self.rng.random() * 100
            data["onset_ms"] = f"{onset:.1f}"
            data["response_ms"] = f"{onset + self.rng.uniform(700, 4000):.1f}"
            data["tab_hidden"] = "0"
        return data

    def attention(self, options: list[str]) -> str:
        if self.strategy == "random":
            return self.rng.choice(options)
        wanted = [a for s in self.study.spec.steps for a in step_type(s).instructed(s)]
        return next((o for o in options if o in wanted), self.rng.choice(options))

    def answer(self, page: PageParser, form: Form, r: BotResult) -> str:
        options = form.radios["answer"]
        task = TASKS[page.task or ""]
        item = self.key.shown(page) if self.key else None
        choice: str | None = None
        shown = self.names.get(page.model_says)  # the model's answer as the page shows it, if it does
        if self.strategy == "oracle" and item:
            choice = task.key(item)
        elif self.strategy == "always-agree":
            choice = task.follow(shown)
        elif self.strategy == "follow-model":
            choice = task.follow(shown or (str(item.predicted_class) if item else None))
        if choice not in options:
            choice = self.rng.choice(options)
        r.answered += 1
        if item is not None:  # scored by the bot's own key (oracle and follow-model have one)
            r.correct += int(task.score(item, choice))
        return choice


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_server(settings: Settings, studies: dict[str, LoadedStudy] | None = None) -> Iterator[str]:
    """A real uvicorn server on a free local port, in a thread, for as long as the block runs."""
    import uvicorn

    from app.main import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, studies), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class ServerProcess:
    """A `fieldmark serve` process (its own interpreter, as in production): `kill` is a SIGKILL."""

    process: subprocess.Popen[bytes]
    url: str
    port: int

    def kill(self) -> None:
        """SIGKILL the server and its workers (its own process group) at once: no shutdown at all."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def start_server(env: dict[str, str], log: Path, port: int | None = None, workers: int = 1) -> ServerProcess:
    """Start `fieldmark serve` with these FIELDMARK_ settings (on top of this process's environment)
    and wait until it answers /healthz. Its output goes to `log` (a pipe nobody reads would stall it)."""
    port = port or _free_port()
    exe = Path(sys.executable).with_name("fieldmark")
    command = [str(exe), "serve", "--port", str(port), "--workers", str(workers), "--no-upgrade"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the server did not start within 60 s: {log.read_text()[-2000:]}")


def stop_server(server: ServerProcess) -> None:
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def run_bots(
    study: LoadedStudy,
    n: int,
    strategy: str,
    url: str | None,
    seed: int,
    settings: Settings,
    studies: dict[str, LoadedStudy] | None = None,
    as_bots: bool = True,
) -> list[BotResult]:
    """n bots, one after another, each with its own client (cookies) and Prolific-style id.

    They say they are bots (FM_BOT, signed with the server's secret), so their data stay out of
    counts, balancing, analysis and exports; `as_bots=False` leaves that out, for tests whose bots
    stand in for people (the analysis of known truths)."""

    def go(base: str) -> list[BotResult]:
        out = []
        for k in range(n):
            with httpx.Client(base_url=base, timeout=30) as client:
                bot = Bot(client, study, strategy, random.Random(f"{seed}:{k}"))
                pid = f"bot{seed}x{k}x{random.Random(seed * 7919 + k).getrandbits(40):x}"
                query = f"PROLIFIC_PID={pid}&STUDY_ID=sim&SESSION_ID=s{k}"
                if as_bots:
                    query += f"&FM_BOT={bot_key(settings.secret_key, study.id)}"
                out.append(bot.run(f"{base}/s/{study.id}?{query}"))
        return out

    if url:
        return go(url.rstrip("/"))
    with local_server(settings, studies) as base:
        return go(base)
