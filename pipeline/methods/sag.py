"""Structured attention graphs (Shitole et al., NeurIPS 2021), written from the reference notes (§4).

A SAG shows several *minimal sufficient explanations* of one prediction — small sets of image
patches that alone keep the model confident — and how confidence falls as patches are taken
away. Pieces:

- `search`: a cheap I-GOS map (7×7, two iterations) orders the 49 patches; a beam search grows
  patch sets from the most salient patches until they are sufficient (probability above 0.9 ×
  the full image's); each sufficient set is made minimal by greedy removal in index order; the
  largest subset of roots overlapping by at most one patch is kept and its first three shown.
- `graph`: from each shown root, children remove one patch (the three most salient, or as the
  authors the first three by patch index) while a node keeps more than 40 % of the full
  confidence; identical patch sets are one node.
- `questions`: pairs of patch sets whose confidences differ clearly, for counterfactual
  questions, each marked with whether it appears as a node of the graph.

A patch set P is shown as Φ(I, B, up(m_P)): a 7×7 binary grid upsampled bilinearly with aligned
corners, so a patch is a soft tent and the 49 tents sum to one. Every set scored in one search
step goes through the model in one batch (chunks of `max_batch`); everything is deterministic.

Deliberate differences from the authors' code (viv92/structured-attention-graphs), each with
its reason (pipeline/methods/deviations.py lists them for the manifest; docs/benchmarks.md measures the two
that are switchable against the authors' choice):

1. The beam holds exactly `beam` states (the code kept b + 1): the paper's b.
2. Every sufficient successor scored in a step is kept as a root (the code stopped looking once
   the beam was full): they were scored anyway, and dropping them lost roots.
3. Identical nodes are merged into a DAG (the code drew a forest): the paper describes a DAG.
4. `patience`: the search also stops after 4 steps in a row without a new root (the code has no
   such stop; `patience=None` follows it): bounds the cost on a CPU when roots stop coming.
5. `children="salient"`: a node's children remove its most salient patches first (the code
   removes the first three by patch index; `children="index"` follows it): the edges then show
   the patches that matter, not the ones that happen to sit top-left.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from pipeline.methods.common import Score, upsample
from pipeline.methods.igos import IgosParams, igos

Patches = tuple[int, ...]


@dataclass(frozen=True)
class SagParams:
    grid: int = 7
    baseline: str = "blur"  # "blur" (51×51, σ 50) or "black" as in the original code
    threshold: float = 0.9  # sufficient: p(P) > threshold × p(full image)
    beam: int = 3
    candidates: int = 15  # q: successors per beam state, most salient patches first
    max_roots: int = 10  # stop once more than this many roots are found
    patience: int | None = 4  # ... or after this many steps in a row without a new root (ours; None: authors')
    overlap: int = 1  # diverse roots share at most this many patches
    shown_roots: int = 3
    node_threshold: float = 0.40  # expand a node while it keeps more than this share of confidence
    max_children: int = 3
    children: str = "salient"  # remove the most salient patches first (ours) or "index": first by index (authors')
    minimise_window: int = 4  # removals tried per root per batched call while minimising
    order_iterations: int = 2  # the I-GOS map that orders the patches
    order_steps: int = 20
    questions: int = 6  # counterfactual questions per image
    clear_gap: float = 0.25  # a question's two confidences differ by at least this much
    seed: int = 0
    max_batch: int = 256

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


CHILDREN = ("salient", "index")
# SagParams(**AUTHORS) follows the authors' code on both switchable points.
AUTHORS: dict[str, Any] = {"patience": None, "children": "index"}


@dataclass
class Node:
    id: int
    patches: Patches
    confidence: float  # p(P) / p(full image), as measured (can exceed 1)
    root: bool
    depth: int


@dataclass
class Edge:
    parent: int
    child: int
    removed_patch: int
    drop: float  # parent confidence − child confidence


@dataclass
class Question:
    a: Patches
    b: Patches
    confidence_a: float
    confidence_b: float
    a_in_graph: bool
    b_in_graph: bool

    @property
    def higher(self) -> str:
        return "a" if self.confidence_a > self.confidence_b else "b"


@dataclass
class Sag:
    p_full: float
    order: list[int]  # patches, most salient first
    all_roots: list[Patches]  # every minimal sufficient set found, in discovery order
    roots: list[Patches]  # the diverse ones shown
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    forwards: int = 0  # masked images scored
    calls: int = 0  # batched model calls


class Scorer:
    """Scores patch sets of one image in batches and counts the work."""

    def __init__(self, score: Score, image: torch.Tensor, baseline: torch.Tensor, p: SagParams) -> None:
        self.score, self.image, self.baseline, self.p = score, image, baseline, p
        self.size = (image.shape[-2], image.shape[-1])
        self.cache: dict[Patches, float] = {}
        self.forwards = 0
        self.calls = 0

    def masks(self, sets: Sequence[Patches]) -> torch.Tensor:
        g = self.p.grid
        grid = torch.zeros((len(sets), g * g), device=self.image.device)
        for i, s in enumerate(sets):
            if s:
                grid[i, list(s)] = 1.0
        return upsample(grid.view(-1, 1, g, g), self.size)

    def composite(self, sets: Sequence[Patches]) -> torch.Tensor:
        m = self.masks(sets)
        return self.image * m + self.baseline * (1 - m)

    @torch.no_grad()
    def __call__(self, sets: Sequence[Patches]) -> list[float]:
        """Probabilities of the explained class for each set; unseen sets go in one batch."""
        todo = [s for s in dict.fromkeys(sets) if s not in self.cache]
        for start in range(0, len(todo), self.p.max_batch):
            chunk = todo[start : start + self.p.max_batch]
            x = self.composite(chunk)
            probs = self.score(x, torch.zeros(len(chunk), dtype=torch.long, device=x.device))
            self.cache.update(zip(chunk, probs.tolist(), strict=True))
            self.forwards += len(chunk)
            self.calls += 1
        return [self.cache[s] for s in sets]


def reference_order(score: Score, image: torch.Tensor, baseline: torch.Tensor, p: SagParams) -> list[int]:
    """Patches from most to least salient by a 7×7, two-iteration I-GOS mask (low mask = salient)."""
    ip = IgosParams(size=p.grid, iterations=p.order_iterations, steps=p.order_steps, seed=p.seed, max_batch=p.max_batch)
    mask = igos(score, image, baseline, ip)
    return torch.sort(mask.flatten(), stable=True).indices.tolist()


def minimise(scorer: Scorer, sets: list[Patches], sufficient: float, window: int = 4) -> list[Patches]:
    """Greedy 1-minimality of each set: passes in index order drop a patch whenever the rest stays
    sufficient; a pass that drops nothing ends it.

    All sets advance in lockstep: each round scores, for every set, the next `window` removals in
    one batch and takes the first that stays sufficient — the same result as trying them one at a
    time. A wider window means fewer model calls but more removals scored after the first hit
    (wasted); scoring every remaining removal makes a set of s patches cost O(s²) forwards, which
    on a CPU turned one image of the demo into minutes.
    """
    current = [tuple(sorted(s)) for s in sets]
    pos = [0] * len(sets)
    dropped = [False] * len(sets)
    active = list(range(len(sets)))
    while active:
        trials = {
            i: [current[i][:k] + current[i][k + 1 :] for k in range(pos[i], min(pos[i] + window, len(current[i])))]
            for i in active
        }
        flat = [t for i in active for t in trials[i]]
        ok = iter(s > sufficient for s in scorer(flat))
        still = []
        for i in active:
            hits = [next(ok) for _ in trials[i]]
            if True in hits:
                k = hits.index(True)
                current[i] = trials[i][k]
                pos[i] += k  # the patch after the removed one now sits at this index
                dropped[i] = True
                still.append(i)
            elif pos[i] + len(hits) < len(current[i]):  # the pass goes on
                pos[i] += len(hits)
                still.append(i)
            elif dropped[i]:  # the pass removed something: start another
                pos[i], dropped[i] = 0, False
                still.append(i)
        active = still
    return current


def diverse_subset(roots: list[Patches], overlap: int) -> list[Patches]:
    """The largest subset whose members pairwise share at most `overlap` patches (exhaustive DFS;
    the first found wins ties, so discovery order is kept)."""
    best: list[int] = []

    def dfs(start: int, chosen: list[int]) -> None:
        nonlocal best
        if len(chosen) > len(best):
            best = list(chosen)
        for i in range(start, len(roots)):
            if all(len(set(roots[i]) & set(roots[j])) <= overlap for j in chosen):
                chosen.append(i)
                dfs(i + 1, chosen)
                chosen.pop()

    dfs(0, [])
    return [roots[i] for i in best]


def search(score: Score, image: torch.Tensor, baseline: torch.Tensor, p: SagParams = SagParams()) -> Sag:
    """Beam search for minimal sufficient patch sets of one image (1×3×H×W)."""
    if p.children not in CHILDREN:
        raise ValueError(f"children must be one of {CHILDREN}, not {p.children!r}")
    scorer = Scorer(score, image, baseline, p)
    full = tuple(range(p.grid * p.grid))
    p_full = scorer([full])[0]
    sufficient = p.threshold * p_full
    order = reference_order(score, image, baseline, p)
    roots: list[Patches] = []
    beam: list[Patches] = [()]
    idle = 0
    for _ in range(p.grid * p.grid):
        successors: list[Patches] = []
        for state in beam:
            cands = [j for j in order if j not in state][: p.candidates]
            successors += [tuple(sorted((*state, j))) for j in cands]
        successors = list(dict.fromkeys(successors))
        if not successors:
            break
        scores = scorer(successors)
        ranked = sorted(zip(successors, scores, strict=True), key=lambda t: -t[1])
        next_beam: list[Patches] = []
        found = len(roots)
        winners = [s for s, prob in ranked if prob > sufficient]
        for root in minimise(scorer, winners, sufficient, p.minimise_window):
            if root not in roots:
                roots.append(root)
        for s, prob in ranked:
            if prob <= sufficient and len(next_beam) < p.beam:
                next_beam.append(s)
        beam = next_beam
        idle = 0 if len(roots) > found else idle + 1
        if len(roots) > p.max_roots or not beam or (roots and p.patience is not None and idle >= p.patience):
            break
    shown = diverse_subset(roots, p.overlap)[: p.shown_roots]
    sag = Sag(p_full=p_full, order=order, all_roots=roots, roots=shown)
    _graph(sag, scorer, p)
    sag.questions = questions(sag, scorer, p)
    sag.forwards, sag.calls = scorer.forwards, scorer.calls
    return sag


def _graph(sag: Sag, scorer: Scorer, p: SagParams) -> None:
    """Nodes and edges, level by level; each level's new sets are scored in one batch."""
    rank = {j: r for r, j in enumerate(sag.order)} if p.children == "salient" else {j: j for j in sag.order}
    ids: dict[Patches, int] = {}

    def add(patches: Patches, root: bool, depth: int) -> int:
        if patches not in ids:
            ids[patches] = len(sag.nodes)
            conf = scorer([patches])[0] / sag.p_full
            sag.nodes.append(Node(ids[patches], patches, conf, root, depth))
        return ids[patches]

    scorer(sag.roots)
    frontier = [add(r, True, 0) for r in sag.roots]
    while frontier:
        planned = []
        for nid in frontier:
            node = sag.nodes[nid]
            if node.confidence <= p.node_threshold or not node.patches:
                continue
            for j in sorted(node.patches, key=rank.__getitem__)[: p.max_children]:
                planned.append((nid, j, tuple(x for x in node.patches if x != j)))
        scorer([c for *_, c in planned])
        frontier = []
        for nid, j, child in planned:
            new = child not in ids
            cid = add(child, False, sag.nodes[nid].depth + 1)
            sag.edges.append(Edge(nid, cid, j, sag.nodes[nid].confidence - sag.nodes[cid].confidence))
            if new:
                frontier.append(cid)


