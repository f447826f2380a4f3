"""What a condition's explanation is for one image, which files it needs, and what a page shows.

The app's side of the explanation kinds (heatmap, concepts, sag, examples): the loader asks
which files to check and serve, the trial page what to show, the instructions page what the
participant's explanation looks like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.assets.manifest import ConceptInfo, Concepts, Examples, Heatmap, ImageEntry, Sag, SagGraph

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
        return [e.diagram_svg, e.diagram_phone, *e.files]
    return [n.image for n in e.neighbours]


def shown_view(study: LoadedStudy, entry: ImageEntry, condition: Condition) -> dict[str, Any] | None:
    """The trial page's explanation, or None if the condition shows none."""
    found = explanation_for(entry, condition)
    assets = study.assets
    assert assets is not None
    if found is None:
        return None
    if isinstance(found, Heatmap):
        return {"kind": "heatmap", "url": assets.url(found.overlay), "original": assets.url(entry.image)}
    if isinstance(found, Concepts):
        return concepts_view(study, found, condition)
    if isinstance(found, Sag):
        graph = study.graphs.get(entry.image_id)
        return {
            "kind": "sag",
            "url": assets.url(found.diagram_svg),
            "phone_url": assets.url(found.diagram_phone),
            "alt": sag_alt(graph) if graph else "A diagram of the parts of the picture the model needs",
        }
    names = study.class_names
    return {
        "kind": "examples",
        "neighbours": [{"url": assets.url(n.image), "label": names[n.true_class]} for n in found.neighbours],
    }


def concept_name(number: int, part: str) -> str:
    """How a concept is called everywhere a participant meets it: its number within its species,
    and the bird part it covers most when the run knows it."""
    return f"Concept {number} ({part})" if part else f"Concept {number}"


def _concept_infos(study: LoadedStudy, class_id: int) -> dict[int, ConceptInfo]:
    xnn = study.manifest.xnn
    cc = next((c for c in xnn.classes if c.class_id == class_id), None) if xnn else None
    return {ci.concept: ci for ci in cc.concepts} if cc else {}


def concepts_view(study: LoadedStudy, found: Concepts, condition: Condition) -> dict[str, Any]:
    """The card as HTML: whose concepts, each concept's map, name and share, one summary sentence,
    concepts that light the same spot said so, and each concept's gallery to open."""
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
    return {"kind": "concepts", "species": species, "concepts": items, "summary": summary}


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
                {
                    "name": concept_name(ci.concept, ci.suggested_name),
                    "images": [study.assets.url(g.overlay) for g in ci.gallery],
                }
                for ci in cc.concepts
                if ci.gallery and ci.mean_contribution > 0
            ]
            if concepts:
                out["galleries"].append({"species": names[cc.class_id], "concepts": concepts})
    return out
