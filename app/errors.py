"""Errors the study server reports to a person (researcher or participant), never a traceback.

Services raise these; they know nothing of HTTP. The web layer maps each kind to its status
code in one place (`app.web.STATUS`) and shows the message under the error's title.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


class AppError(Exception):
    """A problem with the user's input or files, with a message that says what to do."""

    title = "Something went wrong"

    def __init__(self, message: str, title: str | None = None) -> None:
        super().__init__(message)
        if title is not None:
            self.title = title


class NotFound(AppError):
    """What the request names does not exist (a study, a participant link)."""

    title = "Not found"


class Refused(AppError):
    """A request that could not have come from the page it answers: forged, malformed, out of
    range. Nothing is stored."""

    title = "This answer was not accepted"


class Conflict(AppError):
    """A request that is fine in itself but not now: a page not yet open, a study changed since."""

    title = "This answer was not accepted"


class Forbidden(AppError):
    """The request lacks what proves it may do this (a form token)."""

    title = "Not allowed"


class Unavailable(AppError):
    """Not possible yet: try again in a moment (an analysis still being computed)."""

    title = "Not ready yet"


@dataclass
class Invalid(Exception):
    """Answers a person can fix (a required question left empty): the page is shown again."""

    errors: dict[str, str] = field(default_factory=dict)


class StudyError(AppError):
    """A study file that cannot be served: every problem, each with file, line and field."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        head = f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(head + "\n" + "\n".join(f"  {p}" for p in problems))


class NotTaking(Unavailable):
    """The study takes no new participants now: paused, closed, or every place is taken."""

    WORDS: ClassVar[dict[str, tuple[str, str]]] = {  # reason -> (title, message), as a participant reads them
        "paused": (
            "This study is paused",
            "It is not taking new participants at the moment. Please try again later.",
        ),
        "closed": ("This study has closed", "It has finished collecting answers and is not taking new participants."),
        "full": ("This study is full", "Every place has been taken, so it is not taking new participants."),
    }

    def __init__(self, reason: str) -> None:
        self.reason = reason
        title, message = self.WORDS[reason]
        super().__init__(message, title=title)
