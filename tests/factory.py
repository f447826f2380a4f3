"""A small, valid asset run for the study server's tests, written through the manifest schema.

No torch, no training: a few seconds (the one piece of the pipeline it uses is the
participants' drawing: SAG diagrams and the concepts' same-spot test, numpy and Pillow only).
What the tests rely on holds by construction rather than by luck of a trained model:

- the eight gull species the shipped studies name, each with a field-mark guide;
- per species, test images the "model" gets right and test images it gets wrong (the wrong
  ones name the next species in the list), with probabilities that agree with the prediction
  and confidences spread from 0.40 to 0.95; training images for neighbours and galleries;
  image ids are numbered species by species, as in CUB (so an id on a page would give the
  species away);
- for every test image, every explanation the shipped studies ask for, explaining the
  predicted class: an iGOS++ heatmap, an XNN concept card, a SAG graph (its diagram drawn by
  the pipeline's renderer, as a participant's page carries it) with two counterfactual
  questions (the first printed in the diagram, the second not; the stronger version first, as
  the pipeline writes them: the server draws the sides), and the four nearest training images,
  three of the predicted species and one of the true one;
- XNN concept galleries for every species.

Pictures are real PNG files drawn with Pillow (a gull in its species' colours), arrays real
`.npy` files. The manifest is built from the models in `app/assets/manifest.py` and validated
by reading it back, so a field added to the schema with a default does not break it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from app.assets import manifest as M
from pipeline.render.concepts import same_spots
from pipeline.render.refresh import sag_diagrams

RUN = "demo"  # the run the shipped studies name
SIZE = 112  # pixels per side of a picture
GRID = 4  # SAG patches per side


@dataclass(frozen=True)
class Gull:
    cub_id: int
    common: str
    folder: str  # CUB folder name without the number
    mantle: int  # grey of the back, 0-255
    bill: tuple[int, int, int]
    legs: tuple[int, int, int]


SPECIES = (
    Gull(59, "California Gull", "California_Gull", 150, (240, 200, 50), (230, 200, 60)),
    Gull(60, "Glaucous-winged Gull", "Glaucous_winged_Gull", 185, (235, 200, 60), (230, 160, 160)),
    Gull(61, "Heermann's Gull", "Heermann_Gull", 80, (200, 40, 40), (30, 30, 30)),
    Gull(62, "Herring Gull", "Herring_Gull", 175, (240, 205, 50), (235, 160, 160)),
    Gull(63, "Ivory Gull", "Ivory_Gull", 250, (120, 130, 60), (30, 30, 30)),
    Gull(64, "Ring-billed Gull", "Ring_billed_Gull", 180, (240, 215, 70), (240, 215, 70)),
    Gull(65, "Slaty-backed Gull", "Slaty_backed_Gull", 95, (240, 205, 50), (235, 150, 160)),
    Gull(66, "Western Gull", "Western_Gull", 115, (245, 200, 40), (235, 160, 160)),
)
TEST_RIGHT, TEST_WRONG, TRAIN = 4, 2, 3  # images per species
PARTS = ("bill", "head", "mantle", "wingtips", "legs")
K = 3  # XNN concepts per species


def guide_name(g: Gull) -> str:
    return f"guides/guide_{g.cub_id:03d}_{g.folder}.png"


def _gull(g: Gull, rng: random.Random, size: int = SIZE) -> Image.Image:
    """A gull in its species' colours, posed a little differently each time."""
    sky = tuple(rng.randint(150, 215) for _ in range(3))
    im = Image.new("RGB", (size, size), sky)  # type: ignore[arg-type]
    d = ImageDraw.Draw(im)
    s = size / 112
    dx, dy = rng.uniform(-8, 8) * s, rng.uniform(-6, 6) * s
    body = (22 * s + dx, 48 * s + dy, 86 * s + dx, 82 * s + dy)
    d.ellipse(body, fill=(245, 245, 245))
    d.chord((26 * s + dx, 44 * s + dy, 90 * s + dx, 74 * s + dy), 180, 360, fill=(g.mantle,) * 3)
    d.ellipse((70 * s + dx, 30 * s + dy, 94 * s + dx, 54 * s + dy), fill=(245, 245, 245))
    d.polygon([(92 * s + dx, 40 * s + dy), (106 * s + dx, 43 * s + dy), (92 * s + dx, 46 * s + dy)], fill=g.bill)
    for x in (46, 58):
        d.line([(x * s + dx, 80 * s + dy), (x * s + dx, 98 * s + dy)], fill=g.legs, width=max(1, round(3 * s)))
    return im


