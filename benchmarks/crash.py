"""`make bench-crash`: SIGKILL the study server under 200 concurrent participants, restart it, and
check that nothing acknowledged was lost, nothing was stored twice, and every participant resumed
at the right page.

Participants take `seagull-agreement` over plain HTTP/1.1 (benchmarks/web.py's client, with its
cookie jar), quickly (1-4 s a page) so that the kill finds many mid-answer, and double-click
10 % of their answers. Some seconds in, the server and its workers get SIGKILL at once (no
shutdown of any kind) and a new server starts on the same port. Each participant whose request
failed waits for it, opens its private link again and checks the page it is shown: at least the
page after its last acknowledged answer, at most the page after the last answer it sent (an answer
the server stored but could not acknowledge counts as given). Then it carries on to the end.
Written to docs/benchmarks.md; run on SQLite (one worker) and PostgreSQL (two workers).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
import uvloop

from app.bots import ServerProcess, start_server, stop_server
from app.migrate import upgrade
from benchmarks.report import machine, write_section
from benchmarks.web import HIDDEN, NUMBER, RADIO, STUDY, Connection, Reply, _free_port

PARTICIPANTS = int(os.environ.get("BENCH_PARTICIPANTS", "200"))
RAMP_S = 5.0  # arrivals over this long
# seconds on each page: quick, so that the kill finds many participants mid-answer
THINK = tuple(float(x) for x in os.environ.get("BENCH_THINK_S", "1:4").split(":"))
KILL_AFTER_S = float(os.environ.get("BENCH_KILL_AFTER_S", "30"))
SECRET = "bench-crash-" + "k" * 40


@dataclass
class Person:
    code: str = ""
    acked: int = -1  # the last page whose answer was acknowledged (303)
    sent: int = -1  # the last page whose answer was sent
    done: bool = False
    resumed: list[tuple[int, int, int]] = field(default_factory=list)  # (shown, acked, sent) after a failure


@dataclass
class Run:
    people: list[Person]
    acknowledged: set[tuple[str, int]] = field(default_factory=set)
    server_errors: int = 0
    failures: int = 0  # requests that got no answer (the kill)
    up: asyncio.Event = field(default_factory=asyncio.Event)


class ServerDown(Exception):
    pass


async def _request(run: Run, conn: Connection, method: str, path: str, form: dict[str, str] | None = None) -> Reply:
    try:
        reply = await conn.request(method, path, form)
    except (OSError, asyncio.IncompleteReadError) as e:
        run.failures += 1
        await conn.close()
        raise ServerDown from e
    if reply.status >= 500:
        run.server_errors += 1
    return reply


async def participant(run: Run, port: int, k: int, rng: random.Random) -> None:
    me = run.people[k]
    conn = Connection("127.0.0.1", port)
    await asyncio.sleep(rng.uniform(0, RAMP_S))
    entry = f"/s/{STUDY}?PROLIFIC_PID=crash{k}x{rng.getrandbits(32):x}&STUDY_ID=c&SESSION_ID=c{k}"
    broken = False
    failures_in_a_row = 0
    for _ in range(400):
        if failures_in_a_row > 300:  # a minute without a server: give up, counted as not done
            break
        if me.done:
            break
        try:
            if broken:  # the server came back: where does it say we are?
                await run.up.wait()
                page = await _request(run, conn, "GET", f"/p/{me.code}" if me.code else entry)
                broken = False
                if me.code and page.status == 200 and (shown := dict(HIDDEN.findall(page.text)).get("page")):
                    me.resumed.append((int(shown), me.acked, me.sent))
            if not me.code:
                first = await _request(run, conn, "GET", entry)
                if first.status != 303:  # counted (a 5xx); try again, as a person reloads
                    await asyncio.sleep(1)
                    continue
                me.code = first.headers["location"].rsplit("/", 1)[-1]
            page = await _request(run, conn, "GET", f"/p/{me.code}")
            if "All done" in page.text:
                me.done = True
                break
            if page.status >= 500:
                await asyncio.sleep(1)
                continue
            hidden = dict(HIDDEN.findall(page.text))
            if "page" not in hidden:  # the end of their participation (screened out)
                break
            data = _answers(page.text, hidden, rng)
            await asyncio.sleep(rng.uniform(*THINK))
            index = int(hidden["page"])
            me.sent = max(me.sent, index)
            if rng.random() < 0.1:  # a double click: the same form twice at once
                second = Connection("127.0.0.1", port, conn.cookies)
                replies = await asyncio.gather(
                    _request(run, conn, "POST", f"/p/{me.code}", data),
                    _request(run, second, "POST", f"/p/{me.code}", data),
                    return_exceptions=True,
                )
                await second.close()
                if any(isinstance(r, BaseException) for r in replies):
                    raise ServerDown
                statuses = [r.status for r in replies if isinstance(r, Reply)]
            else:
                statuses = [(await _request(run, conn, "POST", f"/p/{me.code}", data)).status]
            if 303 in statuses:
                me.acked = max(me.acked, index)
                run.acknowledged.add((me.code, index))
            failures_in_a_row = 0
        except ServerDown:
            broken = True
            failures_in_a_row += 1
            await asyncio.sleep(0.2)
    await conn.close()


def _answers(html: str, hidden: dict[str, str], rng: random.Random) -> dict[str, str]:
    data = dict(hidden)
    radios: dict[str, list[str]] = {}
    for name, value in RADIO.findall(html):
        radios.setdefault(name, []).append(value)
    for name, values in radios.items():
        data[name] = rng.choice(values)
    if 'name="choice"' in html:
        data["choice"] = "agree"
    for name in NUMBER.findall(html):
        data[name] = "30"
    if "onset_ms" in data:
        data["onset_ms"], data["response_ms"] = "1000.0", f"{1000 + rng.uniform(500, 3000):.1f}"
    return data


async def _kill_and_restart(
    run: Run, holder: list[ServerProcess], env: dict[str, str], log: Path, workers: int
) -> float:
    await asyncio.sleep(KILL_AFTER_S)
    run.up.clear()
    holder[0].kill()
    t0 = time.perf_counter()
    try:
        holder[0] = await asyncio.to_thread(start_server, env, log, holder[0].port, workers)
    finally:
        run.up.set()  # also when the restart failed: the participants then fail and stop
    return time.perf_counter() - t0


async def _progress(run: Run) -> None:
    """A line every 10 s on stderr: how far the participants are."""
    t0 = time.perf_counter()
    while True:
        await asyncio.sleep(10)
        done = sum(p.done for p in run.people)
        print(
            f"  {time.perf_counter() - t0:4.0f} s: {len(run.acknowledged)} answers, {done} done, "
            f"{run.failures} failed requests, {run.server_errors} 5xx",
            file=sys.stderr,
            flush=True,
        )


async def _load(
    port: int, holder: list[ServerProcess], env: dict[str, str], log: Path, workers: int
) -> tuple[Run, float]:
    run = Run([Person() for _ in range(PARTICIPANTS)])
    run.up.set()
    killer = asyncio.create_task(_kill_and_restart(run, holder, env, log, workers))
    progress = asyncio.create_task(_progress(run))
    await asyncio.gather(*(participant(run, port, k, random.Random(k)) for k in range(PARTICIPANTS)))
    progress.cancel()
    return run, await killer


def measure(label: str, db_url: str, workers: int, home: Path, assets: Path) -> str:
    upgrade(db_url)
    env = {
        "FIELDMARK_HOME": str(home),
        "FIELDMARK_DATABASE_URL": db_url,
        "FIELDMARK_ASSETS_DIR": str(assets),
        "FIELDMARK_SECRET_KEY": SECRET,
    }
    log = home / "server.log"
    port = _free_port()
    holder = [start_server(env, log, port, workers)]
    try:
        run, downtime = uvloop.run(_load(port, holder, env, log, workers))
    finally:
        stop_server(holder[0])
    engine = sa.create_engine(db_url)
    with engine.connect() as c:
        stored = {
            (code, int(page))
            for code, page in c.execute(
                sa.text("SELECT p.code, r.page FROM responses r JOIN participants p ON p.id = r.participant_id")
            )
        }
        dupes = c.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT participant_id, key FROM responses "
                "GROUP BY participant_id, key HAVING count(*) > 1) d"
            )
        ).scalar()
        completed = c.execute(sa.text("SELECT count(*) FROM participants WHERE status = 'completed'")).scalar()
        people = c.execute(sa.text("SELECT count(*) FROM participants")).scalar()
    engine.dispose()
    lost = len(run.acknowledged - stored)
    resumed = [r for p in run.people for r in p.resumed]
    wrong = sum(not (acked + 1 <= shown <= sent + 1) for shown, acked, sent in resumed)
    return (
        f"| {label} | {PARTICIPANTS} | {KILL_AFTER_S:g} s | {downtime:.1f} s | {run.failures} | {len(resumed)} | "
        f"{wrong} | {len(run.acknowledged)} | {lost} | {dupes} | {run.server_errors} | {completed} of {people} |"
    )


def _assets(root: Path) -> Path:
    """The demo's asset run if `make demo` built one, else the test factory's (a second)."""
    from pipeline.provenance import home

    demo = (home() / "assets").resolve()
    if (demo / "demo" / "manifest.json").is_file():
        return demo
    from tests.factory import build_run

    return build_run(root / "assets")


def main() -> None:
    pg = os.environ.get("FIELDMARK_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        assets = _assets(Path(tmp))
        with tempfile.TemporaryDirectory() as home:
            rows.append(measure("SQLite, 1 worker", f"sqlite:///{home}/crash.db", 1, Path(home), assets))
            print(rows[-1], flush=True)
        engine = sa.create_engine(pg)
        with engine.begin() as c:
            c.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            c.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
        with tempfile.TemporaryDirectory() as home:
            rows.append(measure("PostgreSQL, 2 workers", pg, 2, Path(home), assets))
            print(rows[-1], flush=True)
    header = (
        "| configuration | participants | killed after | back after | requests that failed | resumed after the kill "
        "| resumed at a wrong page | answers acknowledged | lost | duplicates | 5xx | completed |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    write_section(
        "crash",
        f"""
## A server killed under load (`make bench-crash`)

Machine: {machine()}. {PARTICIPANTS} simulated participants (benchmarks/web.py's HTTP/1.1 client with a
cookie jar) arrive over {RAMP_S:g} s and take `{STUDY}` quickly ({THINK[0]:g}-{THINK[1]:g} s a page),
double-clicking 10 % of their answers. {KILL_AFTER_S:g} s in, the server and its workers get SIGKILL at
once and a new server starts on the same port ("back after": until it answers /healthz). A participant
whose request was cut waits for the server, opens its private link again and checks the page it is
shown: from the page after its last acknowledged answer to the page after the last answer it sent (an
answer stored but never acknowledged counts as given); then it carries on to the end. "Lost": answers
acknowledged (303) that are not in the database; "duplicates": (participant, page) pairs stored twice.
Load average at the end: {os.getloadavg()[0]:.0f} (other work on the machine slows the restart).

{header}
{chr(10).join(rows)}
""",
    )


if __name__ == "__main__":
    main()
