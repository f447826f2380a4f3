"""Descriptive statistics of an explanation study. Pure functions of data frames; no I/O.

Every proportion comes with its 95 % Wilson interval. The tests of differences between
conditions live in app/analysis/inference.py.
"""

from __future__ import annotations

import math

import pandas as pd

Z = 1.959963984540054  # two-sided 95 %


def wilson(k: int, n: int, z: float = Z) -> tuple[float, float, float]:
    """Proportion and its Wilson score interval."""
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    p = k / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def proportion(df: pd.DataFrame, by: list[str], outcome: str = "correct", name: str = "accuracy") -> pd.DataFrame:
    """n, count, share of `outcome` and its Wilson interval for each group (missing counts as no)."""
    rows = []
    for key, g in df.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        k, n = int(g[outcome].fillna(False).astype(bool).sum()), len(g)
        p, lo, hi = wilson(k, n)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": n,
                outcome: k,
                name: p,
                "ci_low": lo,
                "ci_high": hi,
                "participants": g["participant_id"].nunique(),
            }
        )
    return pd.DataFrame(rows, columns=[*by, "n", outcome, name, "ci_low", "ci_high", "participants"])


def accuracy(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return proportion(df, by)


def agrees_with_model(answer: pd.Series, task: pd.Series, prediction: pd.Series) -> pd.Series:
    """Whether an answer sides with the model: "yes" in verify tasks, the predicted class otherwise
    (counterfactual questions have no model answer to side with)."""
    out = pd.Series(pd.NA, index=answer.index, dtype="boolean")
    verify = task == "verify"
    named = task.isin(["classify", "simulate"])
    out[verify] = answer[verify] == "yes"
    out[named] = answer[named] == prediction[named].astype("Int64").astype(str)
    out[answer.isna()] = pd.NA
    return out


def switching(df: pd.DataFrame) -> pd.DataFrame:
    """Two-stage trials: the first answer, the model's advice, the final answer. Towards = the
    first answer disagreed with the model and the final one agrees; away = the reverse."""
    two = df[df["first_answer"].notna()].copy()
    if two.empty:
        return pd.DataFrame()
    first = agrees_with_model(two["first_answer"], two["task"], two["model_prediction"])
    final = agrees_with_model(two["answer"], two["task"], two["model_prediction"])
    two["could_switch_towards"] = first == False  # noqa: E712 - nullable booleans
    two["switched_towards"] = (first == False) & (final == True)  # noqa: E712
    two["could_switch_away"] = first == True  # noqa: E712
    two["switched_away"] = (first == True) & (final == False)  # noqa: E712
    two["changed"] = two["first_answer"] != two["answer"]
    return two


def switching_table(two: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for cond, g in two.groupby("condition", sort=True):
        towards = g[g["could_switch_towards"]]
        away = g[g["could_switch_away"]]
        t = wilson(int(towards["switched_towards"].sum()), len(towards))
        a = wilson(int(away["switched_away"].sum()), len(away))
        rows.append(
            {
                "condition": cond,
                "trials": len(g),
                "changed_answer": float(g["changed"].mean()),
                "disagreed_first": len(towards),
                "switched_towards": t[0],
                "towards_low": t[1],
                "towards_high": t[2],
                "agreed_first": len(away),
                "switched_away": a[0],
                "away_low": a[1],
                "away_high": a[2],
                "first_accuracy": float(g["first_correct"].fillna(False).astype(bool).mean()),
                "final_accuracy": float(g["correct"].fillna(False).astype(bool).mean()),
            }
        )
    return pd.DataFrame(rows)


def reliance(df: pd.DataFrame) -> pd.DataFrame:
    """Verify tasks: how often wrong predictions were accepted and right ones rejected."""
    v = df[df["task"] == "verify"]
    rows = []
    for cond, g in v.groupby("condition", sort=True):
        wrong = g[g["model_correct"] == False]  # noqa: E712 - nullable booleans
        right = g[g["model_correct"] == True]  # noqa: E712
        over = wilson(int((wrong["answer"] == "yes").sum()), len(wrong))
        under = wilson(int((right["answer"] == "no").sum()), len(right))
        rows.append(
            {
                "condition": cond,
                "over_reliance": over[0],
                "over_low": over[1],
                "over_high": over[2],
                "n_wrong_items": len(wrong),
                "under_reliance": under[0],
                "under_low": under[1],
                "under_high": under[2],
                "n_right_items": len(right),
            }
        )
    return pd.DataFrame(rows)


def confusion(df: pd.DataFrame, names: dict[int, str]) -> pd.DataFrame:
    """Classify trials: how often each true species was answered as each species, per condition
    (counts; rows are the true species). Unanswered (timed-out) trials are left out."""
    c = df[(df["task"] == "classify") & df["answer"].notna()]
    if c.empty:
        return pd.DataFrame(columns=["condition", "true_species", "answer_species", "trials", "share_of_row"])
    answered = c["answer"].astype(int).map(names)
    out = (
        c.assign(true_species=c["true_class"].map(names), answer_species=answered)
        .groupby(["condition", "true_species", "answer_species"], sort=True)
        .size()
        .rename("trials")
        .reset_index()
    )
    totals = out.groupby(["condition", "true_species"])["trials"].transform("sum")
    out["share_of_row"] = out["trials"] / totals
    return out


def learning_curve(df: pd.DataFrame, points: int = 8) -> pd.DataFrame:
    """Accuracy by trial position (in each participant's own order) per block and condition; a long
    block's positions are pooled into at most `points` runs of equal length (1-2, 3-4, ...), since one
    trial per person per point is mostly noise."""
    if df.empty:
        return pd.DataFrame(columns=["step_id", "condition", "position", "positions", "n", "correct", "accuracy"])
    index = df["trial_index"].astype(int)
    width = df.groupby("step_id")["trial_index"].transform(lambda v: -(-(int(v.max()) + 1) // points))
    first = index // width * width + 1
    last = first + width - 1
    d = df.assign(
        position=(first + last) / 2,
        positions=[f"{a}" if a == b else f"{a}-{b}" for a, b in zip(first, last, strict=True)],
    )
    return proportion(d, ["step_id", "condition", "position", "positions"])


CLOCKS = {"client": "rt_ms", "server": "server_rt_ms"}  # clock -> trial column


def response_times(df: pd.DataFrame) -> pd.DataFrame:
    """Quantiles of the response time per clock and condition. The client clock runs from the picture
    shown to the answer given (JavaScript); the server clock from the page sent to the answer received,
    which adds loading and network but needs no script and cannot be forged by the browser."""
    columns = ["clock", "condition", "n", "median_ms", "q1_ms", "q3_ms", "p10_ms", "p90_ms"]
    tables = []
    for clock, column in CLOCKS.items():
        if column not in df:
            continue
        g = df.dropna(subset=[column]).groupby("condition", sort=True)[column]
        t = pd.DataFrame(
            {
                "n": g.size(),
                "median_ms": g.median(),
                "q1_ms": g.quantile(0.25),
                "q3_ms": g.quantile(0.75),
                "p10_ms": g.quantile(0.10),
                "p90_ms": g.quantile(0.90),
            }
        ).reset_index()
        tables.append(t.assign(clock=clock)[columns])
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)


def calibration(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy at each confidence level (1-5), by condition."""
    rated = df.dropna(subset=["confidence"])
    if rated.empty:
        return pd.DataFrame(columns=["condition", "confidence", "n", "correct", "accuracy", "ci_low", "ci_high"])
    return proportion(rated.assign(confidence=rated["confidence"].astype(int)), ["condition", "confidence"])
