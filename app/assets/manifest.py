"""The asset manifest: the contract between the pipeline (which writes it) and the study server.

Pure pydantic, no torch: the one module the pipeline imports from `app`. Paths are relative to
the run folder and use forward slashes. A manifest says, per image, what the model predicted
and which explanation files exist, with the parameters, faithfulness scores and provenance
needed to trust them.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FORMAT: Literal["fieldmark-assets/1"] = "fieldmark-assets/1"
MANIFEST = "manifest.json"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative(path: str) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or "\\" in path or not path:
        raise ValueError(f"{path!r} must be a relative path inside the run folder")
    return path


class Provenance(Strict):
    model_path: str
    model_hash: str
    model_arch: str
    data_path: str
    data_hash: str
    code_version: str
    libraries: dict[str, str]
    seed: int
    device: str
    created: str


class ClassInfo(Strict):
    id: int  # CUB class id
    name: str


class Protocol(Strict):
    """How a deletion/insertion score was measured; scores are only comparable under one protocol."""

    name: str  # "igos", "igos-native" or "rise"
    unit: Literal["cell", "pixel"]
    resolution: int  # cells or pixels per side that are ranked; 0: the map's own (see Faithfulness)
    deletion_fill: str
    insertion_start: str
    score: str
    steps: int
    auc: str


class Faithfulness(Strict):
    protocol: str  # a key of Manifest.protocols
    resolution: int | None = None  # cells/pixels per side ranked (absent in manifests before it was recorded)
    deletion_auc: float  # lower is better
    insertion_auc: float  # higher is better


class PartScore(Strict):
    energy: float  # share of saliency mass inside the part (energy-based pointing game)
    hit: bool  # pointing game: the saliency peak lies within the tolerance of the part


class Heatmap(Strict):
    """A saliency map for one (image, method, explained class)."""

    kind: Literal["heatmap"] = "heatmap"
    method: str
    target: Literal["predicted", "true"]
    target_class: int
    raw: str  # .npy, float32, higher = more important, at the method's own resolution
    overlay: str  # .png, the map over the image, fixed colour scale
    curves: str  # .json, deletion and insertion curves per protocol
    faithfulness: list[Faithfulness]
    localisation: dict[str, PartScore] = Field(default_factory=dict)  # part name -> score
    seconds: float

    _check = field_validator("raw", "overlay", "curves")(_relative)

    def paths(self) -> list[str]:
        """Every file this record refers to."""
        return [self.raw, self.overlay, self.curves]


class Neighbour(Strict):
    image_id: int
    true_class: int
    distance: float
    image: str

    _check = field_validator("image")(_relative)


class Examples(Strict):
    """Nearest training images in the classifier's penultimate feature space."""

    kind: Literal["examples"] = "examples"
    method: Literal["examples"] = "examples"
    target: Literal["predicted"] = "predicted"
    neighbours: list[Neighbour]
    seconds: float

    def paths(self) -> list[str]:
        return [n.image for n in self.neighbours]


class SagNode(Strict):
    id: int
    patches: list[int]  # patch p is cell (p // grid, p % grid) of the grid
    confidence: float  # p(patches only) / p(full image), as measured: it can exceed 1
    root: bool
    depth: int
    thumbnail: str  # the image with only these patches bright

    _check = field_validator("thumbnail")(_relative)


class SagEdge(Strict):
    parent: int
    child: int
    removed_patch: int
    drop: float  # parent confidence − child confidence


class QuestionVersion(Strict):
    patches: list[int]  # the patches left visible; the rest shows the baseline
    confidence: float  # relative to the full image
    image: str  # what the model saw
    in_graph: bool  # this version is a node of the image's SAG (its confidence is printed there)

    _check = field_validator("image")(_relative)


class SagQuestion(Strict):
    """'Which of these two images keeps more of the model's confidence?' (the answer key is `higher`)."""

    id: str
    a: QuestionVersion
    b: QuestionVersion
    higher: Literal["a", "b"]

    @property
    def answer_in_diagram(self) -> bool:
        """Both confidences are printed in the diagram: answering is lookup, not understanding."""
        return self.a.in_graph and self.b.in_graph


