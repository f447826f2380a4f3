"""The kinds of explanation a study condition can show, one spec each.

A kind (a condition's `explanation:` in a study file) says which manifest record it shows (and
for heatmaps, that the condition names the method), which files a participant's page needs
(the loader checks and serves exactly these), what the trial page shows (`view`, rendered by
its `template` under templates/explanations/) and what the instructions page says about it
(`intro_template`, with `intro` for its extra content), what of a record a condition shows
(`narrow`: examples keep n of the predicted class), whether it can explain the true class, and
which pictures it shows with their species named (the overlap check). The pipeline's methods
say which kind they write (pipeline/explain/methods.py); a new kind is one spec here and its
two templates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.assets.manifest import Concepts, Examples, Heatmap, ImageEntry, Manifest, Sag

if TYPE_CHECKING:
    from app.studies.loader import LoadedStudy
    from app.studies.schema import Condition

Shown = Heatmap | Concepts | Sag | Examples


def _nothing(study: LoadedStudy) -> dict[str, Any]:
    return {}


def _no_files(manifest: Manifest) -> list[str]:
    return []


def _none_labelled(e: Any) -> set[int]:
    return set()


def _none_labelled_once(manifest: Manifest) -> set[int]:
    return set()


def _nothing_more(condition: Condition) -> str:
    return ""


def _as_is(entry: ImageEntry, found: Any, condition: Condition) -> Shown | None:
    return found


@dataclass(frozen=True)
class Kind:
    name: str  # what a study file writes: `explanation: NAME`
    record: type[Shown]  # the manifest record it shows
    method: str | None  # the pipeline method that writes it; None: the condition names one (`method:`)
    files: Callable[[Any], list[str]]  # the files a participant's page shows of one record
    view: Callable[[LoadedStudy, Any], dict[str, Any]]  # what the trial page's template gets
    intro: Callable[[LoadedStudy], dict[str, Any]] = _nothing  # the instructions page's extra content
    study_files: Callable[[Manifest], list[str]] = _no_files  # files shown once per study (e.g. galleries)
    narrow: Callable[[ImageEntry, Any, Condition], Shown | None] = _as_is  # what of the record a condition shows
    needs: Callable[[Condition], str] = _nothing_more  # what `narrow` needs, for the loader's "lacks" message
    true_class: bool = True  # can explain the true class (`explains: true_class`): the run has such records
    # pictures it shows with their species named (app/studies/overlap.py): per record, and once per study
    labelled: Callable[[Any], set[int]] = _none_labelled
    study_labelled: Callable[[Manifest], set[int]] = _none_labelled_once

    @property
    def template(self) -> str:
        return f"explanations/{self.name}.html"

    @property
    def intro_template(self) -> str:
        return f"explanations/{self.name}_intro.html"


def _concept_galleries(study: LoadedStudy) -> dict[str, Any]:
    """Each species' concepts on the training pictures where they are strongest."""
    galleries = []
    if study.manifest.xnn and study.assets:
        names = study.class_names
        for cc in study.manifest.xnn.classes:
            concepts = [
                {"number": ci.concept, "images": [study.assets.url(g.overlay) for g in ci.gallery]}
                for ci in cc.concepts
                if ci.gallery and ci.mean_contribution > 0
            ]
            if concepts:
                galleries.append({"species": names[cc.class_id], "concepts": concepts})
    return {"galleries": galleries}


def _gallery_files(manifest: Manifest) -> list[str]:
    if manifest.xnn is None:
        return []
    return [g.overlay for cc in manifest.xnn.classes for ci in cc.concepts for g in ci.gallery]


def _gallery_images(manifest: Manifest) -> set[int]:
    """The galleries show each species' concepts on training pictures, under the species' name."""
    if manifest.xnn is None:
        return set()
    return {g.image_id for cc in manifest.xnn.classes for ci in cc.concepts for g in ci.gallery}


def of_predicted_class(entry: ImageEntry, examples: Examples, n: int) -> Examples | None:
    """Nearest examples explain the model's prediction: the n nearest training images of the
    predicted class, always n (None if the run has fewer for this image: the loader says so).
    A neighbour of another class would, when the model is wrong, show a picture labelled with the
    true species, the answer key of a verify task; and a count that differed between pictures
    would say which predictions are wrong. Runs written before the pipeline kept to the predicted
    class may list other neighbours; they are left out here."""
    kept = [nb for nb in examples.neighbours if nb.true_class == entry.predicted_class][:n]
    return examples.model_copy(update={"neighbours": kept}) if len(kept) == n else None


def _url(study: LoadedStudy, rel: str) -> str:
    assert study.assets is not None
    return study.assets.url(rel)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "heatmap",
            Heatmap,
            None,
            files=lambda e: [e.overlay],
            view=lambda study, e: {"url": _url(study, e.overlay)},
        ),
        Kind(
            "concepts",
            Concepts,
            "xnn",
            files=lambda e: [e.card, *(c.overlay for c in e.significant)],
            view=lambda study, e: {"url": _url(study, e.card), "summary": e.summary},
            intro=_concept_galleries,
            study_files=_gallery_files,
            study_labelled=_gallery_images,
        ),
        Kind(
            "sag",
            Sag,
            "sag",
            files=lambda e: [e.diagram_svg, *e.files],
            view=lambda study, e: {"svg": (study.run / e.diagram_svg).read_text(encoding="utf-8")},
        ),
        Kind(
            "examples",
            Examples,
            "examples",
            files=lambda e: [n.image for n in e.neighbours],
            view=lambda study, e: {
                "neighbours": [
                    {"url": _url(study, n.image), "label": study.class_names[n.true_class]} for n in e.neighbours
                ]
            },
            narrow=lambda entry, e, condition: of_predicted_class(entry, e, condition.neighbours),
            needs=lambda condition: f" ({condition.neighbours} of the predicted class)",
            true_class=False,  # they explain the prediction
            labelled=lambda e: {n.image_id for n in e.neighbours},  # each neighbour under its species
        ),
    )
}
NAMES = ("none", *KINDS)  # what `explanation:` may say


def explanation_for(entry: ImageEntry, condition: Condition) -> Shown | None:
    """What this condition shows with this image, or None (no explanation, or the run lacks it)."""
    kind = KINDS.get(condition.explanation)
    if kind is None:
        return None
    # an explanation of the true class is the predicted class's where the model is right
    target = "true" if condition.explains == "true_class" and not entry.correct else "predicted"
    found = entry.explanation(kind.method or condition.method or "", target)
    return kind.narrow(entry, found, condition) if isinstance(found, kind.record) else None


def files(condition: Condition, e: Shown) -> list[str]:
    """The files a participant's page shows for this explanation."""
    return KINDS[condition.explanation].files(e)


def shown_view(study: LoadedStudy, entry: ImageEntry, condition: Condition) -> dict[str, Any] | None:
    """The trial page's explanation, or None if the condition shows none."""
    found = explanation_for(entry, condition)
    if found is None:
        return None
    kind = KINDS[condition.explanation]
    return {"kind": kind.name, "template": kind.template, **kind.view(study, found)}


def intro(study: LoadedStudy, condition: Condition) -> dict[str, Any]:
    """What the participant's explanation looks like (and for concepts the galleries of each class)."""
    kind = KINDS.get(condition.explanation)
    return {
        "kind": condition.explanation,
        "template": kind.intro_template if kind else None,
        "show_prediction": condition.show_prediction,
        "show_confidence": condition.show_confidence,
        **({"galleries": []} | (kind.intro(study) if kind else {})),
    }
