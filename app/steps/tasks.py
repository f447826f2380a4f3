"""The trial tasks a `trials` block can ask: classify, verify, simulate, counterfactual.

A new task is one `Task` subclass (see app/steps/base.py for what it declares) passed to
`register_task` (app/steps/__init__.py registers these); the block's other parts (picture,
explanation, confidence, timing, two stages, feedback page, the trial row) come with every task.
"""

from __future__ import annotations

import random
from typing import Any

from app.steps.base import Task, in_values
from app.studies.items import Item, make, swap


def _pct(v: float) -> str:
    return "more than 100%" if v > 1 else f"{round(v * 100)}%"


def _species(study: Any, step: Any) -> list[tuple[str, str]]:
    names = study.class_names
    return [(str(c), names[c]) for c in (step.choices or list(names))]


class Classify(Task):
    name = "classify"
    summary = "name the species"
    prompt = "Which species is this gull?"
    names_species = True

    def options(self, study: Any, step: Any) -> list[tuple[str, str]]:
        return _species(study, step)

    def key(self, item: Item) -> str:
        return str(item.true_class)

    def feedback(self, item: Item, names: dict[int, str]) -> str:
        return f"This is a {names[item.true_class]}."


class Verify(Task):
    name = "verify"
    summary = "is the model's answer right? (its answer is always shown)"
    prompt = "Is the model's answer right?"
    shows_prediction = True
    names_species = True

    def options(self, study: Any, step: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes, the model is right"), ("no", "No, the model is wrong")]

    def key(self, item: Item) -> str:
        return "yes" if item.model_correct else "no"

    def feedback(self, item: Item, names: dict[int, str]) -> str:
        return (
            f"The model said {names[item.predicted_class]}; this is a {names[item.true_class]}, so the model was "
            f"{'right' if item.model_correct else 'wrong'}."
        )

    def follow(self, model_answer: str | None) -> str | None:
        return "yes"


class Simulate(Task):
    name = "simulate"
    summary = "what will the model say? (its answer is never shown)"
    prompt = "Which species will the model say this is?"
    shows_prediction = False

    def options(self, study: Any, step: Any) -> list[tuple[str, str]]:
        return _species(study, step)

    def key(self, item: Item) -> str:
        return str(item.predicted_class)

    def feedback(self, item: Item, names: dict[int, str]) -> str:
        return f"The model said {names[item.predicted_class]}."


class Counterfactual(Task):
    """From the SAG question material: two versions of the picture with patches removed."""

    name = "counterfactual"
    summary = "which of two pictures with patches removed keeps more of the model's confidence"
    prompt = "Which image keeps more of the model's confidence?"
    shows_prediction = True
    two_stage = False
    template = "tasks/counterfactual.html"
    fields = (
        in_values(
            "answer_side",
            "string",
            "counterfactual: the image, as shown to this participant, that kept more of the model's confidence "
            "(the right answer); balanced within each participant and block",
            "a, b",
        ),
        in_values(
            "sides_swapped",
            "boolean",
            "counterfactual: image A was the asset run's version b (the sides are drawn per participant and trial)",
            "true, false",
        ),
    )

    def arrange(self, items: list[Item], rng: random.Random) -> list[Item]:
        """The right answer on side A for half of the block's trials and on B for the other half
        (the odd one drawn), shuffled: the pipeline writes the stronger version first, so the
        side shown must not be the side stored."""
        n = len(items)
        sides = ["a"] * (n // 2) + ["b"] * (n // 2) + ([rng.choice("ab")] if n % 2 else [])
        rng.shuffle(sides)
        pairs = zip(items, sides, strict=True)
        return [it if it.question is None or it.question.higher == side else swap(it) for it, side in pairs]

    def item(self, entry: Any, graphs: dict[int, Any], items: Any) -> Item | None:
        graph = graphs.get(entry.image_id)
        if graph is None:
            return None
        question = next((q for q in graph.questions if not items.hidden_answers_only or not q.answer_in_diagram), None)
        return make(entry, question) if question else None

    def files(self, item: Item) -> list[str]:
        assert item.question is not None
        return [item.question.a.image, item.question.b.image]

    def options(self, study: Any, step: Any) -> list[tuple[str, str]]:
        return [("a", "Image A"), ("b", "Image B")]

    def record(self, item: Item, answer: str | None) -> dict[str, Any]:
        assert item.question is not None
        return {"answer_side": item.question.higher, "sides_swapped": item.swapped}

    def key(self, item: Item) -> str:
        assert item.question is not None
        return item.question.higher

    def view(self, study: Any, item: Item) -> dict[str, Any]:
        assert item.question is not None and study.assets is not None
        q = item.question
        return {
            "versions": [
                {"label": "Image A", "url": study.assets.url(q.a.image)},
                {"label": "Image B", "url": study.assets.url(q.b.image)},
            ]
        }

    def feedback(self, item: Item, names: dict[int, str]) -> str:
        q = item.question
        if q is None:
            return ""
        return (
            f"Image {q.higher.upper()} keeps more of the model's confidence: image A keeps "
            f"{_pct(q.a.confidence)}, image B keeps {_pct(q.b.confidence)}."
        )

    def follow(self, model_answer: str | None) -> str | None:
        return None  # the model names a species, not a picture


BUILT_IN = (Classify(), Verify(), Simulate(), Counterfactual())
