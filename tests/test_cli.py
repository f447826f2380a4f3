"""The command line: every user error is one line on stderr and exit status 2, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from fieldmark.cli import run
from pipeline.data.cub import Dataset


def error_of(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = run(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("fieldmark: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "synth"], "Missing option '--out'"),
        (["data", "synth", "--out", "x", "--per-class", "many"], "Invalid value for '--per-class'"),
        (["data", "synth", "--out", "x", "--per-class", "0"], "--per-class must be at least 1"),
        (["data", "synth", "--out", "x", "--species", "Kittiwake"], "--species: unknown species 'Kittiwake'"),
        (
            ["data", "synth", "--out", "x", "--species", "Herring", "--shortcut", "Western:sand"],
            "names a species that is not in --species",
        ),
        (["data", "synth", "--out", "x", "--shortcut", "Herring:fog"], "--shortcut: unknown cue 'fog'"),
        (["data", "import-cub", "/nowhere", "--out", "x"], "/nowhere: no such folder"),
        (["data", "import-cub", "/tmp", "--out", "x", "--classes", "a-b"], "--classes 'a-b'"),
        (["data", "preview", "/nowhere"], "/nowhere is not a folder"),
        (["model", "train", "--data", "/nowhere"], "/nowhere is not a folder"),
        (["model", "train", "--data", "/tmp", "--arch", "alexnet"], "--arch 'alexnet': use one of compact"),
        (["model", "evaluate", "--model", "/nowhere.pt", "--data", "/tmp", "--out", "x"], "no such file"),
        (["model", "predict", "--model", "/nowhere.pt", "--data", "/tmp", "--out", "x.csv"], "no such file"),
        (["model", "train", "--data", "/tmp", "--device", "tpu"], "use auto, cpu, cuda"),
        (["explain", "--model", "m.pt", "--data", "/tmp", "--out", "x", "--methods", "lime"], "unknown method 'lime'"),
        (["explain", "--model", "m.pt", "--data", "/tmp", "--out", "x", "--param", "igos=3"], "--param 'igos=3'"),
        (
            ["explain", "--model", "m.pt", "--data", "/tmp", "--out", "x", "--param", "igos.iteratons=3"],
            "igos has no parameter 'iteratons'; it takes size, iterations",
        ),
        (
            ["explain", "--model", "m.pt", "--data", "/tmp", "--out", "x", "--param", "sag.grid=big"],
            "sag.grid must be of type int, got 'big'",
        ),
        (["nonsense"], "No such command 'nonsense'"),
    ],
)
def test_user_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    err = error_of(capsys, argv)
    assert message in err
    assert len(err.splitlines()) == 1


def test_validation_problems_are_listed_one_per_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "images.txt").write_text("1\n")
    err = error_of(capsys, ["data", "preview", str(tmp_path)])
    lines = err.splitlines()
    assert "is not a valid CUB-200-2011 folder" in lines[0]
    assert "  images.txt:1: malformed line '1' (expected '<image_id> <image_name>')" in lines
    assert "  classes.txt: missing (a CUB-200-2011 folder has classes.txt)" in lines


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["data", "synth", "--help"]) == 0
    assert "--per-class" in capsys.readouterr().out


def test_synth_then_preview(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "g"
    assert (
        run(
            [
                "data",
                "synth",
                "--out",
                str(out),
                "--per-class",
                "2",
                "--size",
                "64",
                "--species",
                "62",
                "--species",
                "Western",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    assert len((out / "images.txt").read_text().splitlines()) == 4
    assert run(["data", "preview", str(out), "--per-row", "2"]) == 0
    assert (out / "preview" / "guide_066_Western_Gull.png").is_file()


def test_the_installed_command_reports_without_a_traceback(tiny_gulls: Dataset) -> None:
    exe = Path(sys.executable).with_name("fieldmark")
    proc = subprocess.run(
        [str(exe), "model", "evaluate", "--model", "/nowhere.pt", "--data", str(tiny_gulls.root), "--out", "/tmp/x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "fieldmark: error: --model /nowhere.pt: no such file; train one with 'fieldmark model train'"
    )
