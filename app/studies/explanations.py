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

from app.assets.manifest import ConceptInfo, Concepts, Examples, Heatmap, ImageEntry, Manifest, Sag, SagGraph

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
    view: Callable[[LoadedStudy, ImageEntry, Any, Condition], dict[str, Any]]  # what the trial page's template gets
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
                {
                    "name": concept_name(ci.concept, ci.suggested_name),
                    "images": [study.assets.url(g.overlay) for g in ci.gallery],
                }
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


def concept_name(number: int, part: str) -> str:
    """How a concept is called everywhere a participant meets it: its number within its species,
    and the bird part it covers most when the run knows it."""
    return f"Concept {number} ({part})" if part else f"Concept {number}"


def _concept_infos(study: LoadedStudy, class_id: int) -> dict[int, ConceptInfo]:
    xnn = study.manifest.xnn
    cc = next((c for c in xnn.classes if c.class_id == class_id), None) if xnn else None
    return {ci.concept: ci for ci in cc.concepts} if cc else {}


def concepts_view(study: LoadedStudy, found: Concepts, condition: Condition) -> dict[str, Any]:
    """The card as HTML (the concepts kind's view): whose concepts, each concept's map, name and
    share, one summary sentence, concepts that light the same spot said so, and each concept's
    gallery to open."""
    assets = study.assets
    assert assets is not None
    infos = _concept_infos(study, found.target_class)
    total = sum(max(m.contribution, 0.0) for m in found.significant) or 1.0
    names = {
        m.concept: concept_name(m.concept, infos[m.concept].suggested_name if m.concept in infos else "")
        for m in found.significant
    }
    items = []
    for m in found.significant:
        info = infos.get(m.concept)
        items.append(
            {
                "name": names[m.concept],
                "overlay": assets.url(m.overlay),
                "share": round(100 * max(m.contribution, 0.0) / total),
                "same_spot": names.get(m.same_spot_as) if m.same_spot_as else None,
                "gallery": [assets.url(g.overlay) for g in info.gallery] if info else [],
            }
        )
    # the model's answer is named only where the condition shows it anyway
    species = study.class_names[found.target_class] if condition.show_prediction else None
    words = [n[0].lower() + n[1:] for n in names.values()]
    summary = f"The model relied mostly on {_listed(words)}." if words else "No concept spoke for this species."
    return {"species": species, "concepts": items, "summary": summary}


def _listed(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def sag_alt(g: SagGraph) -> str:
    """The diagram in words, for a screen reader: the numbers it prints, and nothing it does not."""
    roots = [n for n in g.nodes if n.root and n.patches in g.roots]
    children = [n for n in g.nodes if n.depth == 1]
    shares = _listed([_share(n.confidence) for n in roots])
    out = (
        f"{len(roots)} small part{'s' if len(roots) != 1 else ''} of the picture, each shown alone, "
        f"keep{'s' if len(roots) == 1 else ''} {shares} of the model's confidence on the whole picture."
    )
    if any(not n.patches for n in roots):
        out += " Even with every square hidden the model stays about as sure."
    if children:
        low, high = min(n.confidence for n in children), max(n.confidence for n in children)
        out += f" Hiding one square of them leaves between {_share(low)} and {_share(high)}."
    return out


def _share(c: float) -> str:
    """As the diagram prints it (pipeline.render.sag.shown_percent)."""
    return "more than 100%" if c > 1 else f"{round(c * 100)}%"


def _sag_view(study: LoadedStudy, entry: ImageEntry, e: Sag) -> dict[str, Any]:
    graph = study.graphs.get(entry.image_id)
    return {
        "url": _url(study, e.diagram_svg),
        "phone_url": _url(study, e.diagram_phone),
        "alt": sag_alt(graph) if graph else "A diagram of the parts of the picture the model needs",
    }


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
            view=lambda study, entry, e, condition: {
                "url": _url(study, e.overlay),
                "original": _url(study, entry.image),
            },
        ),
        Kind(
            "concepts",
            Concepts,
            "xnn",
            files=lambda e: [e.card, *(c.overlay for c in e.significant)],
            view=lambda study, entry, e, condition: concepts_view(study, e, condition),
            intro=_concept_galleries,
            study_files=_gallery_files,
            study_labelled=_gallery_images,
        ),
        Kind(
            "sag",
            Sag,
            "sag",
            files=lambda e: [e.diagram_svg, e.diagram_phone, *e.files],
            view=lambda study, entry, e, condition: _sag_view(study, entry, e),
        ),
        Kind(
            "examples",
            Examples,
            "examples",
            files=lambda e: [n.image for n in e.neighbours],
            view=lambda study, entry, e, condition: {
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
    return {"kind": kind.name, "template": kind.template, **kind.view(study, entry, found, condition)}


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
