"""`make bench-export`: export a million trial rows; time and peak memory of the exporting process.

Fills a fresh SQLite database with 62,500 participants × 16 trials of seagull-agreement (bulk
inserts; not timed), then runs `fieldmark export` in a child process and reports its wall time
and peak resident memory (the whole process: interpreter, libraries and the export).
Target: under 30 s and 200 MB.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from benchmarks.report import machine, write_section

ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "1000000"))
PER_PARTICIPANT = 16
STUDY = "seagull-agreement"


def fill(url: str, study_hash: str) -> None:
    from app.migrate import upgrade
    from app.models import Participant, Response, Study

    upgrade(url)
    engine = sa.create_engine(url)
    rng = random.Random(0)
    now = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    people = ROWS // PER_PARTICIPANT
    with engine.begin() as c:
        c.execute(
            sa.insert(Study),
            [
                {
                    "id": STUDY,
                    "version": 1,
                    "content_hash": study_hash,
                    "title": "bench",
                    "assign_lock": 0,
                    "loaded_at": now,
                }
            ],
        )
        conditions = ["prediction", "heatmap", "examples", "concepts"]
        batch = 20_000
        for start in range(0, people, batch):
            c.execute(
                sa.insert(Participant),
                [
                    {
                        "id": i + 1,
                        "code": f"c{i}",
                        "study_id": STUDY,
                        "study_hash": study_hash,
                        "condition": conditions[i % 4],
                        "item_set": 0,
                        "seed": i,
                        "status": "completed",
                        "cursor": 30,
                        "external_pid": f"pid{i}",
                        "is_pilot": False,
                        "created_at": now,
                        "last_seen_at": now,
                        "assigned_at": now,
                        "completed_at": now,
                    }
                    for i in range(start, min(people, start + batch))
                ],
            )
        for start in range(0, ROWS, batch):
            rows = []
            for j in range(start, min(ROWS, start + batch)):
                pid, k = j // PER_PARTICIPANT + 1, j % PER_PARTICIPANT
                right = rng.random() < 0.5
                rows.append(
                    {
                        "participant_id": pid,
                        "study_id": STUDY,
                        "study_hash": study_hash,
                        "key": f"verify:{k}",
                        "page": 3 + k,
                        "step_id": "verify",
                        "step_type": "trials",
                        "phase": "test",
                        "task": "verify",
                        "trial_index": k,
                        "condition": conditions[(pid - 1) % 4],
                        "item_id": str(100 + k),
                        "asset_id": f"igospp:{100 + k}:predicted",
                        "explanation": "heatmap",
                        "true_class": 62,
                        "model_prediction": 64,
                        "model_confidence": 0.8,
                        "model_correct": right,
                        "answer": "yes",
                        "correct": right,
                        "confidence": 3,
                        "onset_ms": 1000.0,
                        "response_ms": 2500.0,
                        "rt_ms": 1500.0,
                        "complete": True,
                        "received_at": now,
                    }
                )
            c.execute(sa.insert(Response), rows)
    engine.dispose()


def main() -> None:
    from fieldmark.demo import RUN
    from pipeline.provenance import home

    assets = (home() / "assets").resolve()
    if not (assets / RUN / "manifest.json").is_file():
        raise SystemExit(f"bench-export needs the demo's asset run at {assets / RUN}: run `make demo` first")
    from app.studies.loader import parse

    _, _, study_hash = parse(Path("studies") / f"{STUDY}.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/export.db"
        t0 = time.perf_counter()
        fill(url, study_hash)
        fill_s = time.perf_counter() - t0
        env = {
            **os.environ,
            "FIELDMARK_DATABASE_URL": url,
            "FIELDMARK_ASSETS_DIR": str(assets),
            "FIELDMARK_SECRET_KEY": "bench-" + "k" * 40,
        }
        exe = Path(sys.executable).with_name("fieldmark")
        t0 = time.perf_counter()
        subprocess.run([str(exe), "export", STUDY, "--out", f"{tmp}/out"], env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with Path(f"{tmp}/out/trials.csv").open() as fh:
            lines = sum(1 for _ in fh) - 1
        size_mb = Path(f"{tmp}/out/trials.csv").stat().st_size / 1e6
    verdict = f"time {'met' if seconds < 30 else 'missed'}, memory {'met' if peak_mb < 200 else 'missed'}"
    write_section(
        "export",
        f"""
## Export (`make bench-export`)

Machine: {machine()}. SQLite database with {ROWS:,} trial rows ({ROWS // PER_PARTICIPANT:,} participants;
filled in {fill_s:.0f} s, not timed). `fieldmark export {STUDY}` (trials.csv, participants.csv, codebook, study
file) in a child process: **{seconds:.1f} s**, peak resident memory of the whole process **{peak_mb:.0f} MB**
(interpreter and libraries included); trials.csv has {lines:,} rows ({size_mb:.0f} MB). Target: under 30 s and
200 MB: {verdict}.
""",
    )
    print(f"{lines} rows, {seconds:.1f} s, peak {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
