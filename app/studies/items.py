"""Which images each block shows, and in which order: pure functions of the study and the run.

Items are drawn per block from the run's images, stratified by model correctness and spread
evenly over classes, in a seeded order; later blocks never reuse an earlier block's images.
With `sets: K` a block's items form K equal, equally stratified sets that rotate across the
participants of each condition (a Latin square over sets × conditions).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from app.assets.manifest import ImageEntry, Manifest, SagGraph, SagQuestion

if TYPE_CHECKING:
    from app.steps.base import Task
    from app.steps.trials import Trials


@dataclass(frozen=True)
class Item:
    key: str  # image id, or image id + question for counterfactual items
    image_id: int
    true_class: int
    predicted_class: int
    confidence: float
    model_correct: bool
    question: SagQuestion | None = None
    swapped: bool = False  # counterfactual: the question's versions shown in the other order (see `swap`)


def swap(item: Item) -> Item:
    """The item with its question's two versions shown the other way round: A is the pipeline's B."""
    q = item.question
    assert q is not None
    other = "b" if q.higher == "a" else "a"
    turned = q.model_copy(update={"a": q.b, "b": q.a, "higher": other})
    return replace(item, question=turned, swapped=not item.swapped)


def make(e: ImageEntry, question: SagQuestion | None = None) -> Item:
    """The item of one image (and, for counterfactual trials, one of its SAG questions)."""
    return Item(
        question.id if question else str(e.image_id),
        e.image_id,
        e.true_class,
        e.predicted_class,
        e.probabilities[e.predicted_class],
        e.correct,
        question,
    )


def _spread(pool: list[ImageEntry], n: int, rng: random.Random) -> list[ImageEntry]:
    """n entries spread as evenly as possible over classes (round-robin in a seeded class order)."""
    by_class: dict[int, list[ImageEntry]] = {}
    for e in pool:
        by_class.setdefault(e.true_class, []).append(e)
    for v in by_class.values():
        rng.shuffle(v)
    order = sorted(by_class)
    rng.shuffle(order)
    out: list[ImageEntry] = []
    while len(out) < n and any(by_class.values()):
        for c in order:
            if by_class[c] and len(out) < n:
                out.append(by_class[c].pop())
    return out


class SelectionError(ValueError):
    pass


def select(
    manifest: Manifest, block: Trials, task: Task, seed: int, used: set[int], graphs: dict[int, SagGraph]
) -> list[list[Item]]:
    """The block's item sets (block.items.sets of them), each with the requested counts; an image
    is a candidate if the block's task can ask about it."""
    spec = block.items
    rng = random.Random(f"{seed}:{block.id}")
    classes = set(spec.classes) if spec.classes else {c.id for c in manifest.classes}
    made = {
        e.image_id: it
        for e in manifest.images
        if e.image_id not in used and e.true_class in classes and (spec.split == "any" or e.split == spec.split)
        if (it := task.item(e, graphs, spec)) is not None
    }
    pool = [e for e in manifest.images if e.image_id in made]
    chosen = []
    for want_correct, n in ((True, spec.correct), (False, spec.incorrect)):
        need = n * spec.sets
        candidates = [e for e in pool if e.correct == want_correct]
        if len(candidates) < need:
            kind = "the model gets right" if want_correct else "the model gets wrong"
            raise SelectionError(
                f"block {block.id!r} needs {need} images {kind} (split {spec.split}), "
                f"but the run has {len(candidates)} unused ones; explain more images "
                "or ask for fewer"
            )
        chosen.append(_spread(candidates, need, rng))
    sets: list[list[Item]] = [[] for _ in range(spec.sets)]
    for group in chosen:
        for k, e in enumerate(group):
            sets[k % spec.sets].append(made[e.image_id])
    return sets


def order(items: list[Item], participant_seed: int, block_id: str) -> list[Item]:
    """The participant's own shuffled order of a block (the seed is stored with the participant)."""
    out = list(items)
    random.Random(f"{participant_seed}:{block_id}").shuffle(out)
    return out
