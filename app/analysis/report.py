"""The analysis report of a study: the same numbers on the dashboard, in the terminal and in HTML."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from app.analysis import data as D
from app.analysis import stats as S
from app.analysis.rules import answers
from app.studies.loader import LoadedStudy


@dataclass
class Report:
    study_id: str
    title: str
    counts: pd.DataFrame  # per condition: participants, completed, excluded by each rule
    accuracy: pd.DataFrame  # by condition (analysed participants, test-like phases)
    accuracy_split: pd.DataFrame  # by condition × phase × model correctness
    reliance: pd.DataFrame
    response_times: pd.DataFrame
    calibration: pd.DataFrame
    model: S.MixedModel | None
    excluded: dict[str, int] = field(default_factory=dict)
    analysed_participants: int = 0
    phases: list[str] = field(default_factory=list)


def build(session: Session, study: LoadedStudy, apply_exclusions: bool = True) -> Report:
    people = D.participants_frame(session, study)
    trials = D.trials_frame(session, study)
    extra = answers(session, study)
    flags = D.exclusion_flags(study, people, trials, extra)
    keep = set(flags.index[~flags["excluded"]]) if apply_exclusions else set(flags.index)
    analysed = trials[trials["participant_id"].isin(keep)]
    test_like = analysed[~analysed["phase"].isin(["learning", "practice"])]
    counts = (
        people.assign(excluded=people["participant_id"].map(flags["excluded"]))
        .groupby(people["condition"].fillna("unassigned"))
        .agg(
            participants=("participant_id", "size"),
            completed=("status", lambda s: int((s == "completed").sum())),
            excluded=("excluded", lambda s: int(s.sum())),
        )
        .reset_index()
    )
    excluded = {
        rule.removeprefix("excluded_"): int(flags[rule].sum()) for rule in flags.columns if rule.startswith("excluded_")
    }
    return Report(
        study_id=study.id,
        title=study.spec.title,
        counts=counts,
        accuracy=S.accuracy(test_like, ["condition"]),
        accuracy_split=S.accuracy(analysed, ["condition", "phase", "model_correct"]),
        reliance=S.reliance(test_like),
        response_times=S.response_times(test_like),
        calibration=S.calibration(test_like),
        model=S.mixed_model(test_like, reference=study.spec.conditions[0].id),
        excluded=excluded,
        analysed_participants=len(keep),
        phases=sorted(analysed["phase"].dropna().unique()),
    )


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def text(r: Report) -> str:
    """The report for a terminal."""
    lines = [
        f"{r.title} ({r.study_id})",
        "",
        f"participants analysed: {r.analysed_participants}; flagged and left out: "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r.excluded.items()),
        "",
    ]
    lines.append("Accuracy by condition (test trials, 95 % Wilson interval):")
    for row in r.accuracy.itertuples():
        lines.append(
            f"  {row.condition:<14} {_pct(row.accuracy):>7}  [{_pct(row.ci_low)}, {_pct(row.ci_high)}]  "
            f"n={row.n} trials, {row.participants} participants"
        )
    lines.append("")
    lines.append("By phase and whether the model was right:")
    for row in r.accuracy_split.itertuples():
        mc = "model right" if row.model_correct is True else "model wrong" if row.model_correct is False else "–"
        lines.append(
            f"  {row.condition:<14} {row.phase:<10} {mc:<12} {_pct(row.accuracy):>7}  "
            f"[{_pct(row.ci_low)}, {_pct(row.ci_high)}]  n={row.n}"
        )
    if not r.reliance.empty:
        lines += ["", "Reliance (verify trials): over = accepted wrong predictions, under = rejected right ones"]
        for row in r.reliance.itertuples():
            lines.append(
                f"  {row.condition:<14} over {_pct(row.over_reliance)} (n={row.n_wrong_items})  "
                f"under {_pct(row.under_reliance)} (n={row.n_right_items})"
            )
    if not r.response_times.empty:
        lines += ["", "Response time (median, quartiles):"]
        for row in r.response_times.itertuples():
            lines.append(
                f"  {row.condition:<14} {row.median_ms / 1000:.2f} s  [{row.q1_ms / 1000:.2f}, "
                f"{row.q3_ms / 1000:.2f}]  n={row.n}"
            )
    if r.model is not None:
        m = r.model
        lines += [
            "",
            f"Mixed-effects logistic regression (n={m.n} trials): {m.note}",
            f"  participant sd {m.participant_sd:.2f}, item sd {m.item_sd:.2f} (log-odds)",
        ]
        for row in m.terms.itertuples():
            lines.append(f"  {row.term:<24} odds ratio {row.odds_ratio:6.2f}  [{row.or_low:.2f}, {row.or_high:.2f}]")
        lines += [f"  in R: {m.formula_r}"]
    return "\n".join(lines)


def bars_svg(df: pd.DataFrame, label: str = "condition", value: str = "accuracy", title: str = "") -> str:
    """A horizontal bar chart with 95 % intervals, drawn as SVG (no plotting library)."""
    if df.empty:
        return ""
    row_h, left, width = 34, 150, 420
    height = 40 + row_h * len(df)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{left + width + 80}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = left + tick * width
        out.append(
            f'<line x1="{x:.0f}" y1="24" x2="{x:.0f}" y2="{height - 8}" stroke="#e1e4e8"/>'
            f'<text x="{x:.0f}" y="16" font-size="11" text-anchor="middle" fill="#606874">{int(tick * 100)}%</text>'
        )
    for k, row in enumerate(df.itertuples()):
        y = 30 + k * row_h
        v, lo, hi = getattr(row, value), row.ci_low, row.ci_high
        name = escape(str(getattr(row, label)))
        out.append(f'<text x="{left - 8}" y="{y + 16}" font-size="13" text-anchor="end" fill="#22262e">{name}</text>')
        if not math.isnan(v):
            out.append(f'<rect x="{left}" y="{y + 4}" width="{v * width:.1f}" height="18" fill="#1a6f5a" rx="3"/>')
            out.append(
                f'<line x1="{left + lo * width:.1f}" y1="{y + 13}" x2="{left + hi * width:.1f}" y2="{y + 13}" '
                f'stroke="#22262e" stroke-width="2"/>'
            )
            out.append(f'<text x="{left + width + 8}" y="{y + 17}" font-size="12" fill="#22262e">{100 * v:.1f}%</text>')
    out.append("</svg>")
    return "".join(out)
