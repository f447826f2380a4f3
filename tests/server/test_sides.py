"""Counterfactual trials: the side of the right answer is drawn per participant and trial.

The pipeline writes the higher-confidence version first, so without this the right answer was
"Image A" on every trial. The side comes from the participant's stored seed, is balanced within
each participant's block (half A, half B, the odd one drawn), is recorded in the data and is
what the page, the key, the feedback and the export all agree on.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pandas as pd

from app.bots import run_bots
from app.export.columns import codebook
from app.export.files import export
from app.main import create_app
from app.settings import Settings
from app.steps import TASKS
from app.studies.items import Item, swap
from app.studies.loader import LoadedStudy
from app.studies.pages import plan

TASK = TASKS["counterfactual"]


def _as_written_first(items: list[Item]) -> list[Item]:
    """The items as the real pipeline writes them: the right answer always version a."""
    return [it if it.question is not None and it.question.higher == "a" else swap(it) for it in items]


def test_sides_are_balanced_shuffled_and_seeded(studies: dict[str, LoadedStudy]) -> None:
    study = studies["sag-counterfactual"]
    for block, n in (("test", 8), ("practice", 3)):
        items = _as_written_first(study.items[block][0])
        assert len(items) == n and {it.question.higher for it in items if it.question} == {"a"}
        by_position: list[set[str]] = [set() for _ in range(n)]
        arrangements = set()
        for seed in range(40):
            shown = TASK.arrange(items, random.Random(seed))
            sides = [it.question.higher for it in shown if it.question]
            counts = Counter(sides)
            assert abs(counts["a"] - counts["b"]) <= 1, (seed, sides)  # balanced within the block
            assert [it.key for it in shown] == [it.key for it in items]  # the order is not its business
            for k, side in enumerate(sides):
                by_position[k].add(side)
            arrangements.add(tuple(sides))
            again = TASK.arrange(items, random.Random(seed))
            assert [it.question for it in again] == [it.question for it in shown]  # the seed decides
        assert all(s == {"a", "b"} for s in by_position)  # every trial can have either side
        assert len(arrangements) > 3  # shuffled, not one fixed pattern


def test_a_swapped_question_keeps_its_answer(studies: dict[str, LoadedStudy]) -> None:
    item = studies["sag-counterfactual"].items["test"][0][0]
    q, turned = item.question, swap(item)
    assert q is not None and turned.question is not None and turned.swapped and not swap(turned).swapped
    assert turned.question.a == q.b and turned.question.b == q.a and turned.question.higher != q.higher
    better = q.a if q.higher == "a" else q.b
    assert (turned.question.a if turned.question.higher == "a" else turned.question.b) == better
    assert TASK.key(turned) == turned.question.higher and TASK.score(turned, turned.question.higher)


def test_each_participants_plan_is_balanced(studies: dict[str, LoadedStudy]) -> None:
    study = studies["sag-counterfactual"]
    seen = set()
    for seed in range(30):
        pages = plan(study, "sag", 0, seed)
        for block in ("practice", "test"):
            sides = Counter(p.item.question.higher for p in pages if p.step.id == block and p.item and p.item.question)
            assert abs(sides["a"] - sides["b"]) <= 1 and sum(sides.values()) == (3 if block == "practice" else 8)
        seen.add(tuple(p.item.swapped for p in pages if p.item))
    assert len(seen) > 1  # participants differ


def test_the_side_is_served_scored_and_exported(
    settings: Settings, studies: dict[str, LoadedStudy], tmp_path: Path
) -> None:
    study = studies["sag-counterfactual"]
    results = run_bots(study, 3, "oracle", None, 5, settings, studies)
    # an oracle reads image A and B off the page: it is only always right if the page, the key
    # and the scoring agree on the side
    assert all(r.status == "completed" and r.correct == r.answered == 11 for r in results), results
    app = create_app(settings, studies)
    with app.state.sessions() as s:
        export(s, study, tmp_path, settings.secret_key, all_origins=True)  # the bots
    app.state.engine.dispose()
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert set(trials["answer_side"]) == {"a", "b"}
    assert (trials["response"] == trials["answer_side"]).all() and trials["correct"].all()
    for _, one in trials.groupby(["participant", "block"]):
        counts = one["answer_side"].value_counts()
        assert abs(counts.get("a", 0) - counts.get("b", 0)) <= 1
    assert trials["sides_swapped"].isin([True, False]).all()
    names = [c["name"] for c in codebook(study, False)["trials.csv"]]
    assert "answer_side" in names and "sides_swapped" in names
