"""`make bench-web`: many simulated participants at once against a real uvicorn server.

Participants arrive over 30 s and take the seagull-agreement study over HTTP with a pause on every
page (3-10 s, and a 1-3 s stress pace) and double-submit some answers at once, as a double click does
without JavaScript.
Measured per configuration (SQLite with one worker; PostgreSQL with two): answers per second,
p50/p95/p99 latency of every request, errors, answers acknowledged but not stored (lost), and
duplicate rows. Written to docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import sqlalchemy as sa
import uvloop

from benchmarks.report import machine, write_section

PARTICIPANTS = int(os.environ.get("BENCH_PARTICIPANTS", "300"))
RAMP_S = float(os.environ.get("BENCH_RAMP_S", "30"))  # arrivals spread over this long
# Pause on every page, uniform in these bounds (seconds). People take this study at about 24 s a
# page (it says "about 10 minutes" for 25 pages): "people" is still faster than that, "stress"
# is the pace of someone clicking through.
PACES = {"stress": (1.0, 3.0), "people": (3.0, 10.0)}
STUDY = "seagull-agreement"
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')
RADIO = re.compile(r'<input type="radio" name="(\w+)" value="([^"]*)"')
NUMBER = re.compile(r'<input class="text" type="number" name="(\w+)"')


class Stats:
    def __init__(self) -> None:
        self.latency: list[float] = []
        self.errors: list[str] = []
        self.acknowledged: set[tuple[str, str]] = set()  # (participant code, page) answered with a 303
        self.answers = 0


class Abandoned(Exception):
    pass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str


class Connection:
    """One participant's keep-alive HTTP/1.1 connection, as a browser keeps one.

    A few lines of asyncio instead of an HTTP library: httpx spent as much CPU per request as the
    server did, on the same two cores, so it measured itself as much as the server.
    """

    def __init__(self, host: str, port: int, cookies: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.cookies = cookies if cookies is not None else {}  # the browser's cookie jar (shared by its tabs)

    async def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Reply:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        body = urlencode(form).encode() if form is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if self.cookies:
            head += "Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()) + "\r\n"
        if form is not None:
            head += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
                if name.lower() == "set-cookie":  # a consent page needs the study link's cookie
                    pair = value.strip().split(";", 1)[0]
                    key, _, val = pair.partition("=")
                    if "max-age=0" in value.lower() or val in ('""', ""):
                        self.cookies.pop(key, None)
                    else:
                        self.cookies[key] = val
        text = (await reader.readexactly(int(headers.get("content-length", "0")))).decode()
        if headers.get("connection") == "close":
            await self.close()
        return Reply(int(lines[0].split()[1]), headers, text)

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def participant(
    host: str, port: int, k: int, stats: Stats, rng: random.Random, think: tuple[float, float]
) -> None:
    conn = Connection(host, port)
    with contextlib.suppress(Abandoned):
        await _participant(conn, k, stats, rng, think)
    await conn.close()


async def _participant(conn: Connection, k: int, stats: Stats, rng: random.Random, think: tuple[float, float]) -> None:
    async def timed(method: str, url: str, form: dict[str, str] | None = None, via: Connection = conn) -> Reply:
        t0 = time.perf_counter()
        try:
            resp = await via.request(method, url, form)
        except (OSError, asyncio.IncompleteReadError) as e:  # counted; this participant gives up, as a person would
            stats.errors.append(f"{type(e).__name__} {method} {url}")
            raise Abandoned from e
        stats.latency.append(time.perf_counter() - t0)
        if resp.status >= 400:
            stats.errors.append(f"{resp.status} {url}")
        return resp

    await asyncio.sleep(rng.uniform(0, RAMP_S))  # people follow a study link over a while, not all at once
    resp = await timed("GET", f"/s/{STUDY}?PROLIFIC_PID=load{k}x{rng.getrandbits(32):x}")
    code = resp.headers.get("location", "").rsplit("/", 1)[-1]
    for _ in range(60):
        resp = await timed("GET", f"/p/{code}")
        html = resp.text
        if "All done" in html or resp.status >= 400:
            return
        hidden = dict(HIDDEN.findall(html))
        if "page" not in hidden:
            return
        data: dict[str, str] = dict(hidden)
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
        await asyncio.sleep(rng.uniform(*think))  # reading and thinking
        if rng.random() < 0.1:  # a double click without JavaScript: the same form twice at once
            second = Connection(conn.host, conn.port, conn.cookies)
            resp, again = await asyncio.gather(
                timed("POST", f"/p/{code}", data), timed("POST", f"/p/{code}", data, via=second)
            )
            await second.close()
            if again.status == 303:
                stats.acknowledged.add((code, hidden["page"]))
        else:
            resp = await timed("POST", f"/p/{code}", data)
        if resp.status == 303:
            stats.acknowledged.add((code, hidden["page"]))
            stats.answers += 1
            if "/feedback/" in resp.headers.get("location", ""):
                await timed("GET", resp.headers["location"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(port: int, n: int, think: tuple[float, float]) -> tuple[Stats, float, float]:
    """Run n participants; returns the stats, the wall time and the load generator's own CPU time."""
    stats = Stats()
    t0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(participant("127.0.0.1", port, k, stats, random.Random(k), think) for k in range(n)))
    return stats, time.perf_counter() - t0, time.process_time() - cpu0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(label: str, db_url: str, workers: int, home: Path, assets: Path, pace: str) -> str:
    port = _free_port()
    env = {
        **os.environ,
        "FIELDMARK_HOME": str(home),
        "FIELDMARK_DATABASE_URL": db_url,
        "FIELDMARK_ASSETS_DIR": str(assets),
        "FIELDMARK_SECRET_KEY": "bench-" + "k" * 40,
    }
    exe = Path(sys.executable).with_name("fieldmark")
    subprocess.run([str(exe), "db", "upgrade"], env=env, check=True, capture_output=True)
    # The server's log goes to a file: a pipe nobody reads fills up and stalls the server.
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--workers", str(workers), "--no-upgrade"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    cpu0 = _children_cpu()
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        stats, seconds, load_cpu = uvloop.run(load(port, PARTICIPANTS, PACES[pace]))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    server_cpu = _children_cpu() - cpu0  # the server and its workers, start-up included
    engine = sa.create_engine(db_url)
    with engine.connect() as c:
        stored = {
            (code, str(page))
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
    engine.dispose()
    lost = len(stats.acknowledged - stored)
    if stats.errors:
        print(label, "errors:", collections.Counter(e.split()[0] for e in stats.errors).most_common(5), flush=True)
    lat = sorted(stats.latency)
    q = statistics.quantiles(lat, n=100)
    return (
        f"| {label} | {pace} ({PACES[pace][0]:g}-{PACES[pace][1]:g} s) | {PARTICIPANTS} | "
        f"{stats.answers / seconds:.1f} | {q[49] * 1000:.0f} | {q[94] * 1000:.0f} | "
        f"{q[98] * 1000:.0f} | {len(stats.errors)} | {lost} | {dupes} | {len(lat)} | "
        f"{len(lat) / seconds:.0f} | {server_cpu / len(lat) * 1000:.1f} | {load_cpu / len(lat) * 1000:.1f} |"
    )


def main() -> None:
    from fieldmark.demo import RUN
    from pipeline.provenance import home

    assets = (home() / "assets").resolve()
    if not (assets / RUN / "manifest.json").is_file():
        raise SystemExit(f"bench-web needs the demo's asset run at {assets / RUN}: run `make demo` first")
    pg = os.environ.get("FIELDMARK_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    rows = []
    for pace in PACES:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure("SQLite, 1 worker", f"sqlite:///{tmp}/bench.db", 1, Path(tmp), assets, pace))
        engine = sa.create_engine(pg)
        with engine.begin() as c:
            c.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            c.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure("PostgreSQL, 2 workers", pg, 2, Path(tmp), assets, pace))
    header = (
        "| configuration | pace per page | participants | answers/s | p50 ms | p95 ms | p99 ms | errors | lost "
        "| duplicates | requests | requests/s | server CPU ms/request | load generator CPU ms/request |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    write_section(
        "web",
        f"""
## Study server under load (`make bench-web`)

Machine: {machine()}. The load generator (one asyncio process speaking plain HTTP/1.1 over one keep-alive
connection per participant, as a browser does) runs on the same two cores as the server. {PARTICIPANTS}
simulated participants arrive over {RAMP_S:.0f} s and take `{STUDY}` (25 pages) over HTTP, pausing on
every page for a time drawn uniformly from the pace's bounds, and double-clicking 10 % of their answers (the
same form twice at once on two connections, as a browser without JavaScript sends it). People take this
study at about 24 s a page (it says "about 10 minutes"); the *people* pace (3-10 s) is still faster than
that; the *stress* pace (1-3 s) is someone clicking straight through, three times the load again.
Latency is per request (pages and answers), measured by the load generator; "lost" counts answers the
server acknowledged (303) that are not in the database; "duplicates" counts (participant, page) pairs
stored twice. CPU per request: the server's processes (start-up included; PostgreSQL's own processes
not counted) and the load generator's. Target: p99 under 200 ms, no errors, nothing lost or duplicated.

{header}
{chr(10).join(rows)}
""",
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
