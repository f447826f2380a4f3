"""Study files: validated before any participant arrives, errors with file, line and field."""

from pathlib import Path

import pytest

from app.errors import StudyError
from app.studies.loader import load_study, parse
from fieldmark.cli import run
from tests.server.conftest import REPO, SECRET

SHIPPED = sorted((REPO / "studies").glob("*.yaml"))


def test_three_studies_ship() -> None:
    assert [p.name for p in SHIPPED] == ["sag-counterfactual.yaml", "seagull-agreement.yaml", "seagull-learning.yaml"]


def test_shipped_studies_check_against_the_run(
    assets_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIELDMARK_ASSETS_DIR", str(assets_dir))
    monkeypatch.setenv("FIELDMARK_SECRET_KEY", SECRET)
    from app.settings import get_settings

    get_settings.cache_clear()
    try:
        assert run(["study", "check", *map(str, SHIPPED)]) == 0
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "seagull-learning.yaml: ok" in err and "learn (classify, 16 items × 1 sets)" in err


def problems(tmp_path: Path, text: str, assets: Path | None = None) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(StudyError) as err:
        if assets is None:
            parse(path)
        else:
            load_study(path, assets, SECRET)
    return err.value.problems


def shipped(name: str) -> str:
    return (REPO / "studies" / f"{name}.yaml").read_text()


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    [p] = problems(tmp_path, "id: x\ntitle: [unclosed\nversion: 1\n")
    assert p.startswith(f"{tmp_path / 's.yaml'}:") and "not valid YAML" in p


def test_unknown_step_type_and_field_name_the_line(tmp_path: Path) -> None:
    text = shipped("sag-counterfactual").replace(
        "  - type: completion", "  - type: survey\n    id: s\n  - type: completion"
    )
    found = problems(tmp_path, text)
    line = text.splitlines().index("  - type: survey") + 1
    assert any(p.startswith(f"{tmp_path / 's.yaml'}:{line}: steps[4]: unknown step type 'survey'") for p in found)
    text = shipped("sag-counterfactual").replace(
        "    task: counterfactual\n    items: {correct: 8}",
        "    task: counterfactual\n    items: {correct: 8}\n    colour: red",
    )
    [p] = problems(tmp_path, text)
    line = text.splitlines().index("    colour: red") + 1
    assert p == f"{tmp_path / 's.yaml'}:{line}: steps[3].colour: Extra inputs are not permitted"


def test_incoherent_conditions_and_structure(tmp_path: Path) -> None:
    text = shipped("sag-counterfactual").replace("    method: igospp\n", "")
    assert any("a heatmap condition needs `method`" in p for p in problems(tmp_path, text))
    text = shipped("sag-counterfactual").replace("  - type: consent\n", "")
    assert any("the first step must be the consent step" in p for p in problems(tmp_path, text))


def test_assets_and_items_the_run_lacks(tmp_path: Path, assets_dir: Path) -> None:
    text = shipped("sag-counterfactual").replace("method: igospp", "method: rise")
    found = problems(tmp_path, text, assets_dir)
    assert any("run 'demo' lacks rise explanations (condition heatmap, block practice) for images" in p for p in found)
    text = shipped("seagull-agreement").replace(
        "items: {correct: 8, incorrect: 8}", "items: {correct: 8, incorrect: 80}"
    )
    found = problems(tmp_path, text, assets_dir)
    assert any("steps.verify.items: block 'verify' needs 80 images the model gets wrong" in p for p in found)
    text = shipped("sag-counterfactual").replace("assets: demo", "assets: nowhere")
    assert "run 'nowhere' not found" in problems(tmp_path, text, assets_dir)[0]


def test_content_hash_is_the_files_bytes(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text(shipped("sag-counterfactual"))
    _, _, h1 = parse(a)
    a.write_text(shipped("sag-counterfactual") + "\n# a comment\n")
    _, _, h2 = parse(a)
    assert h1 != h2 and len(h1) == 64
