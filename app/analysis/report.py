"""The analysis report of a study: the same numbers on the dashboard, in the terminal, in HTML and as CSV.

A report is a list of sections, each one analysis a results section needs: its table (species
by name), a chart, the models that test it, and a sentence saying which trials it used and what
the exclusions removed. Sections without data in this study are left out, and the report says so.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from app.analysis import charts as C
from app.analysis import data as D
from app.analysis import inference as I
from app.analysis import stats as S
from app.analysis.rules import answers
from app.studies.loader import LoadedStudy
from app.util import atomic_write

NOT_TEST = ("learning", "practice")


@dataclass
class Model:
    """One test of a yes/no outcome by condition, with what it is about."""

    key: str
    question: str  # what the model answers, in words
    outcome_meaning: str  # what "yes" means
    result: I.ConditionEffects | str  # the fit, or why there is none


@dataclass
class Section:
    key: str  # anchor, CSV file name
    title: str
    data: str  # which trials, from whom
    table: pd.DataFrame
    charts: list[tuple[str, str]] = field(default_factory=list)  # (caption, SVG)
    models: list[Model] = field(default_factory=list)
    note: str = ""


@dataclass
class Exclusion:
    rule: str
    meaning: str
    applied: bool
    participants: int
    trials: int


@dataclass
class Report:
    study_id: str
    title: str
    conditions: list[tuple[str, str]]  # (id, label), the reference first
    engine: I.Engine
    computed_at: dt.datetime
    data_version: tuple[Any, ...]
    counts: pd.DataFrame  # per condition: participants, completed, excluded
    exclusions: list[Exclusion]
    analysed_participants: int
    analysed_trials: int
    non_real: int
    sections: list[Section]
    absent: list[str]  # analyses this study has no data for, and why

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)

    @property
    def primary(self) -> I.ConditionEffects | str:
        s = self.section("accuracy")
        return s.models[0].result if s and s.models else "no test trials answered yet"


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _people(n: int) -> str:
    return f"{n} participant{'s' if n != 1 else ''}"


def build(
    session: Session,
    study: LoadedStudy,
    apply_exclusions: bool = True,
    engine: I.Engine | None = None,
    all_origins: bool = False,
) -> Report:
    """The report on real participants (`all_origins`: pilots and bots too, for checking a study)."""
    engine = engine or I.choose_engine()
    version = D.data_version(session, study)
    people = D.participants_frame(session, study, all_origins)
    trials = D.trials_frame(session, study, all_origins)
    flags = D.exclusion_flags(study, people, trials, answers(session, study))
    names = {c.id: c.name for c in study.manifest.classes}
    conditions = [(c.id, c.label or c.id) for c in study.spec.conditions]
    order = [c for c, _ in conditions]
    palette = C.colours(order)
    reference = order[0]

    exclusions = _exclusions(study, flags, trials, apply_exclusions)
    keep = set(flags.index[~flags["excluded"]]) if apply_exclusions else set(flags.index)
    analysed = trials[trials["participant_id"].isin(keep)].copy()
    analysed["species"] = analysed["true_class"].map(names)
    test = analysed[~analysed["phase"].isin(NOT_TEST)]
    applied = _applied(exclusions)

    def data(what: str, df: pd.DataFrame) -> str:
        return (
            f"{what}: {len(df)} trials from {_people(df['participant_id'].nunique())}. Exclusions applied: {applied}."
        )

    models: dict[str, tuple[pd.DataFrame, str]] = {}
    sections: list[Section] = []
    absent: list[str] = []

    # 1. accuracy on the test trials, and the primary model
    acc = S.accuracy(test, ["condition"])
    models["correct"] = (test, "correct")
    sections.append(
        Section(
            "accuracy",
            "Accuracy by condition (test trials)",
            data("Test trials (every phase but learning and practice)", test),
            acc,
            [("Accuracy by condition", _bars(acc, "condition", palette))],
            [Model("correct", "Does the condition change how often answers are right?", "the answer was right", "")],
        )
    )
    # 2. by phase and by whether the model was right
    split = S.accuracy(analysed, ["phase", "model_correct", "condition"])
    split.insert(2, "model", split.pop("model_correct").map({True: "model right", False: "model wrong"}))
    sections.append(
        Section(
            "accuracy_by_phase_and_model",
            "Accuracy by phase and by whether the model was right",
            data("All trials", analysed),
            split,
            [
                (
                    "Accuracy by phase and model correctness",
                    C.interval_bars(
                        [
                            (
                                f"{r.phase} · {r.model}",
                                r.condition,
                                r.accuracy,
                                r.ci_low,
                                r.ci_high,
                                palette[r.condition],
                            )
                            for r in split.itertuples()
                        ],
                        "Accuracy by phase and whether the model was right",
                    ),
                )
            ],
        )
    )
    # 3. per species and per item
    species = S.accuracy(analysed, ["phase", "species", "condition"])
    shown = species[~species["phase"].isin(NOT_TEST)] if not test.empty else species
    sections.append(
        Section(
            "species",
            "Accuracy by species",
            data("All trials, by the species shown", analysed),
            species,
            [
                (
                    "Accuracy by species" + (" (test trials)" if not test.empty else ""),
                    C.interval_bars(
                        [
                            (r.species, r.condition, r.accuracy, r.ci_low, r.ci_high, palette[r.condition])
                            for r in shown.itertuples()
                        ],
                        "Accuracy by species and condition",
                    ),
                )
            ],
        )
    )
    items = S.accuracy(analysed, ["phase", "item_id", "species", "model_correct", "condition"])
    sections.append(
        Section(
            "items",
            "Accuracy by item",
            data("All trials, by item (the image; counterfactual trials: the question)", analysed),
            items,
            note="One row per item and condition: hard items, and items an explanation helps with, show up here.",
        )
    )
    # 4. participants' own confusion matrix
    conf = S.confusion(analysed, names)
    if conf.empty:
        absent.append("confusion matrix: no classify trials")
    else:
        classify = analysed[analysed["task"] == "classify"]
        grids = []
        species_order = [names[c] for c in sorted(names)]
        for cond in order:
            mine = conf[conf["condition"] == cond]
            if mine.empty:
                continue
            rows = [s for s in species_order if s in set(mine["true_species"])]
            cols = [s for s in species_order if s in set(mine["answer_species"]) | set(rows)]
            cells = {(r.true_species, r.answer_species): (r.trials, r.share_of_row) for r in mine.itertuples()}
            grids.append((f"Condition {cond}", C.heat_grid(cells, rows, cols, f"Answers by true species: {cond}")))
        sections.append(
            Section(
                "confusion",
                "Which species people took for which (classify trials)",
                data("Classify trials, every phase", classify),
                conf,
                grids,
            )
        )
    # 5. learning curves
    curve = S.learning_curve(analysed)
    charts = []
    for block, g in curve.groupby("step_id", sort=False):
        series = {
            cond: [(r.position, r.accuracy, r.ci_low, r.ci_high) for r in g[g["condition"] == cond].itertuples()]
            for cond in order
            if cond in set(g["condition"])
        }
        ticks = dict(zip(g["position"], g["positions"], strict=True))
        title = f"Accuracy by trial position: {block}"
        charts.append((f"Block {block}", C.lines(series, palette, title, "trial position", ticks=ticks)))
    sections.append(
        Section(
            "learning_curve",
            "Learning curves: accuracy by trial position",
            data("All trials, by their position in each participant's own order of the block", analysed),
            curve.rename(columns={"step_id": "block"}),
            charts,
        )
    )
    # 6. two-stage blocks: switching towards and away from the model
    two = S.switching(analysed)
    if two.empty:
        absent.append("switching: no two-stage blocks")
    else:
        towards = two[two["could_switch_towards"]]
        models["switched_towards"] = (towards, "switched_towards")
        table = S.switching_table(two)
        sections.append(
            Section(
                "switching",
                "Two-stage trials: switching towards and away from the model",
                data("Two-stage trials", two),
                table,
                [
                    (
                        "Switched towards the model (of the first answers that disagreed with it)",
                        C.interval_bars(
                            [
                                (
                                    "",
                                    r.condition,
                                    r.switched_towards,
                                    r.towards_low,
                                    r.towards_high,
                                    palette[r.condition],
                                )
                                for r in table.itertuples()
                            ],
                            "Switched towards the model",
                            "share switched",
                        ),
                    )
                ],
                [
                    Model(
                        "switched_towards",
                        "Does the condition change how often people switch to the model's answer after "
                        "disagreeing with it?",
                        "the final answer was the model's, the first was not",
                        "",
                    )
                ],
            )
        )
    # 7. verify tasks: reliance
    rel = S.reliance(test)
    if rel.empty:
        absent.append("reliance: no verify trials in the test phases")
    else:
        verify = test[test["task"] == "verify"]
        wrong = verify[verify["model_correct"] == False].assign(accepted=lambda d: d["answer"] == "yes")  # noqa: E712
        right = verify[verify["model_correct"] == True].assign(rejected=lambda d: d["answer"] == "no")  # noqa: E712
        models["over_reliance"] = (wrong, "accepted")
        models["under_reliance"] = (right, "rejected")
        sections.append(
            Section(
                "reliance",
                "Reliance on the model (verify trials)",
                data("Verify trials in the test phases", verify),
                rel,
                [
                    (
                        "Over-reliance: wrong answers of the model accepted",
                        C.interval_bars(
                            [
                                ("", r.condition, r.over_reliance, r.over_low, r.over_high, palette[r.condition])
                                for r in rel.itertuples()
                            ],
                            "Over-reliance by condition",
                            "share accepted",
                        ),
                    ),
                    (
                        "Under-reliance: right answers of the model rejected",
                        C.interval_bars(
                            [
                                ("", r.condition, r.under_reliance, r.under_low, r.under_high, palette[r.condition])
                                for r in rel.itertuples()
                            ],
                            "Under-reliance by condition",
                            "share rejected",
                        ),
                    ),
                ],
                [
                    Model(
                        "over_reliance",
                        "Does the condition change how often people accept the model's wrong answers?",
                        "accepted a wrong answer",
                        "",
                    ),
                    Model(
                        "under_reliance",
                        "Does the condition change how often people reject the model's right answers?",
                        "rejected a right answer",
                        "",
                    ),
                ],
            )
        )
    # 8. response times, by each clock
    rts = S.response_times(test)
    if rts.empty:
        absent.append("response times: none recorded in the test phases")
    else:
        timed = test.dropna(subset=[c for c in S.CLOCKS.values() if c in test], how="all")
        charts = []
        for clock, caption in (("client", "in the browser"), ("server", "at the server")):
            rows = rts[rts["clock"] == clock]
            if len(rows):
                title = f"Response time by condition, timed {caption}"
                quartiles = [
                    (r.condition, r.p10_ms, r.q1_ms, r.median_ms, r.q3_ms, r.p90_ms, palette[r.condition])
                    for r in rows.itertuples()
                ]
                charts.append((title, C.quartile_rows(quartiles, title)))
        sections.append(
            Section(
                "response_times",
                "Response times (test trials)",
                data("Test trials with a recorded response time", timed),
                rts,
                charts,
                note=(
                    "Two clocks. In the browser: from the picture shown to the answer given (needs JavaScript; "
                    "impossible times are discarded). At the server: from the page sent to the answer received, "
                    "so it adds loading and network time, but it is recorded for every trial and a browser "
                    "cannot change it."
                ),
            )
        )
    # 9. confidence
    cal = S.calibration(test)
    if cal.empty:
        absent.append("confidence calibration: no confidence ratings in the test phases")
    else:
        series = {
            cond: [(r.confidence, r.accuracy, r.ci_low, r.ci_high) for r in cal[cal["condition"] == cond].itertuples()]
            for cond in order
            if cond in set(cal["condition"])
        }
        sections.append(
            Section(
                "confidence",
                "Accuracy by stated confidence (test trials)",
                data("Test trials with a confidence rating", test.dropna(subset=["confidence"])),
                cal,
                [("Accuracy by confidence", C.lines(series, palette, "Accuracy by confidence", "confidence (1-5)"))],
            )
        )

    fits = I.fit_all(models, reference, order, engine) if models else {}
    for s in sections:
        for m in s.models:
            m.result = fits.get(m.key, "no data")
    used = next((r.engine for r in fits.values() if isinstance(r, I.ConditionEffects)), engine)
    counts = _counts(people, flags)
    return Report(
        study_id=study.id,
        title=study.spec.title,
        conditions=conditions,
        engine=used,
        computed_at=dt.datetime.now(dt.UTC),
        data_version=version,
        counts=counts,
        exclusions=exclusions,
        analysed_participants=len(keep),
        analysed_trials=len(analysed),
        non_real=D.non_real_count(session, study),
        sections=sections,
        absent=absent,
    )


def _bars(df: pd.DataFrame, label: str, palette: dict[str, str]) -> str:
    return C.interval_bars(
        [("", str(getattr(r, label)), r.accuracy, r.ci_low, r.ci_high, palette[r.condition]) for r in df.itertuples()],
        "Accuracy by condition",
    )


RULES = {
    "attention": ("failed_attention", "failed an attention check"),
    "too_fast": ("min_median_rt_ms", "median response time below the study's minimum"),
    "screened_out": ("screened_out", "screened out by a questionnaire or attention rule"),
}


def _exclusions(study: LoadedStudy, flags: pd.DataFrame, trials: pd.DataFrame, apply: bool) -> list[Exclusion]:
    per_person = trials.groupby("participant_id").size()
    rules = study.spec.exclusions
    out = []
    for rule, (setting, meaning) in RULES.items():
        flagged = flags.index[flags[f"excluded_{rule}"]]
        configured = getattr(rules, setting)
        on = apply and configured is not None and configured is not False
        if setting == "min_median_rt_ms" and configured is not None:
            meaning = f"median response time below {configured:g} ms (client or server clock)"
        out.append(Exclusion(rule, meaning, on, len(flagged), int(per_person.reindex(flagged).fillna(0).sum())))
    return out


def _applied(exclusions: list[Exclusion]) -> str:
    on = [e for e in exclusions if e.applied]
    if not on:
        return "none"
    return "; ".join(f"{e.meaning} ({_people(e.participants)}, {e.trials} trials removed)" for e in on)


def _counts(people: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    return (
        people.assign(excluded=people["participant_id"].map(flags["excluded"]).fillna(False).astype(bool))
        .groupby(people["condition"].fillna("unassigned"))
        .agg(
            participants=("participant_id", "size"),
            completed=("status", lambda s: int((s == "completed").sum())),
            excluded=("excluded", lambda s: int(s.sum())),
        )
        .reset_index()
    )


# -- text ---------------------------------------------------------------------------------------------
def engine_line(e: I.Engine) -> str:
    return f"{e.name} — {e.detail}" + (f". {e.note}" if e.note else "")


def model_lines(m: Model) -> list[str]:
    r = m.result
    if isinstance(r, str):
        return [f"  {m.question} Not fitted: {r}."]
    lines = [
        f"  {m.question} (1 = {m.outcome_meaning}; {r.trials} trials, {r.participants} participants, {r.items} items)",
        f"  {r.formula}; reference level {r.reference}",
        f"  participant sd {r.participant_sd:.2f}, item sd {r.item_sd:.2f} (log-odds)",
    ]
    for t in r.terms.itertuples():
        lines.append(
            f"    {t.term:<22} log-odds {t.estimate:+.3f} (SE {t.se:.3f})  odds ratio {t.odds_ratio:5.2f} "
            f"[{t.or_low:.2f}, {t.or_high:.2f}]  t({t.df}) = {t.t:+.2f}, p = {t.p:.3g}"
        )
    if r.omnibus:
        o = r.omnibus
        lines.append(f"    any difference between conditions: F({o.df1}, {o.df2}) = {o.f:.2f}, p = {o.p:.3g}")
    lines += [f"    note: {n}" for n in r.notes]
    return lines


def text(r: Report) -> str:
    """The report for a terminal."""
    lines = [
        f"{r.title} ({r.study_id})",
        f"engine: {engine_line(r.engine)}",
        f"method: {I.METHOD}",
        "",
        f"participants analysed: {r.analysed_participants}; trials analysed: {r.analysed_trials}; "
        f"pilots and bots (never analysed): {r.non_real}",
        "exclusions:",
    ]
    for e in r.exclusions:
        state = "applied" if e.applied else "not applied"
        lines.append(f"  {e.rule:<13} {e.meaning}: {_people(e.participants)}, {e.trials} trials ({state})")
    for s in r.sections:
        lines += ["", s.title, f"  {s.data}"]
        if s.key in ("items", "learning_curve", "confusion"):
            lines.append(f"  ({len(s.table)} rows: see the CSV)")
        else:
            lines += ["  " + row for row in _table_text(s.table).splitlines()]
        for m in s.models:
            lines += ["", *model_lines(m)]
    if r.absent:
        lines += ["", "Not in this study: " + "; ".join(r.absent) + "."]
    return "\n".join(lines)


def _table_text(df: pd.DataFrame) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "–" if math.isnan(v) else f"{v:.3f}"
        return str(v)

    return df.to_string(index=False, formatters=dict.fromkeys(df.columns, fmt))


# -- CSV ----------------------------------------------------------------------------------------------
def tables(r: Report) -> dict[str, pd.DataFrame]:
    """Every table of the report by file name (without .csv): each section's table, each model
    (with engine, formula and method on every row), and the exclusions. Species by name, exactly
    the numbers of the page."""
    out: dict[str, pd.DataFrame] = {}
    stamp = {"study": r.study_id, "computed_at": r.computed_at.isoformat()}
    for s in r.sections:
        out[s.key] = s.table
        for m in s.models:
            if isinstance(m.result, str):
                continue
            out[f"model_{m.key}"] = m.result.terms.assign(
                outcome=m.result.outcome,
                engine=engine_line(m.result.engine),
                formula=m.result.formula,
                method=m.result.method,
                participants=m.result.participants,
                trials=m.result.trials,
                participant_sd=m.result.participant_sd,
                item_sd=m.result.item_sd,
                notes=" | ".join(m.result.notes),
                **stamp,
            )
    out["exclusions"] = pd.DataFrame([e.__dict__ for e in r.exclusions])
    return out


def write_tables(r: Report, folder: Path) -> list[Path]:
    return [atomic_write(folder / f"{name}.csv", [t.to_csv(index=False)]) for name, t in tables(r).items()]
