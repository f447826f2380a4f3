"""What a step type and a trial task declare: the contract each of them keeps.

In the spirit of jsPsych plugins' `info`: a step type names its YAML `type` and declares its
parameters (a pydantic model: the study file's schema for that step), the fields it records
(each one export column, one codebook entry and, for trial rows, one field of the analysis
frame), its template, how it reads a submitted form, what it stores, and what its page shows.
A trial task declares the same for one kind of question inside a `trials` block: its answers,
its answer key, its own recorded fields, its feedback and what its page adds.

The participation service, the participant pages, the export, the codebook, the analysis
rules and the bots iterate these declarations (app/steps/registry.py); none of them switches
on a step's type or a trial's task.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.models import Response, aware
from app.studies.base import StepSpec
from app.studies.items import make

if TYPE_CHECKING:
    from sqlalchemy.orm import QueryableAttribute
    from sqlalchemy.sql.elements import ColumnElement

    from app.models import Participant
    from app.studies.items import Item
    from app.studies.loader import LoadedStudy
    from app.studies.pages import Page
    from app.studies.schema import Condition


@dataclass(frozen=True)
class Recorded:
    """A field a step records: one column of the export and one entry of the codebook.

    For trial rows it is also a column of the analysis frame, named `field` (the Response
    attribute it comes from, unless `sql` says how to read it from the responses table).
    """

    name: str  # the export column
    type: str  # for the codebook: string, integer, number, boolean, datetime
    meaning: str
    values: str = ""
    field: str = ""  # the analysis frame's name; default: `name`
    sql: ColumnElement[Any] | QueryableAttribute[Any] | None = None  # default: the Response attribute `field`

    @property
    def key(self) -> str:
        return self.field or self.name

    def expression(self) -> ColumnElement[Any]:
        sql = self.sql if self.sql is not None else getattr(Response, self.key)
        return sql.label(self.key)

    def entry(self) -> dict[str, str]:
        """The codebook's entry for this column."""
        return {"name": self.name, "type": self.type, "meaning": self.meaning, "values": self.values}


_AS = {"string": "as_string", "integer": "as_integer", "number": "as_float", "boolean": "as_boolean"}


def in_values(name: str, type_: str, meaning: str, values: str = "") -> Recorded:
    """A trial field kept in the row's `values` JSON: a new field needs no database migration."""
    sql = getattr(Response.values[name], _AS[type_])()
    return Recorded(name, type_, meaning, values, sql=sql)


# Built once: every answer of a two-stage trial and every feedback page looks its row up.
_RESPONSE = select(Response).where(Response.participant_id == bindparam("pid"), Response.key == bindparam("key"))


def answered(session: Session, participant_id: int, key: str) -> Response | None:
    """The stored row of one page of one participant, if there is one."""
    return session.scalar(_RESPONSE, {"pid": participant_id, "key": key})


@dataclass
class Answering:
    """One submitted page: what a step type's `parse` and `store` may use."""

    session: Session
    study: LoadedStudy
    participant: Participant
    page: Page
    now: dt.datetime

    @property
    def served_at(self) -> dt.datetime | None:
        """When the server sent this page (None if it never did: a form posted without the page)."""
        p = self.participant
        return aware(p.served_at) if p.served_at is not None and p.served_page == self.page.index else None

    def server_rt_ms(self) -> float | None:
        """Page served -> answer received, on the server's clock."""
        served = self.served_at
        return round((self.now - served).total_seconds() * 1000, 1) if served is not None else None

    def row(self, **fields: Any) -> Response:
        """A new response row for this page, with the fields every row carries."""
        p, page = self.participant, self.page
        return Response(
            participant_id=p.id,
            study_id=self.study.id,
            study_hash=self.study.content_hash,
            key=page.key,
            page=page.index,
            step_id=page.step.id,
            step_type=page.step.type,
            condition=p.condition,
            received_at=self.now,
            **fields,
        )

    def stored(self) -> Response | None:
        return answered(self.session, self.participant.id, self.page.key)


@dataclass
class Showing:
    """One page being shown: what a step type's `view` and `feedback` may use."""

    session: Session
    study: LoadedStudy
    participant: Participant
    page: Page
    pages: tuple[Page, ...]  # the participant's whole plan
    prolific_url: str  # where Prolific's completion codes go

    @property
    def condition(self) -> Condition:
        return self.study.spec.condition(self.participant.condition or "")

    def stored(self) -> Response | None:
        return answered(self.session, self.participant.id, self.page.key)


@dataclass
class Stored:
    """What a step type's `store` did with an answer."""

    row: Response | None = None  # a new row to add (None: nothing new, or a row already in the session)
    finished: bool = True  # False: the page stays open (the first stage of a two-stage trial)
    end: tuple[str, str] | None = None  # (status, reason): the participation ends on this page


