"""A participant's study as a flat list of pages; the server keeps one cursor into it.

The list is a pure function of (study, condition, item set, participant seed), so it never
needs storing: a refresh, the back button or a typed URL all land on page `cursor`. Before a
participant is assigned a condition, only the pages up to the first condition-dependent step
exist.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from app.steps.registry import TASKS
from app.steps.trials import Trials
from app.studies.items import Item, order
from app.studies.loader import LoadedStudy
from app.studies.schema import Step


@dataclass(frozen=True)
class Page:
    index: int
    step: Step
    key: str  # the response key: step id, or step id:trial number
    trial: int | None = None  # 0-based within the block
    block_size: int | None = None
    item: Item | None = None


@functools.lru_cache(maxsize=4096)
def plan(study: LoadedStudy, condition: str | None, item_set: int | None, seed: int) -> tuple[Page, ...]:
    """Cached: every request of a participant needs their plan, and it never changes."""
    pages: list[Page] = []
    for step in study.spec.steps:
        if condition is None and study.spec.needs_condition(step):
            break
        if isinstance(step, Trials) and step.id in study.items:  # a block: one page per item
            sets = study.items[step.id]
            items = order(sets[(item_set or 0) % len(sets)], seed, step.id)
            items = TASKS[step.task].arrange(items, random.Random(f"{seed}:{step.id}:arrange"))
            pages += [Page(len(pages) + k, step, f"{step.id}:{k}", k, len(items), it) for k, it in enumerate(items)]
        else:
            pages.append(Page(len(pages), step, step.id))
    return tuple(pages)


def page_count(study: LoadedStudy) -> int:
    """How many pages every participant sees (the same in every condition): for progress bars."""
    return sum(len(study.items[s.id][0]) if s.id in study.items else 1 for s in study.spec.steps)