def _png(im: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format="PNG")


def _overlay(base: Image.Image, saliency: np.ndarray) -> Image.Image:
    """The saliency (any resolution, 0-1) as a warm overlay on the picture."""
    up = Image.fromarray((saliency * 255).astype(np.uint8)).resize(base.size, Image.Resampling.BILINEAR)
    warm = Image.new("RGB", base.size, (255, 120, 0))
    return Image.composite(warm, base, up.point(lambda v: int(v * 0.6)))


def _masked(base: Image.Image, patches: list[int]) -> Image.Image:
    """Only these patches of the picture left visible; the rest grey."""
    out = Image.new("RGB", base.size, (128, 128, 128))
    cell = base.size[0] // GRID
    for p in patches:
        box = ((p % GRID) * cell, (p // GRID) * cell, (p % GRID + 1) * cell, (p // GRID + 1) * cell)
        out.paste(base.crop(box), box[:2])
    return out


class Writer:
    """Writes one run folder: pictures, explanation files and, last, the manifest."""

    def __init__(self, run: Path) -> None:
        self.run = run
        self.rng = random.Random(14)
        self.pictures: dict[int, Image.Image] = {}

    def path(self, rel: str) -> Path:
        return self.run / rel

    def picture(self, image_id: int, g: Gull) -> str:
        rel = f"images/{image_id}.png"
        self.pictures[image_id] = _gull(g, self.rng)
        _png(self.pictures[image_id], self.path(rel))
        return rel

    def array(self, rel: str, a: np.ndarray) -> str:
        self.path(rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(self.path(rel), a.astype(np.float32))
        return rel

    def heatmap(self, image_id: int, target: int) -> M.Heatmap:
        stem = f"explanations/igospp/{image_id}-predicted"
        sal = np.random.default_rng(image_id).random((14, 14))
        _png(_overlay(self.pictures[image_id], sal), self.path(f"{stem}.png"))
        curve = {"igos": {"deletion": [1.0, 0.5, 0.2], "insertion": [0.1, 0.6, 0.9]}}
        self.path(f"{stem}.json").write_text(json.dumps(curve))
        return M.Heatmap(
            method="igospp",
            target="predicted",
            target_class=target,
            raw=self.array(f"{stem}.npy", sal),
            overlay=f"{stem}.png",
            curves=f"{stem}.json",
            faithfulness=[M.Faithfulness(protocol="igos", deletion_auc=0.3, insertion_auc=0.6)],
            localisation={p: M.PartScore(energy=round(1 / len(PARTS), 3), hit=p == "bill") for p in PARTS},
            seconds=0.01,
        )

    def concepts(self, image_id: int, target: int) -> M.Concepts:
        """Concepts 1 and 3; on even image ids concept 3 lights the same spot as concept 1."""
        stem = f"explanations/xnn/{image_id}-predicted"
        shares = ((1, 0.6), (3, 0.3))
        raws: list[np.ndarray] = []
        for concept, _ in shares:
            sal = np.random.default_rng([image_id, concept]).random((7, 7))
            raws.append(raws[0] * 0.9 + 0.05 if raws and image_id % 2 == 0 else sal)
        same = same_spots(raws)
        maps = []
        for k, ((concept, contribution), sal) in enumerate(zip(shares, raws, strict=True)):
            _png(_overlay(self.pictures[image_id], sal), self.path(f"{stem}/concept-{concept}.png"))
            maps.append(
                M.ConceptMap(
                    concept=concept,
                    contribution=contribution,
                    activation=contribution * 2,
                    raw=self.array(f"{stem}/concept-{concept}.npy", sal),
                    overlay=f"{stem}/concept-{concept}.png",
                    same_spot_as=shares[same[k]][0] if same[k] is not None else None,
                )
            )
        card = Image.new("RGB", (320, 120), (255, 255, 255))
        for k, m in enumerate(maps):
            card.paste(Image.open(self.path(m.overlay)).resize((96, 96)), (12 + 108 * k, 12))
        _png(card, self.path(f"{stem}/card.png"))
        return M.Concepts(
            target="predicted",
            target_class=target,
            logit=2.0,
            rebuilt=1.9,
            contributions=[0.6, 0.0, 0.3],
            significant=maps,
            card=f"{stem}/card.png",
            summary="The model saw mostly concept 1, and some of concept 3.",
            seconds=0.01,
        )

    def sag(self, image_id: int, target: int, p_full: float, higher: str) -> M.Sag:
        """A root of four patches, two children, and two questions: the first is printed in the
        diagram, the second (the one a counterfactual block asks) is not."""
        stem = f"explanations/sag/{image_id}-predicted"
        base = self.pictures[image_id]
        shapes = [([5, 6, 9, 10], 0.96, True, 0), ([5, 6, 9], 0.71, False, 1), ([6, 9, 10], 0.52, False, 1)]
        nodes = []
        for k, (patches, conf, root, depth) in enumerate(shapes):
            rel = f"{stem}/node-{k}.png"
            _png(_masked(base, patches), self.path(rel))
            nodes.append(M.SagNode(id=k, patches=patches, confidence=conf, root=root, depth=depth, thumbnail=rel))
        edges = [
            M.SagEdge(parent=0, child=1, removed_patch=10, drop=0.25),
            M.SagEdge(parent=0, child=2, removed_patch=5, drop=0.44),
        ]

        def version(name: str, patches: list[int], conf: float, in_graph: bool) -> M.QuestionVersion:
            rel = f"{stem}/{name}.png"
            _png(_masked(base, patches), self.path(rel))
            return M.QuestionVersion(patches=patches, confidence=conf, image=rel, in_graph=in_graph)

        printed = M.SagQuestion(
            id=f"{image_id}-q0",
            a=version("q0-a", [5, 6, 9], 0.71, True),
            b=version("q0-b", [6, 9, 10], 0.52, True),
            higher="a",
        )
        strong, weak = version("q1-x", [1, 2, 5, 6], 0.83, False), version("q1-y", [9, 13, 14], 0.21, False)
        hidden = M.SagQuestion(
            id=f"{image_id}-q1",
            a=strong if higher == "a" else weak,
            b=weak if higher == "a" else strong,
            higher=higher,  # type: ignore[arg-type]
        )
        graph = M.SagGraph(
            image_id=image_id,
            target_class=target,
            grid=GRID,
            baseline="blur",
            threshold=0.9,
            node_threshold=0.4,
            p_full=p_full,
            order=list(range(GRID * GRID)),
            all_roots=[[5, 6, 9, 10]],
            roots=[[5, 6, 9, 10]],
            nodes=nodes,
            edges=edges,
            questions=[printed, hidden],
            forwards=40,
            calls=4,
            seconds=0.01,
            seed=0,
        )
        self.path(f"{stem}.json").write_text(graph.model_dump_json(indent=1))
        diagrams = sag_diagrams(self.run, stem, graph, np.asarray(base.convert("RGB")))  # the pipeline's own drawing
        _png(Image.new("RGB", (240, 200), (255, 255, 255)), self.path(f"{stem}.png"))
        return M.Sag(
            target="predicted",
            target_class=target,
            graph=f"{stem}.json",
            **diagrams,
            diagram_png=f"{stem}.png",
            roots=1,
            files=graph.files(),
            seconds=0.01,
        )


def build_run(assets: Path, name: str = RUN) -> Path:
    """Write the run `assets/name` and return `assets` (the folder a study's `assets:` is read under)."""
    run = assets / name
    w = Writer(run)
    classes = [M.ClassInfo(id=g.cub_id, name=g.common) for g in SPECIES]
    entries: list[M.ImageEntry] = []
    train: dict[int, list[int]] = {}
    image_id = 0
    for g in SPECIES:
        for _ in range(TRAIN):
            image_id += 1
            entries.append(_entry(image_id, g, g, w.picture(image_id, g), "train", 0.9, []))
            train.setdefault(g.cub_id, []).append(image_id)
    k = 0
    for n, g in enumerate(SPECIES):
        wrong_as = SPECIES[(n + 1) % len(SPECIES)]
        for right in [True] * TEST_RIGHT + [False] * TEST_WRONG:
            image_id += 1
            predicted = g if right else wrong_as
            confidence = round(0.40 + 0.55 * (k % 12) / 11, 3)  # 0.40 to 0.95
            rel = w.picture(image_id, g)
            # the training images of the predicted species, then one of the true species (which the
            # server must not show: the examples explain the prediction)
            near = [(t, predicted.cub_id) for t in train[predicted.cub_id]] + [(train[g.cub_id][0], g.cub_id)]
            neighbours = [
                M.Neighbour(image_id=t, true_class=c, distance=0.2 + 0.1 * j, image=f"images/{t}.png")
                for j, (t, c) in enumerate(near)
            ]
            explanations: list[M.Explanation] = [
                w.heatmap(image_id, predicted.cub_id),
                w.sag(image_id, predicted.cub_id, confidence, "a"),  # the pipeline writes the stronger first
                w.concepts(image_id, predicted.cub_id),
                M.Examples(neighbours=neighbours, seconds=0.01),
            ]
            entries.append(_entry(image_id, g, predicted, rel, "test", confidence, explanations))
            k += 1
    for g in SPECIES:
        _png(_gull(g, random.Random(g.cub_id), size=160), run / guide_name(g))
    manifest = M.Manifest(
        run_id=name,
        provenance=M.Provenance(
            model_path="factory",
            model_hash="0" * 64,
            model_arch="factory",
            data_path="factory",
            data_hash="0" * 64,
            code_version="test",
            libraries={},
            seed=0,
            device="cpu",
            created="2026-01-01T00:00:00+00:00",
        ),
        classes=classes,
        methods={
            "igospp": M.MethodInfo(description="iGOS++ (written by the test factory)", params={}),
            "sag": M.MethodInfo(description="structured attention graphs (test factory)", params={}),
            "xnn": M.MethodInfo(description="XNN concepts (test factory)", params={}),
            "examples": M.MethodInfo(description="nearest training images (test factory)", params={}),
        },
        protocols={
            "igos": M.Protocol(
                name="igos",
                unit="cell",
                resolution=14,
                deletion_fill="blur",
                insertion_start="blur",
                score="softmax",
                steps=3,
                auc="riemann",
            )
        },
        parts=list(PARTS),
        images=entries,
        xnn=_xnn(w, train),
    )
    (run / M.MANIFEST).write_text(manifest.model_dump_json(indent=1), encoding="utf-8")
    back = M.load(run)  # the schema reads it back
    missing = back.missing_files(run)
    assert not missing, f"the factory forgot files: {missing[:5]}"
    return assets


def _entry(
    image_id: int,
    g: Gull,
    predicted: Gull,
    rel: str,
    split: str,
    confidence: float,
    explanations: list[M.Explanation],
) -> M.ImageEntry:
    others = [s.cub_id for s in SPECIES if s.cub_id != predicted.cub_id]
    rest = round((1 - confidence) / len(others), 6)
    return M.ImageEntry(
        image_id=image_id,
        name=f"{g.cub_id:03d}.{g.folder}/{g.folder}_{image_id:04d}.jpg",
        split=split,  # type: ignore[arg-type]
        image=rel,
        true_class=g.cub_id,
        predicted_class=predicted.cub_id,
        probabilities={predicted.cub_id: confidence, **dict.fromkeys(others, rest)},
        correct=g.cub_id == predicted.cub_id,
        explanations=explanations,
    )


def _xnn(w: Writer, train: dict[int, list[int]]) -> M.XnnReport:
    classes = []
    for g in SPECIES:
        concepts = []
        for concept in range(1, K + 1):
            gallery = []
            for t in train[g.cub_id]:
                rel = f"xnn/gallery/{g.cub_id}-{concept}-{t}.png"
                _png(_overlay(w.pictures[t], np.random.default_rng([t, concept]).random((7, 7))), w.path(rel))
                gallery.append(M.GalleryItem(image_id=t, image=f"images/{t}.png", overlay=rel, activation=0.5))
            concepts.append(
                M.ConceptInfo(
                    concept=concept,
                    weight=1.0 if concept != 2 else -0.5,
                    mean_contribution=0.4 if concept != 2 else -0.1,  # concept 2 votes against: no gallery shown
                    suggested_name=PARTS[concept],
                    part_shares={p: round(1 / len(PARTS), 3) for p in PARTS},
                    gallery=gallery,
                )
            )
        classes.append(
            M.ClassConcepts(class_id=g.cub_id, rmse=0.1, logit_range=4.0, accepted=True, rounds=1, concepts=concepts)
        )
    return M.XnnReport(
        k=K,
        layer="features",
        feature_dim=16,
        accuracy_xnn=0.8,
        accuracy_classifier=0.8,
        agreement=0.95,
        heatmap_method="igos",
        params={},
        heatmap_params={},
        classes=classes,
    )