class SagGraph(Strict):
    """The per-image SAG document (`graph` of a Sag explanation)."""

    format: Literal["fieldmark-sag/1"] = "fieldmark-sag/1"
    image_id: int
    target_class: int
    grid: int
    baseline: str
    threshold: float  # sufficient: p(P) > threshold × p(full)
    node_threshold: float  # nodes are expanded while confidence > node_threshold
    p_full: float
    order: list[int]  # patches, most salient first (the I-GOS reference order)
    all_roots: list[list[int]]
    roots: list[list[int]]  # the diverse roots shown
    nodes: list[SagNode]
    edges: list[SagEdge]
    questions: list[SagQuestion]
    forwards: int  # masked images scored
    calls: int  # batched model calls
    seconds: float
    seed: int

    @model_validator(mode="after")
    def _consistent(self) -> SagGraph:
        ids = {n.id for n in self.nodes}
        cells = self.grid * self.grid
        for e in self.edges:
            if e.parent not in ids or e.child not in ids:
                raise ValueError(f"edge {e.parent}->{e.child} refers to a node that does not exist")
        for n in self.nodes:
            if any(not 0 <= p < cells for p in n.patches):
                raise ValueError(f"node {n.id} has a patch outside the {self.grid}×{self.grid} grid")
        node_sets = {tuple(n.patches) for n in self.nodes if n.root}
        if any(tuple(r) not in node_sets for r in self.roots):
            raise ValueError("every shown root must be a root node")
        return self

    def files(self) -> list[str]:
        return [n.thumbnail for n in self.nodes] + [v.image for q in self.questions for v in (q.a, q.b)]


class Sag(Strict):
    """A structured attention graph: diagram files, the graph document, and its question material."""

    kind: Literal["sag"] = "sag"
    method: Literal["sag"] = "sag"
    target: Literal["predicted", "true"]
    target_class: int
    graph: str  # .json, a SagGraph
    diagram_svg: str  # for participants: one self-contained file, laid out for a desktop column
    diagram_phone: str  # the same diagram laid out for a phone (a page picks one with <picture>)
    diagram_png: str  # the same diagram for papers
    roots: int  # how many roots are shown
    files: list[str]  # node thumbnails and question images
    seconds: float

    _check = field_validator("graph", "diagram_svg", "diagram_phone", "diagram_png")(_relative)
    _check_files = field_validator("files")(lambda v: [_relative(f) for f in v])

    def paths(self) -> list[str]:
        return [self.graph, self.diagram_svg, self.diagram_phone, self.diagram_png, *self.files]


class ConceptMap(Strict):
    concept: int  # 1-based, within the explained class's XNN
    contribution: float  # z_j · w_j
    activation: float  # z_j
    raw: str  # .npy heatmap of where the concept fires
    overlay: str  # .png
    same_spot_as: int | None = None  # an earlier concept of this card whose map lights the same spot

    _check = field_validator("raw", "overlay")(_relative)


class Concepts(Strict):
    """XNN: the significant concepts behind one prediction, with a card for participants."""

    kind: Literal["concepts"] = "concepts"
    method: Literal["xnn"] = "xnn"
    target: Literal["predicted", "true"]
    target_class: int
    logit: float  # the classifier's logit for the class
    rebuilt: float  # the XNN's rebuilt logit
    contributions: list[float]  # every concept's z_j · w_j, concept 1 first
    significant: list[ConceptMap]  # fewest positive concepts covering 90 % of the positive score
    card: str  # .png explanation card
    summary: str  # the card's plain words
    seconds: float

    _check = field_validator("card")(_relative)

    def paths(self) -> list[str]:
        return [self.card, *(f for c in self.significant for f in (c.raw, c.overlay))]


class GalleryItem(Strict):
    image_id: int
    image: str
    overlay: str
    activation: float

    _check = field_validator("image", "overlay")(_relative)


