"""What a condition's explanation is for one image, which files it needs, and what a page shows.

The app's side of the explanation kinds (heatmap, concepts, sag, examples): the loader asks
which files to check and serve, the trial page what to show, the instructions page what the
participant's explanation looks like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.assets.manifest import Concepts, Examples, Heatmap, ImageEntry, Sag

if TYPE_CHECKING:
    from app.studies.loader import LoadedStudy
    from app.studies.schema import Condition

Shown = Heatmap | Concepts | Sag | Examples


def explanation_for(entry: ImageEntry, condition: Condition) -> Shown | None:
    kind = {"heatmap": condition.method, "concepts": "xnn", "sag": "sag", "examples": "examples"}
    method = kind.get(condition.explanation)
    if not method:
        return None
    # an explanation of the true class is the predicted class's where the model is right
    target = "true" if condition.explains == "true_class" and not entry.correct else "predicted"
    found = entry.explanation(method, target)
    if isinstance(found, Examples):
        return of_predicted_class(entry, found, condition.neighbours)
    return found


def of_predicted_class(entry: ImageEntry, examples: Examples, n: int) -> Examples | None:
    """Nearest examples explain the model's prediction: the n nearest training images of the
    predicted class, always n (None if the run has fewer for this image: the loader says so).
    A neighbour of another class would, when the model is wrong, show a picture labelled with the
    true species, the answer key of a verify task; and a count that differed between pictures
    would say which predictions are wrong. Runs written before the pipeline kept to the predicted
    class may list other neighbours; they are left out here."""
    kept = [nb for nb in examples.neighbours if nb.true_class == entry.predicted_class][:n]
    return examples.model_copy(update={"neighbours": kept}) if len(kept) == n else None


def files(e: Shown) -> list[str]:
    """The files a participant's page shows for this explanation."""
    if isinstance(e, Heatmap):
        return [e.overlay]
    if isinstance(e, Concepts):
        return [e.card, *(c.overlay for c in e.significant)]
    if isinstance(e, Sag):
        return [e.diagram_svg, *e.files]
    return [n.image for n in e.neighbours]


def shown_view(study: LoadedStudy, entry: ImageEntry, condition: Condition) -> dict[str, Any] | None:
    """The trial page's explanation, or None if the condition shows none."""
    found = explanation_for(entry, condition)
    assets = study.assets
    assert assets is not None
    if found is None:
        return None
    if isinstance(found, Heatmap):
        return {"kind": "heatmap", "url": assets.url(found.overlay)}
    if isinstance(found, Concepts):
        return {"kind": "concepts", "url": assets.url(found.card), "summary": found.summary}
    if isinstance(found, Sag):
        return {"kind": "sag", "svg": (study.run / found.diagram_svg).read_text(encoding="utf-8")}
    names = study.class_names
    return {
        "kind": "examples",
        "neighbours": [{"url": assets.url(n.image), "label": names[n.true_class]} for n in found.neighbours],
    }


def intro(study: LoadedStudy, condition: Condition) -> dict[str, Any]:
    """What the participant's explanation looks like, and for concepts the galleries of each class."""
    out: dict[str, Any] = {
        "kind": condition.explanation,
        "show_prediction": condition.show_prediction,
        "show_confidence": condition.show_confidence,
        "galleries": [],
    }
    if condition.explanation == "concepts" and study.manifest.xnn and study.assets:
        names = study.class_names
        for cc in study.manifest.xnn.classes:
            concepts = [
                {"number": ci.concept, "images": [study.assets.url(g.overlay) for g in ci.gallery]}
                for ci in cc.concepts
                if ci.gallery and ci.mean_contribution > 0
            ]
            if concepts:
                out["galleries"].append({"species": names[cc.class_id], "concepts": concepts})
    return out
