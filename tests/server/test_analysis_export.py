"""Analysis and exports against bot data with known answers, and against a small case by hand."""

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.analysis import report as R
from app.analysis.charts import quartile_rows
from app.analysis.power import parse_accuracy, plan_for, power_table
from app.analysis.stats import accuracy, response_times, wilson
from app.bots import run_bots
from app.export.columns import PARTICIPANT, trial_columns
from app.export.files import export
from app.main import create_app
from app.models import Participant
from app.settings import Settings
from app.studies.loader import LoadedStudy
from tests.server.test_researcher import login, make_researcher


def test_wilson_by_hand() -> None:
    p, lo, hi = wilson(8, 10)
    assert p == 0.8 and lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 0)[0] != wilson(0, 0)[0]  # nan for no data


def test_accuracy_table_by_hand() -> None:
    df = pd.DataFrame(
        {
            "participant_id": [1, 1, 2, 2, 3],
            "condition": ["a", "a", "a", "a", "b"],
            "correct": pd.array([True, False, True, True, False], dtype="boolean"),
        }
    )
    t = accuracy(df, ["condition"]).set_index("condition")
    assert t.loc["a", "n"] == 4 and t.loc["a", "correct"] == 3 and t.loc["a", "accuracy"] == 0.75
    assert t.loc["a", "participants"] == 2 and t.loc["b", "accuracy"] == 0.0


def test_response_times_by_each_clock_by_hand() -> None:
    df = pd.DataFrame(
        {
            "condition": ["a", "a", "a", "b", "b"],
            "rt_ms": [1000.0, 2000.0, 3000.0, None, None],  # b: no JavaScript, or times discarded
            "server_rt_ms": [1500.0, 2500.0, 3500.0, 4000.0, 6000.0],
        }
    )
    t = response_times(df).set_index(["clock", "condition"])
    assert t.loc[("client", "a"), "median_ms"] == 2000 and t.loc[("client", "a"), "n"] == 3
    assert ("client", "b") not in t.index
    assert t.loc[("server", "b"), "median_ms"] == 5000 and t.loc[("server", "b"), "q1_ms"] == 4500
    assert t.loc[("server", "a"), "p90_ms"] == pytest.approx(3300)
    fast = quartile_rows([("a", 10, 15, 20, 25, 30, "#000")], "fast")  # 30 ms is not "0.0 s"
    assert ">20 ms<" in fast and ">0.0 s<" not in fast
    assert ">2 s<" in quartile_rows([("a", 1000, 1500, 2000, 2500, 3000, "#000")], "slow")


def _data(settings: Settings, studies: dict[str, LoadedStudy]) -> None:
    """Oracle bots (even seeds) and random bots (odd seeds) in turn: balanced assignment mostly
    gives the conditions one kind each."""
    study = studies["seagull-agreement"]
    for k in range(8):
        run_bots(study, 1, "oracle" if k % 2 == 0 else "random", None, 100 + k, settings, studies, as_bots=False)


def test_analysis_recovers_known_truths(settings: Settings, studies: dict[str, LoadedStudy]) -> None:
    _data(settings, studies)
    app = create_app(settings, studies)
    with app.state.sessions() as s:
        rep = R.build(s, studies["seagull-agreement"])
        # Which bots ended where: a random bot can fail the attention check and be screened out,
        # which shifts the alternation of conditions, so the truth is read from the data.
        kinds: dict[str, set[str]] = {}
        for pid, cond in s.execute(
            sa.select(Participant.external_pid, Participant.condition).where(Participant.status == "completed")
        ):
            seed = int(pid.removeprefix("bot").split("x")[0])
            kinds.setdefault(cond, set()).add("oracle" if seed % 2 == 0 else "random")
    app.state.engine.dispose()
    acc = rep.section("accuracy").table.set_index("condition")
    oracle = [c for c, k in kinds.items() if k == {"oracle"}]
    rand = [c for c, k in kinds.items() if k == {"random"}]
    assert oracle and rand
    for cond in oracle:
        assert acc.loc[cond, "accuracy"] == 1.0
    for cond in rand:  # random yes/no: chance (50 %) inside the interval
        # a 99.9 % interval: the report's 95 % one misses the truth one time in twenty by design
        _, lo, hi = wilson(int(acc.loc[cond, "correct"]), int(acc.loc[cond, "n"]), z=3.29)
        assert lo <= 0.5 <= hi
        assert acc.loc[cond, "ci_low"] <= acc.loc[cond, "accuracy"] <= acc.loc[cond, "ci_high"]
    rel = rep.section("reliance").table.set_index("condition")
    assert rel.loc[oracle[0], "over_reliance"] == 0.0 and rel.loc[oracle[0], "under_reliance"] == 0.0
    # oracle conditions answered every trial right: no logistic model can estimate their odds
    # ratios, and the report says so instead of printing an infinite one
    assert isinstance(rep.primary, str) and "separation" in rep.primary
    assert all(c in rep.primary for c in oracle)
    text = R.text(rep)
    assert "Accuracy by condition" in text and "engine: " in text and "separation" in text
    rts = rep.section("response_times")
    by_clock = rts.table.groupby("clock")["n"].sum()
    assert by_clock["server"] == by_clock["client"] > 0  # the bots send client times; the server times all
    assert [c for c, _ in rts.charts] == [
        "Response time by condition, timed in the browser",
        "Response time by condition, timed at the server",
    ]


