"""The asset manifest: the contract between the pipeline (which writes it) and the study server.

Pure pydantic, no torch: the one module the pipeline imports from `app`. Paths are relative to
the run folder and use forward slashes. A manifest says, per image, what the model predicted
and which explanation files exist, with the parameters, faithfulness scores and provenance
needed to trust them.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Literal

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

    name: str  # "igos" or "rise"
    unit: Literal["cell", "pixel"]
    resolution: int  # cells or pixels per side that are ranked
    deletion_fill: str
    insertion_start: str
    score: str
    steps: int
    auc: str


class Faithfulness(Strict):
    protocol: str  # a key of Manifest.protocols
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


Explanation = Heatmap | Examples


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


class MethodInfo(Strict):
    description: str
    params: dict[str, object]


class Manifest(Strict):
    format: Literal["fieldmark-assets/1"] = FORMAT
    run_id: str
    provenance: Provenance
    classes: list[ClassInfo]
    methods: dict[str, MethodInfo]
    protocols: dict[str, Protocol]
    parts: list[str] = Field(default_factory=list)  # part names scored in `localisation`
    images: list[ImageEntry]

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
                if isinstance(e, Heatmap):
                    out += [e.raw, e.overlay, e.curves]
                else:
                    out += [n.image for n in e.neighbours]
        return out

    def missing_files(self, root: Path) -> list[str]:
        return [f for f in dict.fromkeys(self.files()) if not (root / f).is_file()]


def load(run: Path) -> Manifest:
    """Read and validate `run/manifest.json` (pydantic raises ValidationError naming the field)."""
    return Manifest.model_validate_json((run / MANIFEST).read_text(encoding="utf-8"))
