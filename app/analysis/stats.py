"""The statistics of an explanation study. Pure functions of data frames; no I/O.

- accuracy with 95 % Wilson intervals, by condition and by phase and model correctness;
- reliance (verify tasks): over-reliance = accepting wrong predictions, under-reliance =
  rejecting right ones;
- response times and confidence calibration by condition;
- a mixed-effects logistic regression of correctness on condition with random intercepts for
  participant and item (statsmodels' variational-Bayes binomial GLMM), reported as odds ratios.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
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


def accuracy(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """n, correct, accuracy and its Wilson interval for each group."""
    rows = []
    for key, g in df.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        k, n = int(g["correct"].fillna(False).sum()), len(g)
        p, lo, hi = wilson(k, n)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": n,
                "correct": k,
                "accuracy": p,
                "ci_low": lo,
                "ci_high": hi,
                "participants": g["participant_id"].nunique(),
            }
        )
    return pd.DataFrame(rows, columns=[*by, "n", "correct", "accuracy", "ci_low", "ci_high", "participants"])


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


def response_times(df: pd.DataFrame) -> pd.DataFrame:
    g = df.dropna(subset=["rt_ms"]).groupby("condition", sort=True)["rt_ms"]
    return pd.DataFrame(
        {"n": g.size(), "median_ms": g.median(), "q1_ms": g.quantile(0.25), "q3_ms": g.quantile(0.75)}
    ).reset_index()


def calibration(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy at each confidence level (1-5), by condition."""
    rated = df.dropna(subset=["confidence"])
    if rated.empty:
        return pd.DataFrame(columns=["condition", "confidence", "n", "accuracy"])
    out = rated.groupby(["condition", "confidence"], sort=True).agg(
        n=("correct", "size"), accuracy=("correct", lambda s: float(s.fillna(False).mean()))
    )
    return out.reset_index()


@dataclass
class MixedModel:
    formula_r: str
    formula_python: str
    reference: str
    terms: pd.DataFrame  # term, log-odds, sd, odds ratio and its 95 % interval
    participant_sd: float
    item_sd: float
    n: int
    note: str = ""


def mixed_model(df: pd.DataFrame, reference: str | None = None) -> MixedModel | None:
    """correct ~ condition + (1 | participant) + (1 | item), logit link, fitted by variational Bayes."""
    data = df.dropna(subset=["correct", "condition"]).copy()
    if data["condition"].nunique() < 2 or len(data) < 10 or data["correct"].nunique() < 2:
        return None  # nothing to model: one condition, too few trials, or every answer alike
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    ref = str(reference if reference in set(data["condition"]) else sorted(data["condition"].unique())[0])
    data["y"] = data["correct"].astype(int)
    data["participant"] = data["participant_id"].astype(str)
    data["item"] = data["item_id"].astype(str)
    fixed = f"y ~ C(condition, Treatment(reference='{ref}'))"
    model = BinomialBayesMixedGLM.from_formula(
        fixed, {"participant": "0 + C(participant)", "item": "0 + C(item)"}, data
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit_vb()
    names = model.exog_names
    rows: list[dict[str, Any]] = []
    for name, mean, sd in zip(names, fit.fe_mean, fit.fe_sd, strict=True):
        label = "intercept (" + ref + ")" if name == "Intercept" else name.split("[T.")[-1].rstrip("]")
        rows.append(
            {
                "term": label,
                "log_odds": mean,
                "sd": sd,
                "odds_ratio": math.exp(mean),
                "or_low": math.exp(mean - Z * sd),
                "or_high": math.exp(mean + Z * sd),
            }
        )
    vc = np.exp(fit.vcp_mean)  # random-effect standard deviations (log scale in statsmodels)
    return MixedModel(
        formula_r=f"glmer(correct ~ condition + (1 | participant) + (1 | item), family = binomial, "
        f"data = trials)  # condition reference level: {ref}",
        formula_python=f"BinomialBayesMixedGLM.from_formula(\"{fixed}\", {{'participant': '0 + C(participant)', "
        f"'item': '0 + C(item)'}}, trials).fit_vb()",
        reference=ref,
        terms=pd.DataFrame(rows),
        participant_sd=float(vc[0]),
        item_sd=float(vc[1]),
        n=len(data),
        note="variational Bayes posterior means; intervals are mean ± 1.96 posterior sd on the log-odds scale",
    )
