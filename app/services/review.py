"""One participant's answers as a researcher reads them: trials with the picture, the species
(true and the model's), their answer beside the right one; questionnaires as question/answer
tables; every other page in one line.

The right answer comes from the participant's own plan (app/studies/pages.py), the same one
that drew their pages, so it is the key that scored them. Nothing here changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.models import Participant, Response
from app.steps.questionnaire import Questionnaire
from app.steps.registry import TASKS, trial_row_types
from app.steps.trials import Trials
from app.studies.loader import LoadedStudy
from app.studies.pages import Page, plan


@dataclass
class TrialView:
    row: Response
    label: str  # step id and trial number
    picture: str | None  # the stimulus' address
    true_species: str
    model_species: str
    answer: str  # in words: a species' name, "Image A", "Yes, the model is right"
    first_answer: str
    right_answer: str


@dataclass
class FormView:
    row: Response
    title: str
    answers: list[tuple[str, str]] = field(default_factory=list)  # question text, answer


@dataclass
class Review:
    trials: list[TrialView]
    forms: list[FormView]
    others: list[Response]  # consent, attention checks, instructions: one line each


def _words(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value) or "–"
    return str(value)


def review(study: LoadedStudy, p: Participant, rows: list[Response]) -> Review:
    names = study.class_names
    pages: dict[str, Page] = {}
    if p.study_hash == study.content_hash:  # an older version's plan is not this file's
        pages = {pg.key: pg for pg in plan(study, p.condition, p.item_set, p.seed)}
    out = Review([], [], [])
    trial_types = set(trial_row_types())
    for row in rows:
        page = pages.get(row.key)
        if row.step_type in trial_types:
            out.trials.append(_trial(study, row, page, names))
        elif page is not None and isinstance(page.step, Questionnaire):
            text = {q.id: q.text for q in page.step.questions}
            answers = [(text.get(k, k), _words(v)) for k, v in (row.values or {}).items()]
            out.forms.append(FormView(row, page.step.title, answers))
        elif row.values:  # a questionnaire of a version the study no longer has: the stored ids
            out.forms.append(FormView(row, row.step_id, [(k, _words(v)) for k, v in row.values.items()]))
        else:
            out.others.append(row)
    return out


def _trial(study: LoadedStudy, row: Response, page: Page | None, names: dict[int, str]) -> TrialView:
    def species(c: int | None) -> str:
        return "–" if c is None else names.get(c, f"class {c}")

    options: dict[str, str] = {}
    right = "–"
    picture = None
    if page is not None and page.item is not None and isinstance(page.step, Trials):
        task = TASKS[page.step.task]
        options = dict(task.options(study, page.step))
        key = task.key(page.item)
        right = options.get(key, key)
        entry = study.entries.get(page.item.image_id)
        if entry is not None and study.assets is not None:
            picture = study.assets.url(entry.image)
    trial = "" if row.trial_index is None else f" #{row.trial_index + 1}"
    return TrialView(
        row=row,
        label=f"{row.step_id}{trial}",
        picture=picture,
        true_species=species(row.true_class),
        model_species=species(row.model_prediction),
        answer=options.get(row.answer or "", row.answer or "–"),
        first_answer=options.get(row.first_answer or "", row.first_answer or ""),
        right_answer=right,
    )
