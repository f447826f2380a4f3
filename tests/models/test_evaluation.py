"""Metrics against values computed by hand."""

import numpy as np
import pytest

from pipeline.models.evaluation import calibration, confusion, summary


def test_confusion_counts_rows_true_columns_predicted() -> None:
    m = confusion(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_calibration_by_hand() -> None:
    # Two confident right answers (0.9), two half-confident answers of which one is right.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    truth = np.array([0, 0, 0, 0])
    cal = calibration(probs, truth, bins=10)
    # bins: (0.8,0.9] holds two at conf .9 acc 1 -> gap .1; (0.5,0.6] holds two at conf .6 acc .5 -> gap .1
    assert cal["ece"] == pytest.approx(0.1)
    assert cal["mce"] == pytest.approx(0.1)
    assert cal["accuracy"] == 0.75
    brier = ((0.1**2 + 0.1**2) * 2 + (0.4**2 + 0.4**2) + (0.6**2 + 0.6**2)) / 4
    assert cal["brier"] == pytest.approx(brier, abs=1e-4)
    nll = -(2 * np.log(0.9) + np.log(0.6) + np.log(0.4)) / 4
    assert cal["nll"] == pytest.approx(nll, abs=1e-4)
    assert [b["n"] for b in cal["reliability"]] == [2, 2]


def test_summary_lists_confusions_most_frequent_first() -> None:
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]]
    s = summary(probs, np.array([0, 0, 0, 1, 2, 2]), ["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(3 / 6, abs=1e-4)
    assert s["top_confusions"][0] == {"true": "a", "predicted": "b", "count": 2}
    assert [c["accuracy"] for c in s["per_class"]] == [pytest.approx(1 / 3, abs=1e-4), 1.0, 0.5]
