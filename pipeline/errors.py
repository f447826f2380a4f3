"""Errors the pipeline reports to a person: what is wrong and what to do, never a traceback."""

from __future__ import annotations


class PipelineError(Exception):
    """A problem with the user's input (a path, a file, an argument), not a bug."""


class Problems(PipelineError):
    """Several problems found while validating files, each with its file and line."""

    def __init__(self, summary: str, problems: list[str]) -> None:
        self.summary = summary
        self.problems = problems
        shown = problems[:25]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(f"{summary}\n" + "\n".join(f"  {p}" for p in shown) + more)


class StaleRun(PipelineError):
    """An output folder made with other settings (model, data, seed, method parameters) than asked for."""