def questions(sag: Sag, scorer: Scorer, p: SagParams) -> list[Question]:
    """Pairs of patch sets with clearly different confidences, half of them not in the graph.

    Candidates: the graph's nodes, and variants of each root a participant has not seen — a
    patch swapped for the next salient one, a patch added, and seeded random sets of the same
    size from the most salient patches. Questions whose answer cannot be read off the diagram
    (neither set is a node) come first, so a study can choose them.
    """
    rng = np.random.default_rng([p.seed, len(sag.order), len(sag.all_roots)])
    in_graph = {n.patches for n in sag.nodes}
    top = sag.order[: p.candidates]
    candidates: list[Patches] = [n.patches for n in sag.nodes if n.patches]
    for root in sag.roots:
        outside = [j for j in top if j not in root]
        for k in range(len(root)):
            if outside:
                candidates.append(tuple(sorted((*root[:k], *root[k + 1 :], outside[k % len(outside)]))))
        if outside:
            candidates.append(tuple(sorted((*root, outside[0]))))
        for _ in range(3):
            candidates.append(tuple(sorted(rng.choice(top, size=min(len(root), len(top)), replace=False).tolist())))
    candidates = list(dict.fromkeys(candidates))
    conf = dict(zip(candidates, (s / sag.p_full for s in scorer(candidates)), strict=True))
    pairs = [(a, b) for a, b in itertools.combinations(candidates, 2) if abs(conf[a] - conf[b]) >= p.clear_gap]
    hidden = [q for q in pairs if q[0] not in in_graph and q[1] not in in_graph]
    shown = [q for q in pairs if q[0] in in_graph or q[1] in in_graph]
    chosen: list[tuple[Patches, Patches]] = []
    used: set[Patches] = set()
    for pool, quota in ((hidden, (p.questions + 1) // 2), (shown, p.questions)):
        for a, b in pool:
            if len(chosen) >= quota:
                break
            if a in used or b in used:  # every set at most once: varied questions
                continue
            high, low = (a, b) if conf[a] > conf[b] else (b, a)
            chosen.append((high, low) if len(chosen) % 2 == 0 else (low, high))  # the answer alternates sides
            used.update((a, b))
    return [Question(a, b, conf[a], conf[b], a in in_graph, b in in_graph) for a, b in chosen]