class ConceptInfo(Strict):
    concept: int
    weight: float  # w_j of the regressor: sign and size of the concept's vote
    mean_contribution: float  # over the training split
    suggested_name: str  # from the part it covers most (synthetic gulls); the researcher may rename it
    part_shares: dict[str, float]  # mean share of the concept's heatmap mass per part
    gallery: list[GalleryItem]  # training images where the concept is strongest


class ClassConcepts(Strict):
    class_id: int
    rmse: float  # of the rebuilt logit on the test split
    logit_range: float
    accepted: bool  # the acceptance loop's test passed
    rounds: int
    concepts: list[ConceptInfo]


class XnnReport(Strict):
    k: int
    layer: str
    feature_dim: int
    accuracy_xnn: float  # test accuracy when every logit is replaced by its XNN's output
    accuracy_classifier: float
    agreement: float
    heatmap_method: str
    params: dict[str, object]
    heatmap_params: dict[str, object]
    classes: list[ClassConcepts]


Explanation = Annotated[Heatmap | Examples | Sag | Concepts, Field(discriminator="kind")]


class ImageEntry(Strict):
    image_id: int
    name: str  # name in the data set (images.txt)
    split: Literal["train", "test"]
    image: str  # the picture as the model saw it (224 px PNG)
    true_class: int
    predicted_class: int
    probabilities: dict[int, float]  # class id -> probability
    correct: bool
    explanations: list[Explanation] = Field(default_factory=list)

    _check = field_validator("image")(_relative)

    def explanation(self, method: str, target: str = "predicted") -> Explanation | None:
        for e in self.explanations:
            if e.method == method and e.target == target:
                return e
        return None


class Deviation(Strict):
    """Where a method differs from its reference code, and why (pipeline/methods/deviations.py)."""

    what: str
    why: str
    switch: str | None = None  # the parameter setting that follows the reference code, if any


class MethodInfo(Strict):
    description: str
    params: dict[str, object]
    # Both absent in manifests written before they were recorded.
    reference_code: str | None = None
    deviations: list[Deviation] = Field(default_factory=list)


class Manifest(Strict):
    format: Literal["fieldmark-assets/1"] = FORMAT
    run_id: str
    provenance: Provenance
    classes: list[ClassInfo]
    methods: dict[str, MethodInfo]
    protocols: dict[str, Protocol]
    parts: list[str] = Field(default_factory=list)  # part names scored in `localisation`
    images: list[ImageEntry]
    xnn: XnnReport | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        classes = {c.id for c in self.classes}
        seen: set[int] = set()
        for entry in self.images:
            if entry.image_id in seen:
                raise ValueError(f"image {entry.image_id} is listed twice")
            seen.add(entry.image_id)
            if entry.true_class not in classes or entry.predicted_class not in classes:
                raise ValueError(f"image {entry.image_id} names a class that is not in `classes`")
            for e in entry.explanations:
                if e.method not in self.methods:
                    raise ValueError(
                        f"image {entry.image_id} has a {e.method!r} explanation, a method not in `methods`"
                    )
                if isinstance(e, Heatmap):
                    for f in e.faithfulness:
                        if f.protocol not in self.protocols:
                            raise ValueError(f"image {entry.image_id}: unknown protocol {f.protocol!r}")
        return self

    def files(self) -> list[str]:
        """Every file the manifest refers to (relative paths)."""
        out: list[str] = []
        for entry in self.images:
            out.append(entry.image)
            for e in entry.explanations:
                out += e.paths()
        if self.xnn:
            for cc in self.xnn.classes:
                for ci in cc.concepts:
                    out += [f for g in ci.gallery for f in (g.image, g.overlay)]
        return out

    def missing_files(self, root: Path) -> list[str]:
        return [f for f in dict.fromkeys(self.files()) if not (root / f).is_file()]


def load_graph(run: Path, sag: Sag) -> SagGraph:
    return SagGraph.model_validate_json((run / sag.graph).read_text(encoding="utf-8"))


def load(run: Path) -> Manifest:
    """Read and validate `run/manifest.json` (pydantic raises ValidationError naming the field)."""
    return Manifest.model_validate_json((run / MANIFEST).read_text(encoding="utf-8"))
