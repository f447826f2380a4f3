"""The primary analysis: the Laplace fit, its agreement with lme4, and the calibrated test.

Data sets are simulated with a known truth (seeded), so each assertion is about behaviour that
a wrong fit or a wrong test would break: the gradient is the deviance's, a known effect lies in
its interval, a null effect is not flagged, and every result names the engine that made it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime

from app.analysis import glmm, lme4
from app.analysis import inference as I
from app.errors import AppError

R_PRESENT = lme4.available()[0]
needs_r = pytest.mark.skipif(not R_PRESENT, reason="R with lme4 is not installed (apt-get install r-cran-lme4)")


def simulate(
    effects: list[float],
    per: int = 40,
    trials: int = 16,
    items: int = 48,
    sd: float = 0.8,
    base: float = 0.6,
    seed: int = 0,
) -> pd.DataFrame:
    """A between-participant study: conditions in turn, each person `trials` of `items` at random."""
    rng = np.random.default_rng(seed)
    item_effect = rng.normal(0, sd, items)
    rows = []
    for person in range(per * len(effects)):
        cond = person % len(effects)
        ability = rng.normal(0, sd)
        chosen = rng.choice(items, trials, replace=False)
        p = 1 / (1 + np.exp(-(math.log(base / (1 - base)) + effects[cond] + ability + item_effect[chosen])))
        rows += [(person, int(i), f"c{cond}", bool(y)) for i, y in zip(chosen, rng.random(trials) < p, strict=True)]
    return pd.DataFrame(rows, columns=["participant_id", "item_id", "condition", "correct"])


PY = I.Engine("python", I.PYTHON_ENGINE)


def test_the_gradient_is_the_deviances() -> None:
    d = I.design(simulate([0.0, 0.4], per=15), "correct")
    assert not isinstance(d, str)
    lap = glmm._Laplace(d.y, d.X, d.participant, d.item)
    for point in ([0.7, 0.5, 0.3, 0.2], [0.0, 0.6, 0.1, 0.4], [0.9, 0.0, -0.2, 0.5]):
        x = np.array(point)
        exact = lap.deviance(x)[1]
        numeric = approx_fprime(x, lambda v: lap.deviance(v, gradient=False)[0], 1e-6)
        assert np.allclose(exact, numeric, rtol=1e-4, atol=2e-3), (point, exact, numeric)


def test_a_known_effect_is_recovered_within_its_interval() -> None:
    truth = 0.9
    e = I.condition_effects(simulate([0.0, truth], per=60, seed=3), engine=PY)
    assert not isinstance(e, str)
    c1 = e.contrast("c1")
    assert c1["ci_low"] <= truth <= c1["ci_high"]
    assert c1["p"] < 0.01 and c1["ci_low"] > 0  # and it is found
    assert c1["or_low"] == pytest.approx(math.exp(c1["ci_low"]))
    assert 0.5 < e.participant_sd < 1.2 and 0.5 < e.item_sd < 1.2  # the true sds are 0.8


def test_a_null_data_set_is_not_flagged() -> None:
    e = I.condition_effects(simulate([0.0, 0.0, 0.0, 0.0], per=30, seed=11), engine=PY)
    assert not isinstance(e, str)
    for c in ("c1", "c2", "c3"):
        row = e.contrast(c)
        assert row["ci_low"] < 0 < row["ci_high"] and row["p"] > 0.05
    assert e.omnibus is not None and e.omnibus.df1 == 3 and e.omnibus.df2 == 120 - 4 and e.omnibus.p > 0.05


def test_the_test_is_the_calibrated_one_not_glmers_z() -> None:
    """t with df = N - k and the SE scaled by √(N/(N-k)): wider than z with the raw SE."""
    e = I.condition_effects(simulate([0.0, 0.3], per=20, seed=5), engine=PY)
    assert not isinstance(e, str)
    row = e.contrast("c1")
    n, k = 40, 2
    assert row["df"] == n - k
    assert row["se_test"] == pytest.approx(row["se"] * math.sqrt(n / (n - k)))
    z_half = 1.959964 * row["se"]
    assert (row["ci_high"] - row["ci_low"]) / 2 > z_half * 1.05


def test_false_positives_stay_near_five_percent() -> None:
    """A guard, not the benchmark (make bench-stats runs thousands): 200 small null studies, where
    glmer's z test rejects 6-7 %; anything near the old engine's 52 % fails at once."""
    hits = 0
    for seed in range(200):
        e = I.condition_effects(simulate([0.0, 0.0], per=20, trials=12, seed=1000 + seed), engine=PY)
        assert not isinstance(e, str)
        hits += e.contrast("c1")["p"] < 0.05
    assert hits <= 18  # 9 %: P(X > 18 | n = 200, p = 0.05) < 0.2 %


def test_cases_without_a_model_say_why() -> None:
    df = simulate([0.0, 0.5], per=10, seed=2)
    assert "two conditions" in I.condition_effects(df[df["condition"] == "c0"], engine=PY)
    perfect = df.assign(correct=np.where(df["condition"] == "c1", True, df["correct"]))
    reason = I.condition_effects(perfect, engine=PY)
    assert isinstance(reason, str) and "separation" in reason and "c1" in reason


def test_the_engine_is_recorded_and_r_missing_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lme4, "available", lambda: (False, "Rscript is not on PATH"))
    engine = I.choose_engine("auto")
    assert engine.name == "python" and "not available" in engine.note and "Rscript" in engine.note
    e = I.condition_effects(simulate([0.0, 0.5], per=15, seed=4), engine=engine)
    assert not isinstance(e, str) and e.engine == engine
    with pytest.raises(AppError, match="R engine was asked"):
        I.choose_engine("r")
    with pytest.raises(AppError, match="use one of"):
        I.choose_engine("spss")


@needs_r
def test_python_and_lme4_agree() -> None:
    df = simulate([0.0, 0.5, -0.3], per=25, seed=8)
    py = I.condition_effects(df, engine=PY)
    r = I.condition_effects(df, engine=I.choose_engine("r"))
    assert not isinstance(py, str) and not isinstance(r, str)
    assert r.engine.name == "lme4" and "lme4" in r.engine.detail
    for a, b in zip(py.terms.itertuples(), r.terms.itertuples(), strict=True):
        assert a.term == b.term
        assert abs(a.estimate - b.estimate) < 0.02 * b.se
        assert a.se == pytest.approx(b.se, rel=0.03)
    assert py.participant_sd == pytest.approx(r.participant_sd, rel=0.01)


@needs_r
def test_several_models_go_to_r_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = lme4.fit_many
    monkeypatch.setattr(lme4, "fit_many", lambda rows: calls.append(len(rows)) or real(rows))
    a = simulate([0.0, 0.5], per=15, seed=1)
    b = a.assign(flipped=~a["correct"])
    out = I.fit_all({"a": (a, "correct"), "b": (b, "flipped")}, engine=I.choose_engine("r"))
    assert len(calls) == 1
    fa, fb = out["a"], out["b"]
    assert not isinstance(fa, str) and not isinstance(fb, str)
    assert fb.contrast("c1")["estimate"] == pytest.approx(-fa.contrast("c1")["estimate"], abs=1e-3)
