"""Power by simulation, before launch: how many participants does the study need?

Simulated participants take the study's test trials as the study file lays them out (trials per
person, item sets rotating within each condition) with the assumed accuracy of their condition,
varied by a random intercept per participant and per item on the log-odds scale. Each simulated
data set goes through the primary analysis's own fit and test (app/analysis/inference.py); a
difference counts as detected when that test's p is below 0.05. The fit is the Python port of
glmer's, since R would take about 0.3 s per fit: `make bench-stats` checks that the two agree
and that the power predicted here is the power observed on fresh simulations.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from app.analysis import glmm
from app.analysis.inference import PYTHON_ENGINE, Design, Engine, test_effects
from app.errors import AppError
from app.studies.loader import LoadedStudy

ALPHA = 0.05


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


@dataclass(frozen=True)
class Plan:
    """What a simulated study looks like: conditions and their accuracy, and the test trials."""

    accuracy: dict[str, float]  # reference first
    trials: int  # test trials per participant
    sets: int = 1  # item sets rotating within each condition (the pool holds trials × sets items)
    participant_sd: float = 0.5
    item_sd: float = 0.5

    def __post_init__(self) -> None:
        if len(self.accuracy) < 2:
            raise AppError("power needs at least two conditions to compare")
        if self.trials < 1 or self.sets < 1:
            raise AppError("power needs at least one test trial per participant")
        if self.participant_sd < 0 or self.item_sd < 0:
            raise AppError("--participant-sd and --item-sd cannot be negative")


def plan_for(study: LoadedStudy, accuracy: dict[str, float], participant_sd: float, item_sd: float) -> Plan:
    """The study's test blocks (every block that is not learning or practice) as one plan."""
    blocks = [b for b in study.spec.blocks if b.phase not in ("learning", "practice")] or study.spec.blocks
    trials = sum(b.items.correct + b.items.incorrect for b in blocks)
    sets = max(b.items.sets for b in blocks)
    return Plan(accuracy, trials, sets, participant_sd, item_sd)


def simulate(plan: Plan, n: int, rng: np.random.Generator) -> Design:
    """One simulated study of n participants, assigned to conditions in turn (as balanced
    assignment does), each answering the trials of their item set."""
    conditions = list(plan.accuracy)
    k = len(conditions)
    pool = plan.trials * plan.sets
    item_effect = rng.normal(0.0, plan.item_sd, pool)
    person = np.repeat(np.arange(n), plan.trials)
    cond = person % k
    item_set = (person // k) % plan.sets
    item = item_set * plan.trials + np.tile(np.arange(plan.trials), n)
    base = np.array([math.log(a / (1 - a)) for a in plan.accuracy.values()])
    eta = base[cond] + rng.normal(0.0, plan.participant_sd, n)[person] + item_effect[item]
    y = (rng.random(len(eta)) < 1 / (1 + np.exp(-eta))).astype(float)
    X = np.column_stack([np.ones(len(y))] + [(cond == j).astype(float) for j in range(1, k)])
    used, item_codes = np.unique(item, return_inverse=True)
    return Design(
        y=y,
        X=X,
        names=("(Intercept)", *conditions[1:]),
        conditions=tuple(conditions),
        condition=np.asarray(conditions)[cond],
        participant=person,
        item=item_codes,
        participant_labels=tuple(str(p) for p in range(n)),
        item_labels=tuple(str(i) for i in used),
    )


def detections(plan: Plan, n: int, seeds: list[int]) -> np.ndarray:
    """For each seed's simulated study: one column per comparison (p < 0.05), then "any" (the
    omnibus test with more than two conditions, else the one comparison)."""
    engine = Engine("python", PYTHON_ENGINE)
    out = np.zeros((len(seeds), len(plan.accuracy)), dtype=bool)
    with threadpool_limits(1):
        for row, seed in enumerate(seeds):
            d = simulate(plan, n, np.random.default_rng(seed))
            f = glmm.fit(d.y, d.X, d.participant, d.item, d.names)
            effects = test_effects(d, f.beta, f.vcov, f.sd, engine, "correct")
            p = effects.terms["p"].to_numpy()[1:]
            out[row, :-1] = p < ALPHA
            out[row, -1] = (effects.omnibus.p if effects.omnibus else p[0]) < ALPHA
    return out


def _job(args: tuple[Plan, int, list[int]]) -> np.ndarray:
    return detections(*args)


def power_table(
    plan: Plan,
    sizes: list[int],
    simulations: int,
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Power per size and comparison. `progress(k)` is called as each batch of k simulations ends."""
    conditions = list(plan.accuracy)
    reference = conditions[0]
    batch = 25
    jobs = [
        (plan, n, [seed * 1_000_003 + n * 10_007 + s for s in range(start, min(start + batch, simulations))])
        for n in sizes
        for start in range(0, simulations, batch)
    ]
    workers = workers or min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1, len(jobs))
    results: dict[int, list[np.ndarray]] = {n: [] for n in sizes}
    if workers <= 1:
        for job in jobs:
            results[job[1]].append(_job(job))
            if progress:
                progress(len(job[2]))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for job, hits in zip(jobs, pool.map(_job, jobs), strict=True):
                results[job[1]].append(hits)
                if progress:
                    progress(len(job[2]))
    rows = []
    for n in sizes:
        hits = np.vstack(results[n])
        names = [f"{c} vs {reference}" for c in conditions[1:]] + (["any difference"] if len(conditions) > 2 else [])
        for j, name in enumerate(names):
            col = hits[:, j] if name != "any difference" else hits[:, -1]
            p = float(col.mean())
            rows.append(
                {
                    "participants": n,
                    "comparison": name,
                    "assumed": (
                        f"{plan.accuracy[conditions[j + 1]]:.2f} vs {plan.accuracy[reference]:.2f}"
                        if name != "any difference"
                        else "omnibus F"
                    ),
                    "power": p,
                    "mc_se": math.sqrt(p * (1 - p) / len(col)),
                    "simulations": len(col),
                }
            )
    return pd.DataFrame(rows)
