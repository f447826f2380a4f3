"""Power by simulation, before launch: how many participants does the study need?

Simulated participants answer the study's test trials with the assumed accuracy of their
condition, varied by a random effect per participant and per item (on the log-odds scale).
Each simulated data set goes through the same mixed-effects analysis as real data; a difference
counts as detected when the odds ratio's 95 % interval excludes 1.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from html import escape

import numpy as np
import pandas as pd

from app.analysis.stats import mixed_model
from app.errors import AppError
from app.studies.loader import LoadedStudy


def parse_accuracy(text: str, conditions: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.partition("=")
        try:
            v = float(value)
        except ValueError:
            raise AppError(f"--accuracy {part!r}: write CONDITION=ACCURACY, e.g. none=0.60") from None
        if name not in conditions:
            raise AppError(f"--accuracy: {name!r} is not a condition of the study ({', '.join(conditions)})")
        if not 0 < v < 1:
            raise AppError(f"--accuracy {part!r}: accuracy must lie strictly between 0 and 1")
        out[name] = v
    if len(out) < 2:
        raise AppError("--accuracy needs at least two conditions to compare")
    return out


def parse_sizes(text: str) -> list[int]:
    try:
        start, stop, step = (int(v) for v in text.split(":"))
    except ValueError:
        raise AppError(f"--participants {text!r}: write START:STOP:STEP, e.g. 20:200:20") from None
    if start < 2 or step < 1 or stop < start:
        raise AppError("--participants: need 2 <= START <= STOP and STEP >= 1")
    return list(range(start, stop + 1, step))


def test_trials(study: LoadedStudy) -> int:
    blocks = [b for b in study.spec.blocks if b.phase not in ("learning", "practice")] or study.spec.blocks
    return sum(b.items.correct + b.items.incorrect for b in blocks)


def simulate(
    acc: dict[str, float], n: int, trials: int, participant_sd: float, item_sd: float, rng: np.random.Generator
) -> pd.DataFrame:
    conditions = list(acc)
    items = rng.normal(0, item_sd, trials)
    rows = []
    for k in range(n):
        cond = conditions[k % len(conditions)]
        person = rng.normal(0, participant_sd)
        logit = math.log(acc[cond] / (1 - acc[cond])) + person + items
        p = 1 / (1 + np.exp(-logit))
        correct = rng.random(trials) < p
        rows += [
            {"participant_id": k, "condition": cond, "item_id": i, "correct": bool(c)} for i, c in enumerate(correct)
        ]
    return pd.DataFrame(rows)


def _one(args: tuple[dict[str, float], int, int, float, float, int, str]) -> dict[str, bool]:
    acc, n, trials, psd, isd, seed, reference = args
    df = simulate(acc, n, trials, psd, isd, np.random.default_rng(seed))
    m = mixed_model(df, reference)
    if m is None:
        return {}
    return {
        row.term: bool(row.or_low > 1 or row.or_high < 1)
        for row in m.terms.itertuples()
        if not row.term.startswith("intercept")
    }


def power_table(
    study: LoadedStudy,
    acc: dict[str, float],
    sizes: list[int],
    simulations: int,
    participant_sd: float = 0.5,
    item_sd: float = 0.5,
    seed: int = 0,
    workers: int | None = None,
) -> pd.DataFrame:
    reference = next(iter(acc))
    trials = test_trials(study)
    rows = []
    for n in sizes:
        jobs = [
            (acc, n, trials, participant_sd, item_sd, seed * 1_000_003 + n * 1009 + s, reference)
            for s in range(simulations)
        ]
        if workers == 1 or simulations < 8:
            results = [_one(j) for j in jobs]
        else:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(_one, jobs, chunksize=4))
        for cond in acc:
            if cond == reference:
                continue
            hits = [r.get(cond, False) for r in results]
            rows.append(
                {
                    "participants": n,
                    "comparison": f"{cond} vs {reference}",
                    "assumed": f"{acc[cond]:.2f} vs {acc[reference]:.2f}",
                    "power": float(np.mean(hits)),
                    "simulations": simulations,
                }
            )
    return pd.DataFrame(rows)


def svg_plot(table: pd.DataFrame) -> str:
    """Power against participants, one line per comparison, with the usual 80 % line."""
    w, h, left, bottom = 560, 320, 50, 40
    xs = sorted(table["participants"].unique())
    lo, hi = min(xs), max(xs)
    colours = ["#1a6f5a", "#d08a1c", "#3b5ba9", "#b3261e", "#6b4c9a"]

    def x(v: float) -> float:
        return left + (v - lo) / max(1, hi - lo) * (w - left - 20)

    def y(v: float) -> float:
        return h - bottom - v * (h - bottom - 20)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 200}" height="{h}" role="img" '
        'aria-label="Power by number of participants"><title>Power by number of participants</title>'
    ]
    for t in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
        out.append(
            f'<line x1="{left}" y1="{y(t):.1f}" x2="{w - 20}" y2="{y(t):.1f}" stroke="'
            f'{"#b3261e" if t == 0.8 else "#e1e4e8"}"/><text x="{left - 6}" y="{y(t) + 4:.1f}" '
            f'font-size="11" text-anchor="end">{int(t * 100)}%</text>'
        )
    for v in xs:
        out.append(f'<text x="{x(v):.1f}" y="{h - bottom + 16}" font-size="11" text-anchor="middle">{v}</text>')
    out.append(f'<text x="{(left + w) / 2:.0f}" y="{h - 6}" font-size="12" text-anchor="middle">participants</text>')
    for k, (comp, g) in enumerate(table.groupby("comparison", sort=True)):
        c = colours[k % len(colours)]
        pts = " ".join(f"{x(r.participants):.1f},{y(r.power):.1f}" for r in g.itertuples())
        out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{w - 10}" y="{24 + 18 * k}" font-size="12" fill="{c}">{escape(str(comp))}</text>')
    out.append("</svg>")
    return "".join(out)
