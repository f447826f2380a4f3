"""The study-server commands: one-line errors and exit 2, and each command's real effect."""

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from app.bots import run_bots
from app.settings import Settings, get_settings
from app.studies.loader import LoadedStudy
from fieldmark.cli import run
from tests.server.conftest import REPO, SECRET

REPO_STUDIES = REPO / "studies"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[Settings]:
    for key, value in {
        "FIELDMARK_HOME": settings.home,
        "FIELDMARK_DATABASE_URL": settings.db_url,
        "FIELDMARK_ASSETS_DIR": settings.assets_root,
        "FIELDMARK_SECRET_KEY": settings.secret_key,
        "FIELDMARK_STUDIES_DIR": settings.studies_dir,
    }.items():
        monkeypatch.setenv(key, str(value))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_study_check_names_every_problem_and_exits_2(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((env.studies_dir / "sag-counterfactual.yaml").read_text().replace("method: igospp", "method: rise"))
    assert run(["study", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fieldmark: error: ") and "lacks rise explanations" in err and "Traceback" not in err
    assert run(["study", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_researcher_add_prints_a_generated_password_once(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["researcher", "add", "lin@example.org"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("password (shown once): ") and len(out.split(": ")[1].strip()) >= 16
    assert run(["researcher", "add", "lin@example.org"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_export_analyse_and_power(
    env: Settings, studies: dict[str, LoadedStudy], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_bots(studies["seagull-agreement"], 4, "oracle", None, 4, env, studies)
    assert run(["export", "seagull-agreement", "--out", str(tmp_path / "real")]) == 0
    assert len(pd.read_csv(tmp_path / "real" / "trials.csv")) == 0  # bots are not real participants
    assert run(["export", "seagull-agreement", "--out", str(tmp_path / "x"), "--all-origins"]) == 0
    trials = pd.read_csv(tmp_path / "x" / "trials.csv")
    assert len(trials) == 4 * 20 and set(trials["origin"]) == {"bot"}
    assert set(pd.read_csv(tmp_path / "x" / "participants.csv")["origin"]) == {"bot"}
    assert run(["analyse", "seagull-agreement", "--all-origins", "--html", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    assert "Accuracy by condition" in out and "<svg" in (tmp_path / "r.html").read_text()
    assert (
        run(
            [
                "study",
                "power",
                "seagull-agreement",
                "--accuracy",
                "prediction=0.6,heatmap=0.9",
                "--participants",
                "8:8:1",
                "--simulations",
                "2",
                "--plot",
                str(tmp_path / "p.svg"),
            ]
        )
        == 0
    )
    assert "heatmap vs prediction" in capsys.readouterr().out and (tmp_path / "p.svg").is_file()
    assert run(["study", "power", "seagull-agreement", "--accuracy", "none=0.6"]) == 2
    assert run(["export", "no-such-study", "--out", str(tmp_path)]) == 2
    assert run(["study", "simulate", "seagull-agreement", "--strategy", "psychic"]) == 2


def test_unsafe_production_settings_stop_the_server_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FIELDMARK_ENVIRONMENT", "production")
    monkeypatch.delenv("FIELDMARK_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    try:
        assert run(["serve"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip()
    assert "FIELDMARK_SECRET_KEY must be set" in err and len(err.splitlines()) == 1


def test_study_check_refuses_pictures_taught_elsewhere_unless_declared(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = sorted(env.studies_dir.glob("*.yaml"))
    assert run(["study", "check", *map(str, shipped)]) == 0
    assert "shows labelled" not in capsys.readouterr().err  # the shipped studies avoid each other's pictures
    # the same study without avoiding them: the overlap with the studies folder is an error
    text = (env.studies_dir / "seagull-agreement.yaml").read_text()
    assert "avoid_stimuli_of: [seagull-learning]\n" in text
    bare = tmp_path / "agreement.yaml"
    bare.write_text(text.replace("avoid_stimuli_of: [seagull-learning]\n", ""))
    assert run(["study", "check", str(bare)]) == 2
    err = capsys.readouterr().err
    assert "study 'seagull-learning' shows labelled" in err and "avoid_stimuli_of: [seagull-learning]" in err
    # accepted as a choice: a note, not an error
    bare.write_text(text.replace("avoid_stimuli_of: [seagull-learning]", "shares_stimuli_with: [seagull-learning]"))
    assert run(["study", "check", str(bare)]) == 0
    assert "declared in shares_stimuli_with" in capsys.readouterr().err
    # a declaration that no longer holds is noted, not refused
    bare.write_text(text.replace("avoid_stimuli_of: [seagull-learning]", "shares_stimuli_with: [nobody]"))
    assert run(["study", "check", str(bare)]) == 2  # (and the overlap is back)
    assert "shares_stimuli_with names 'nobody', which teaches none of its pictures" in capsys.readouterr().err


def test_taught_and_tested_pictures(studies: dict[str, LoadedStudy], tmp_path: Path, assets_dir: Path) -> None:
    from app.errors import StudyError
    from app.studies.loader import load_all, load_study
    from app.studies.overlap import overlaps, taught, tested

    learning, agreement = studies["seagull-learning"], studies["seagull-agreement"]
    learn = {it.image_id for s in learning.items["learn"] for it in s}
    assert learn <= taught(learning) and not learn & tested(learning)  # feedback names the species
    assert tested(learning) == {it.image_id for s in learning.items["test"] for it in s}
    verify = [it for s in agreement.items["verify"] for it in s]
    neighbours = {n.image_id for it in verify for n in agreement.entries[it.image_id].explanations[3].neighbours}
    assert neighbours & taught(agreement)  # nearest examples are labelled
    assert not taught(studies["sag-counterfactual"])  # its feedback names confidences, not species
    assert overlaps(list(studies.values())) == []  # the shipped studies avoid each other's pictures
    # without avoiding them, the same study draws pictures seagull-learning teaches
    path = tmp_path / "agreement.yaml"
    path.write_text(agreement.source.replace("avoid_stimuli_of: [seagull-learning]\n", ""))
    plain = load_study(path, assets_dir, SECRET)
    [o] = [o for o in overlaps([learning, plain]) if o.tester == plain.id]
    assert o.teacher == learning.id and not o.declared and set(o.images) == taught(learning) & tested(plain)
    # avoiding needs the other study loaded first, and two studies cannot avoid each other
    with pytest.raises(StudyError, match="is not loaded with this one"):
        load_study(REPO_STUDIES / "seagull-agreement.yaml", assets_dir, SECRET)
    both = tmp_path / "both"
    both.mkdir()
    (both / "a.yaml").write_text(agreement.source)
    (both / "l.yaml").write_text(
        learning.source.replace("recruitment:", "avoid_stimuli_of: [seagull-agreement]\nrecruitment:")
    )
    with pytest.raises(StudyError, match="is not loaded with this one"):
        load_all(both, assets_dir, SECRET)


def test_serve_refuses_other_addresses_with_the_development_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FIELDMARK_ENVIRONMENT", "development")
    monkeypatch.delenv("FIELDMARK_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    try:
        assert run(["serve", "--host", "0.0.0.0"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip()
    assert "refusing to serve on 0.0.0.0 with the development secret" in err and len(err.splitlines()) == 1
    from app.cli import loopback

    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost") and loopback("127.0.0.2")
    assert not loopback("0.0.0.0") and not loopback("192.168.1.5") and not loopback("example.org")


def test_the_demo_makes_and_keeps_a_random_secret(tmp_path: Path) -> None:
    from fieldmark.demo import keep_secret

    first = keep_secret(tmp_path / "var")
    assert len(first) >= 32 and keep_secret(tmp_path / "var") == first
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert keep_secret(tmp_path / "other") != first