S = TypeVar("S", bound=StepSpec)


class StepType(Generic[S]):
    """One kind of page a study file can ask for. Subclasses set the class attributes."""

    name: ClassVar[str]  # the YAML `type`
    params: type[S]  # the step's parameters: the study file's schema for it
    template: ClassVar[str]  # under templates/
    summary: ClassVar[str]  # what the participant does, in a line (docs/studies.md has a row per type)
    trial_rows: ClassVar[bool] = False  # its rows are trials (trials.csv), not participant columns
    final: ClassVar[bool] = False  # the last page: nothing to answer
    passed: ClassVar[str | None] = None  # the column of `columns` that says whether a check was passed

    def spec(self, page: Page) -> S:
        """The page's step, as this type's parameters."""
        step = page.step
        assert isinstance(step, self.params)
        return step

    def fields(self) -> tuple[Recorded, ...]:
        """Trial rows: the fields every row of this type records (trials.csv columns, analysis fields)."""
        return ()

    def needs_condition(self, step: S) -> bool:
        """Whether the page depends on the participant's condition (assignment happens before it)."""
        return False

    def columns(self, step: S) -> list[Recorded]:
        """Participant-level steps: the participants.csv columns this step adds ("step.field")."""
        return []

    def flatten(self, step_id: str, row: Any) -> dict[str, Any]:
        """One stored row (step_id, values, answer, correct) as the `columns` values, by column name."""
        return {}

    def repeatable(self, step: S) -> set[str]:
        """Form fields that may come more than once (checkbox groups)."""
        return set()

    def parse(self, ctx: Answering, form: dict[str, str], multi: dict[str, list[str]]) -> Any:
        """Read the form. Raises Invalid (the person can fix it) or Refused (forged or malformed);
        changes nothing."""
        return None

    def store(self, ctx: Answering, parsed: Any) -> Stored:
        """Store what `parse` read (by default a row that says the page was seen)."""
        return Stored(ctx.row())

    def shows_feedback(self, step: S) -> bool:
        return False

    def view(self, ctx: Showing) -> dict[str, Any]:
        """What the page shows, beyond what every page has: the template's context."""
        return {}

    def feedback(self, ctx: Showing, row: Response) -> dict[str, Any] | None:
        """The feedback page after an answer (None: this page has none)."""
        return None

    def instructed(self, step: S) -> list[str]:
        """Answers the page tells the participant to give (attention checks): what bots choose."""
        return []


class Task:
    """One kind of question a `trials` block asks about each item."""

    name: ClassVar[str]  # the YAML `task`
    summary: ClassVar[str]  # what the participant is asked (docs/studies.md names every task)
    prompt: ClassVar[str]  # the default question; a block's `prompt` replaces it
    shows_prediction: ClassVar[bool | None] = None  # True: always; False: never; None: as the condition says
    template: ClassVar[str | None] = None  # what its `view` adds to the trial page (under templates/tasks/)
    two_stage: ClassVar[bool] = True  # may be asked twice, before and after the model's advice
    names_species: ClassVar[bool] = False  # its feedback names the species shown: a block with feedback teaches it
    fields: ClassVar[tuple[Recorded, ...]] = ()  # its own per-trial fields (kept in `values`: see in_values)

    def item(self, entry: Any, graphs: dict[int, Any], items: Any) -> Item | None:
        """The item this image makes for the task, or None if the image cannot be asked about."""
        return make(entry)

    def arrange(self, items: list[Item], rng: random.Random) -> list[Item]:
        """One participant's version of a block's items, in their order (`rng` is seeded with the
        participant's stored seed and the block): e.g. which side each answer is shown on."""
        return items

    def files(self, item: Item) -> list[str]:
        """Asset files the trial shows besides the picture and the explanation."""
        return []

    def options(self, study: LoadedStudy, step: Any) -> list[tuple[str, str]]:
        """The answers offered: (value, label)."""
        raise NotImplementedError

    def key(self, item: Item) -> str:
        """The right answer (never sent to the participant's browser before they answer)."""
        raise NotImplementedError

    def score(self, item: Item, answer: str) -> bool:
        return answer == self.key(item)

    def record(self, item: Item, answer: str | None) -> dict[str, Any]:
        """The values of this task's own `fields` for one answer."""
        return {}

    def view(self, study: LoadedStudy, item: Item) -> dict[str, Any]:
        """What the trial page shows besides the picture, the explanation and the answers."""
        return {}

    def feedback(self, item: Item, names: dict[int, str]) -> str:
        """The feedback page's sentence (it may name the right answer: the trial is answered)."""
        raise NotImplementedError

    def follow(self, model_answer: str | None) -> str | None:
        """The answer that goes along with the model's (a class id), for bots that follow it."""
        return model_answer
