"""Power by simulation: the simulated study has the study's layout, and the test is the analysis's."""

from __future__ import annotations

import numpy as np
import pytest

from app.analysis.power import Plan, parse_accuracy, parse_sizes, power_table, simulate
from app.errors import AppError


def test_a_simulated_study_has_the_plans_layout() -> None:
    plan = Plan({"a": 0.6, "b": 0.7, "c": 0.6}, trials=4, sets=2)
    d = simulate(plan, 12, np.random.default_rng(0))
    assert len(d.y) == 12 * 4 and d.n_participants == 12 and d.n_items == 8
    # conditions in turn; within a condition the item sets alternate (a Latin square over sets)
    person = d.participant.reshape(12, 4)[:, 0]
    assert list(d.condition.reshape(12, 4)[:, 0]) == ["a", "b", "c"] * 4
    first_items = {int(p): sorted(d.item.reshape(12, 4)[k]) for k, p in enumerate(person)}
    assert first_items[0] != first_items[3] and first_items[0] == first_items[6]


def test_power_finds_a_large_difference_and_rarely_a_null_one() -> None:
    plan = Plan({"none": 0.55, "big": 0.85, "same": 0.55}, trials=16)
    seen: list[int] = []
    table = power_table(plan, [30, 60], simulations=40, workers=1, progress=seen.append)
    assert sum(seen) == 2 * 40
    power = {(r.participants, r.comparison): r.power for r in table.itertuples()}
    assert power[(60, "big vs none")] >= 0.9
    assert power[(60, "same vs none")] <= 0.2
    assert power[(30, "big vs none")] <= power[(60, "big vs none")]
    assert set(table["comparison"]) == {"big vs none", "same vs none", "any difference"}
    assert (table["mc_se"] <= 0.08).all()


def test_bad_power_input_is_refused() -> None:
    with pytest.raises(AppError, match="not a condition"):
        parse_accuracy("none=0.5,heatmap=0.7", ["none", "sag"])
    with pytest.raises(AppError, match="between 0 and 1"):
        parse_accuracy("none=0.5,sag=1.2", ["none", "sag"])
    with pytest.raises(AppError, match="START:STOP:STEP"):
        parse_sizes("20-200")
    assert parse_sizes("20:60:20") == [20, 40, 60]
    with pytest.raises(AppError, match="two conditions"):
        Plan({"none": 0.5}, trials=4)