def test_exports_have_the_documented_columns_and_pseudonyms(
    tmp_path: Path, settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    _data(settings, studies)
    study = studies["seagull-agreement"]
    app = create_app(settings, studies)
    with app.state.sessions() as s:
        files = export(s, study, tmp_path / "out", settings.secret_key)
        export(s, study, tmp_path / "raw", settings.secret_key, raw_ids=True)
    app.state.engine.dispose()
    assert [f.name for f in files] == [
        "trials.csv",
        "participants.csv",
        "classes.csv",
        "codebook.json",
        "codebook.md",
        "study.yaml",
        "snapshot.json",
    ]
    trials = pd.read_csv(tmp_path / "out/trials.csv")
    assert list(trials.columns) == [c.name for c in trial_columns(study)]
    assert len(trials) == 8 * 20 and set(trials["condition"]) == {c.id for c in study.spec.conditions}
    people = pd.read_csv(tmp_path / "out/participants.csv")
    assert list(people.columns)[: len(PARTICIPANT)] == [c.name for c in PARTICIPANT]
    assert "trust.trust" in people.columns and "attention.passed" in people.columns
    text = (tmp_path / "out/trials.csv").read_text() + (tmp_path / "out/participants.csv").read_text()
    assert "bot1" not in text  # Prolific ids are pseudonymised by default
    raw_people = pd.read_csv(tmp_path / "raw/participants.csv")
    assert raw_people["prolific_pid"].str.startswith("bot").all()
    book = json.loads((tmp_path / "out/codebook.json").read_text())
    assert [c["name"] for c in book["trials.csv"]] == list(trials.columns)
    assert "pseudonym" in book["ids"]
    assert "raw Prolific ids" in json.loads((tmp_path / "raw/codebook.json").read_text())["ids"]
    assert (tmp_path / "out/study.yaml").read_text() == study.source
    # the snapshot ties the data to what was shown: the study file, the run's manifest, the model
    snap = json.loads((tmp_path / "out/snapshot.json").read_text())
    on_disk = (study.run / "manifest.json").read_bytes()
    assert snap["study"]["study_hash"] == study.content_hash == hashlib.sha256(study.source.encode()).hexdigest()
    assert snap["assets"]["manifest_sha256"] == hashlib.sha256(on_disk).hexdigest() == book["assets"]["manifest_sha256"]
    model_hash = json.loads(on_disk)["provenance"]["model_hash"]
    assert snap["assets"]["model_hash"] == model_hash == book["assets"]["model_hash"]
    assert snap["manifest"] == json.loads(on_disk)  # the whole manifest, as the pipeline wrote it
    assert len(snap["manifest"]["images"]) == len(study.manifest.images) > 0
    assert snap["participants_by_manifest"] == {snap["assets"]["manifest_sha256"]: len(people)}
    assert set(people["manifest_sha256"]) == {snap["assets"]["manifest_sha256"]}  # each participant's own
    assert snap["assets"]["model_hash"] in (tmp_path / "out/codebook.md").read_text()
    assert "| `model_correct` | boolean |" in (tmp_path / "out/codebook.md").read_text()


def test_dashboard_download_loads_with_pandas(
    client: TestClient, settings: Settings, studies: dict[str, LoadedStudy]
) -> None:
    run_bots(studies["sag-counterfactual"], 2, "oracle", None, 7, settings, studies, as_bots=False)
    make_researcher(client)
    login(client)
    r = client.get("/r/studies/sag-counterfactual/export/trials.csv")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    df = pd.read_csv(io.StringIO(r.text))
    assert list(df.columns) == [c.name for c in trial_columns(studies["sag-counterfactual"])] and len(df) == 2 * 11
    page = client.get("/r/studies/sag-counterfactual/analysis")
    assert page.status_code == 200 and "<svg" in page.text and "Wilson" in page.text and "Engine:" in page.text
    table = client.get("/r/studies/sag-counterfactual/analysis/accuracy.csv")
    assert table.status_code == 200 and list(pd.read_csv(io.StringIO(table.text))["condition"]) == sorted(
        df["condition"].unique()
    )
    assert client.get("/r/studies/sag-counterfactual/analysis/nothing.csv").status_code == 404


def test_power_by_simulation_uses_the_studys_test_trials(studies: dict[str, LoadedStudy]) -> None:
    study = studies["seagull-agreement"]
    acc = parse_accuracy("prediction=0.55,heatmap=0.95,examples=0.55", [c.id for c in study.spec.conditions])
    plan = plan_for(study, acc, participant_sd=0.5, item_sd=0.5)
    assert plan.trials == 16 and plan.sets == 1  # the verify block: 8 right + 8 wrong items; practice left out
    table = power_table(plan, [24], simulations=10, workers=1)
    power = dict(zip(table["comparison"], table["power"], strict=True))
    assert power["heatmap vs prediction"] >= 0.8  # a huge difference is found
    assert power["examples vs prediction"] <= 0.5  # no difference is rarely "found"
