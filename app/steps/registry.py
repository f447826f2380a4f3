"""The registries: every step type by its YAML `type`, every trial task by its `task`.

The built-in ones register when `app.steps` is imported (its __init__ lists them). A study file's
`type` is checked against the step types when the study schema is built (a discriminated union,
built at import); its `task` against the tasks when the file is validated, so a task registered
later (a test's, a plug-in's) is accepted from then on.
"""

from __future__ import annotations

from typing import Any

from app.steps.base import Recorded, StepType, Task

STEP_TYPES: dict[str, StepType[Any]] = {}
TASKS: dict[str, Task] = {}


def register_step(kind: StepType[Any]) -> StepType[Any]:
    if kind.name in STEP_TYPES:
        raise ValueError(f"step type {kind.name!r} is registered twice")
    STEP_TYPES[kind.name] = kind
    return kind


def register_task(task: Task) -> Task:
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    TASKS[task.name] = task
    return task


def unregister_task(name: str) -> None:
    """For tests that register a task of their own."""
    TASKS.pop(name)


def step_type(step: Any) -> StepType[Any]:
    """The step type of one step of a study file."""
    return STEP_TYPES[step.type]


def trial_row_types() -> list[str]:
    """The step types whose stored rows are trials (rows of trials.csv and of the analysis frame)."""
    return [name for name, kind in STEP_TYPES.items() if kind.trial_rows]


def trial_fields(tasks: list[str]) -> list[Recorded]:
    """The fields of a trial row: those of every trial-row step type, then each task's own."""
    fields = [f for kind in STEP_TYPES.values() if kind.trial_rows for f in kind.fields()]
    return fields + [f for name in tasks for f in TASKS[name].fields]
