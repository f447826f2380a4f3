"""Errors the study server reports to a person (researcher or participant), never a traceback."""

from __future__ import annotations


class AppError(Exception):
    """A problem with the user's input or files, with a message that says what to do."""


class StudyError(AppError):
    """A study file that cannot be served: every problem, each with file, line and field."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        head = f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(head + "\n" + "\n".join(f"  {p}" for p in problems))
