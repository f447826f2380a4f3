"""The primary analysis: a yes/no outcome by condition, with crossed random intercepts.

    glmer(outcome ~ condition + (1 | participant) + (1 | item), family = binomial)

fitted as lme4 fits it by default (Laplace approximation, nAGQ = 1), by R's lme4 itself when R
is installed and otherwise by a Python port of the same fit (app/analysis/glmm.py, which agrees
with glmer to about 1 % of a standard error; docs/benchmarks.md). Which engine produced a result
is part of the result, and so is the reason when it is not the one asked for.

The test is not glmer's default Wald z. With 20-40 people per condition that z rejects a true
null 6-7 % of the time at the 5 % level: maximum likelihood underestimates the spread between
people by the factor N/(N - k) (N participants, k conditions), and a z ignores that the spread
is estimated at all. So each contrast is tested with

    t = estimate / (SE · √(N / (N - k))),   df = N - k,

the standard error scaled back from maximum likelihood's divisor to the unbiased one, and the
t reference distribution with the "containment" degrees of freedom of a between-participant
factor (SAS GLIMMIX's default). The 95 % interval is the same test inverted; with more than two
conditions a Wald F test of "no difference between any" comes with it. `make bench-stats`
checks the false-positive rate and the interval's coverage of this test over simulated studies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

from app.analysis import glmm, lme4
from app.errors import AppError

ENGINES = ("auto", "r", "python")
LEVEL = 0.95
FORMULA = "glmer({y} ~ condition + (1 | participant) + (1 | item), family = binomial)"
METHOD = (
    "Laplace approximation (glmer's default, nAGQ = 1); each condition against the reference by a Wald t-test "
    "with the standard error scaled by √(N/(N−k)) and df = N − k (N participants, k conditions); "
    "95 % intervals invert that test"
)
PYTHON_ENGINE = "Python port of glmer's Laplace fit (app/analysis/glmm.py)"


@dataclass(frozen=True)
class Engine:
    name: str  # "lme4" or "python"
    detail: str  # versions, or what the Python engine is
    note: str = ""  # why this engine, when it is not the one asked for


def choose_engine(wanted: str = "auto") -> Engine:
    """`auto`: lme4 when R and lme4 are installed, else Python (and the note says why);
    `r`: lme4 or an error; `python`: the Python port."""
    if wanted not in ENGINES:
        raise AppError(f"statistics engine {wanted!r}: use one of {', '.join(ENGINES)}")
    if wanted == "python":
        return Engine("python", PYTHON_ENGINE)
    ok, detail = lme4.available()
    if ok:
        return Engine("lme4", f"{detail} (glmer via Rscript)")
    if wanted == "r":
        raise AppError(f"the R engine was asked for, but {detail}")
    return Engine("python", PYTHON_ENGINE, note=f"R's lme4 is not available ({detail}), so the Python port was used")


@dataclass(frozen=True)
class Design:
    """One data set as the model sees it."""

    y: np.ndarray
    X: np.ndarray
    names: tuple[str, ...]  # "(Intercept)", then one per non-reference condition
    conditions: tuple[str, ...]  # reference first
    condition: np.ndarray  # each row's condition
    participant: np.ndarray  # integer codes
    item: np.ndarray
    participant_labels: tuple[str, ...]
    item_labels: tuple[str, ...]

    @property
    def n_participants(self) -> int:
        return len(self.participant_labels)

    @property
    def n_items(self) -> int:
        return len(self.item_labels)

    def rows(self, dataset: str = "1") -> list[tuple[str, str, int, str, str, str]]:
        """The rows R reads: dataset, reference condition, y, condition, participant, item."""
        return list(
            zip(
                [dataset] * len(self.y),
                [self.conditions[0]] * len(self.y),
                self.y.astype(int).tolist(),
                self.condition.tolist(),
                np.asarray(self.participant_labels)[self.participant].tolist(),
                np.asarray(self.item_labels)[self.item].tolist(),
                strict=True,
            )
        )


def design(
    df: pd.DataFrame, outcome: str, reference: str | None = None, conditions: list[str] | None = None
) -> Design | str:
    """The model's data from a trial table (participant_id, item_id, condition, `outcome`), or
    the reason it cannot be fitted."""
    data = df.dropna(subset=[outcome, "condition"])
    present = sorted(set(data["condition"]))
    order = [c for c in (conditions or present) if c in present]
    if len(order) < 2:
        return "needs answers from at least two conditions"
    ref = reference if reference in order else order[0]
    order = [ref, *(c for c in order if c != ref)]
    y = data[outcome].astype(bool).to_numpy(dtype=float)
    if y.min() == y.max():
        return f"every {outcome.replace('_', ' ')} value is {'yes' if y[0] else 'no'}: nothing varies to model"
    p_codes, p_labels = pd.factorize(data["participant_id"].astype(str), sort=True)
    i_codes, i_labels = pd.factorize(data["item_id"].astype(str), sort=True)
    if len(p_labels) <= len(order):
        return "needs more participants than conditions"
    alike = data.groupby("condition")[outcome].agg(lambda v: v.astype(bool).nunique() == 1)
    if alike.any():
        which = ", ".join(sorted(alike.index[alike]))
        return (
            f"in condition {which} every {outcome.replace('_', ' ')} value is the same, so its odds ratio is infinite "
            "(separation) and no logistic model can estimate it; read the descriptive table"
        )
    cond = data["condition"].to_numpy()
    X = np.column_stack([np.ones(len(y))] + [(cond == c).astype(float) for c in order[1:]])
    return Design(
        y=y,
        X=X,
        names=("(Intercept)", *order[1:]),
        conditions=tuple(order),
        condition=cond,
        participant=np.asarray(p_codes),
        item=np.asarray(i_codes),
        participant_labels=tuple(map(str, p_labels)),
        item_labels=tuple(map(str, i_labels)),
    )


@dataclass(frozen=True)
class Omnibus:
    """Wald F test that no condition differs from any other."""

    f: float
    df1: int
    df2: int
    p: float


@dataclass
class ConditionEffects:
    outcome: str
    formula: str
    reference: str
    engine: Engine
    method: str
    terms: pd.DataFrame  # term, estimate, se, se_test, df, t, p, ci_low, ci_high, odds_ratio, or_low, or_high
    omnibus: Omnibus | None
    participant_sd: float
    item_sd: float
    trials: int
    participants: int
    items: int
    singular: bool = False
    converged: bool = True
    notes: list[str] = field(default_factory=list)

    def contrast(self, condition: str) -> pd.Series:
        return self.terms.set_index("term").loc[condition]


def test_effects(
    d: Design,
    beta: np.ndarray,
    vcov: np.ndarray,
    sds: tuple[float, float],
    engine: Engine,
    outcome: str,
    singular: bool = False,
    notes: list[str] | None = None,
    converged: bool = True,
) -> ConditionEffects:
    """The calibrated test of each condition against the reference (and of all together)."""
    n, k = d.n_participants, len(d.conditions)
    df = n - k
    scale = math.sqrt(n / df)
    crit = float(stats.t.ppf(0.5 + LEVEL / 2, df))
    se = np.sqrt(np.diag(vcov))
    rows = []
    for j, name in enumerate(d.names):
        est, s = float(beta[j]), float(se[j]) * scale
        t = est / s
        rows.append(
            {
                "term": "intercept (" + d.conditions[0] + ")" if j == 0 else name,
                "estimate": est,
                "se": float(se[j]),
                "se_test": s,
                "df": df,
                "t": t,
                "p": float(2 * stats.t.sf(abs(t), df)),
                "ci_low": est - crit * s,
                "ci_high": est + crit * s,
                "odds_ratio": math.exp(est),
                "or_low": math.exp(est - crit * s),
                "or_high": math.exp(est + crit * s),
            }
        )
    omnibus = None
    if k > 2:
        b = beta[1:]
        v = vcov[1:, 1:] * scale**2
        f = float(b @ np.linalg.solve(v, b)) / (k - 1)
        omnibus = Omnibus(f, k - 1, df, float(stats.f.sf(f, k - 1, df)))
    return ConditionEffects(
        outcome=outcome,
        formula=FORMULA.format(y=outcome),
        reference=d.conditions[0],
        engine=engine,
        method=METHOD,
        terms=pd.DataFrame(rows),
        omnibus=omnibus,
        participant_sd=sds[0],
        item_sd=sds[1],
        trials=len(d.y),
        participants=n,
        items=d.n_items,
        singular=singular,
        converged=converged,
        notes=list(notes or []),
    )


def fit_python(d: Design, outcome: str, engine: Engine | None = None) -> ConditionEffects | str:
    with threadpool_limits(1):  # small matrices: BLAS threads only add overhead (30x here)
        f = glmm.fit(d.y, d.X, d.participant, d.item, d.names)
    if not np.isfinite(f.vcov).all():
        return f"the model has no finite standard errors here ({f.message})"
    notes = [] if f.converged else [f"the optimiser stopped early: {f.message}"]
    if f.singular:
        notes.append("a random-intercept sd was estimated at zero (a singular fit)")
    return test_effects(
        d, f.beta, f.vcov, f.sd, engine or Engine("python", PYTHON_ENGINE), outcome, f.singular, notes, f.converged
    )


def _from_r(d: Design, r: lme4.RFit, outcome: str, engine: Engine) -> ConditionEffects:
    notes = [f"lme4: {r.notes}"] if r.notes else []
    if r.singular and "singular" not in r.notes:
        notes.append("a random-intercept sd was estimated at zero (a singular fit)")
    if not r.converged:
        notes.append("lme4 warns that the fit did not converge, even refitted with bobyqa: treat it with care")
    sds = (r.sd.get("participant", float("nan")), r.sd.get("item", float("nan")))
    return test_effects(d, np.array(r.beta), r.vcov_matrix(), sds, engine, outcome, r.singular, notes, r.converged)


def fit_all(
    models: dict[str, tuple[pd.DataFrame, str]],
    reference: str | None = None,
    conditions: list[str] | None = None,
    engine: Engine | None = None,
) -> dict[str, ConditionEffects | str]:
    """Several primary-style analyses at once, {key: (trial table, outcome column)}: with R, all
    in one R process (its start-up and lme4's loading cost seconds). A model that cannot be
    fitted gets the reason instead; if R fails, the Python port fits everything and says why."""
    engine = engine or choose_engine()
    out: dict[str, ConditionEffects | str] = {}
    designs: dict[str, tuple[Design, str]] = {}
    for key, (df, outcome) in models.items():
        d = design(df, outcome, reference, conditions)
        if isinstance(d, str):
            out[key] = d
        else:
            designs[key] = (d, outcome)
    if engine.name == "lme4" and designs:
        try:
            fits, _ = lme4.fit_many([row for key, (d, _) in designs.items() for row in d.rows(key)])
            for key, (d, outcome) in designs.items():
                r = fits.get(key)
                if r is None or r.failed:
                    raise lme4.RUnavailable(f"glmer could not fit {outcome}: {r.failed if r else 'no output'}")
                out[key] = _from_r(d, r, outcome, engine)
            return out
        except lme4.RUnavailable as exc:
            engine = Engine("python", PYTHON_ENGINE, note=f"R was asked but failed ({exc}); the Python port was used")
    for key, (d, outcome) in designs.items():
        out[key] = fit_python(d, outcome, engine)
    return out


def condition_effects(
    df: pd.DataFrame,
    outcome: str = "correct",
    reference: str | None = None,
    conditions: list[str] | None = None,
    engine: Engine | None = None,
) -> ConditionEffects | str:
    """The primary analysis of `outcome` by condition, or the reason it cannot be fitted."""
    return fit_all({outcome: (df, outcome)}, reference, conditions, engine)[outcome]
