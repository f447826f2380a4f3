"""The heatmap section of `make bench-explain` formats a real (tiny) run: every row, the own-grid
column and the stated subset. A benchmark is not a test, but a crash after an hour of it is."""

from pathlib import Path

import pytest

from benchmarks import explain as bench
from benchmarks import report
from pipeline.data.cub import Dataset
from pipeline.explain import explain, parse_methods
from tests.test_explain import config  # the papers' settings cut to seconds, on the CPU


def test_heatmap_section_of_a_subset(
    tmp_path: Path, tiny_model: Path, tiny_gulls: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    cfg = config(
        tiny_model,
        tiny_gulls,
        out,
        methods=parse_methods(bench.HEATMAPS),
        images=None,
        per_class=1,
        protocols=None,  # every protocol, as the benchmark
        explain_true=False,
    )
    m = explain(cfg)
    doc = tmp_path / "benchmarks.md"
    monkeypatch.setattr(report, "DOC", doc)
    monkeypatch.setattr(bench, "write_section", report.write_section)
    monkeypatch.setattr(bench, "figure", lambda *a, **k: None)
    bench.heatmap_section(m, out, tmp_path, {}, bench.parse_args(["--per-class", "1", "--timing", "in-run"]))
    text = doc.read_text()
    assert "| iGOS++ (authors' line search) |" in text
    assert "(7²)" in text and "= igos (28²)" in text  # Grad-CAM ranked on its own 7×7 grid
    assert "A stated subset" in text and "--per-class 1" in text
    assert "agree with Spearman" in text  # iGOS++ line searches compared mask by mask
    with pytest.raises(SystemExit):
        bench.parse_args(["--per-class", "0"])
