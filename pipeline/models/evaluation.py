"""Classifier metrics from predicted probabilities: accuracy, confusion, calibration. Pure numpy."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """k×k counts, rows = true class, columns = predicted class."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def calibration(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> dict[str, Any]:
    """Expected/maximum calibration error over equal-width confidence bins, Brier score and NLL."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    table, ece, mce = [], 0.0, 0.0
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        if n == 0:
            continue
        acc, avg = float(correct[sel].mean()), float(conf[sel].mean())
        gap = abs(acc - avg)
        ece += gap * n / len(conf)
        mce = max(mce, gap)
        table.append(
            {
                "from": round(float(edges[b]), 4),
                "to": round(float(edges[b + 1]), 4),
                "n": n,
                "accuracy": round(acc, 4),
                "mean_confidence": round(avg, 4),
            }
        )
    onehot = np.eye(probs.shape[1])[y_true]
    return {
        "bins": bins,
        "ece": round(ece, 4),
        "mce": round(mce, 4),
        "brier": round(float(((probs - onehot) ** 2).sum(1).mean()), 4),
        "nll": round(float(-np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, None)).mean()), 4),
        "mean_confidence": round(float(conf.mean()), 4),
        "accuracy": round(float(correct.mean()), 4),
        "reliability": table,
    }


def summary(probs: np.ndarray, y_true: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Accuracy overall and per class, the confusion matrix, the commonest confusions, calibration."""
    k = len(names)
    y_pred = probs.argmax(1)
    m = confusion(y_true, y_pred, k)
    per_class = [
        {
            "class": names[i],
            "n": int(m[i].sum()),
            "correct": int(m[i, i]),
            "accuracy": round(float(m[i, i] / m[i].sum()), 4) if m[i].sum() else None,
        }
        for i in range(k)
    ]
    off = [(int(m[i, j]), names[i], names[j]) for i in range(k) for j in range(k) if i != j and m[i, j] > 0]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    return {
        "n": len(y_true),
        "accuracy": round(float((y_pred == y_true).mean()), 4) if len(y_true) else None,
        "per_class": per_class,
        "confusion": m.tolist(),
        "top_confusions": [{"true": t, "predicted": p, "count": c} for c, t, p in off[:8]],
        "calibration": calibration(probs, y_true),
    }
