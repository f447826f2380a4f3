"""`make bench-web`: many simulated participants at once against a real uvicorn server.

Each participant takes the seagull-agreement study over HTTP with a think time between pages
(1-3 s, as people take at least that) and double-submits some answers, as double clicks do.
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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from benchmarks.report import machine, write_section

PARTICIPANTS = int(os.environ.get("BENCH_PARTICIPANTS", "300"))
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


async def participant(client: httpx.AsyncClient, k: int, stats: Stats, rng: random.Random) -> None:
    with contextlib.suppress(Abandoned):
        await _participant(client, k, stats, rng)


async def _participant(client: httpx.AsyncClient, k: int, stats: Stats, rng: random.Random) -> None:
    async def timed(method: str, url: str, **kw: object) -> httpx.Response:
        t0 = time.perf_counter()
        try:
            resp = await client.request(method, url, **kw)  # type: ignore[arg-type]
        except httpx.TransportError as e:  # counted, and this participant gives up (as a person would)
            stats.errors.append(f"{type(e).__name__} {method} {url}")
            raise Abandoned from e
        stats.latency.append(time.perf_counter() - t0)
        if resp.status_code >= 400:
            stats.errors.append(f"{resp.status_code} {url}")
        return resp

    resp = await timed("GET", f"/s/{STUDY}?PROLIFIC_PID=load{k}x{rng.getrandbits(32):x}")
    code = resp.headers.get("location", "").rsplit("/", 1)[-1]
    for _ in range(60):
        resp = await timed("GET", f"/p/{code}")
        html = resp.text
        if "All done" in html or resp.status_code >= 400:
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
        await asyncio.sleep(rng.uniform(1.0, 3.0))  # reading and thinking
        resp = await timed("POST", f"/p/{code}", data=data)
        if resp.status_code == 303:
            stats.acknowledged.add((code, hidden["page"]))
            stats.answers += 1
            if rng.random() < 0.1:  # a double click
                await timed("POST", f"/p/{code}", data=data)
            if "/feedback/" in resp.headers.get("location", ""):
                await timed("GET", resp.headers["location"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(base: str, n: int) -> tuple[Stats, float]:
    stats = Stats()
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(participant(client, k, stats, random.Random(k)) for k in range(n)))
        return stats, time.perf_counter() - t0


def measure(label: str, db_url: str, workers: int, home: Path, assets: Path) -> str:
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
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        stats, seconds = asyncio.run(load(base, PARTICIPANTS))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
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
        f"| {label} | {PARTICIPANTS} | {stats.answers / seconds:.1f} | {q[49] * 1000:.0f} | {q[94] * 1000:.0f} | "
        f"{q[98] * 1000:.0f} | {len(stats.errors)} | {lost} | {dupes} | {len(lat)} |"
    )


def main() -> None:
    from fieldmark.demo import RUN
    from pipeline.provenance import home

    assets = (home() / "assets").resolve()
    if not (assets / RUN / "manifest.json").is_file():
        raise SystemExit(f"bench-web needs the demo's asset run at {assets / RUN}: run `make demo` first")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(measure("SQLite, 1 worker", f"sqlite:///{tmp}/bench.db", 1, Path(tmp), assets))
    pg = os.environ.get("FIELDMARK_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    engine = sa.create_engine(pg)
    with engine.begin() as c:
        c.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        c.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(measure("PostgreSQL, 2 workers", pg, 2, Path(tmp), assets))
    header = (
        "| configuration | participants | answers/s | p50 ms | p95 ms | p99 ms | errors | lost | duplicates "
        "| requests |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    write_section(
        "web",
        f"""
## Study server under load (`make bench-web`)

Machine: {machine()}. The load generator (asyncio + httpx, one process) runs on the same two cores as
the server. {PARTICIPANTS} simulated participants take `{STUDY}` at once, over HTTP, thinking 1-3 s per page
and double-clicking 10 % of their answers. Latency is per request (pages and answers); "lost" counts
answers the server acknowledged (303) that are not in the database; "duplicates" counts
(participant, page) pairs stored twice. Target: p99 under 200 ms, no errors, nothing lost or duplicated.

{header}
{chr(10).join(rows)}
""",
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
