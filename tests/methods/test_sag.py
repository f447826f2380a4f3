"""SAG search on models whose sufficient regions are known, and the pieces it is built from."""

import itertools

import pytest
import torch

from pipeline.methods.common import ClassProbability, frozen, gaussian_blur
from pipeline.methods.sag import SagParams, Scorer, diverse_subset, minimise, search
from tests.toys import RegionsModel, regions_image

BOTH = ((1, 1), (5, 5))  # grid cells 8 and 40


def run(cells: tuple[tuple[int, int], ...], p: SagParams = SagParams()):  # type: ignore[no-untyped-def]
    image = regions_image(BOTH)  # the picture always has both patterns; the model decides which count
    model = RegionsModel(cells)
    with frozen(model):
        return search(ClassProbability(model, torch.tensor([0])), image, gaussian_blur(image, 25, 25.0), p)


def test_two_disjoint_sufficient_regions_give_two_roots() -> None:
    sag = run(BOTH)
    assert sorted(sag.roots) == [(8,), (40,)]
    assert all(n.confidence > 0.9 for n in sag.nodes if n.root)


def test_one_region_gives_one_root() -> None:
    sag = run(((1, 1),))
    assert sag.roots == [(8,)]


def test_graph_edges_remove_one_patch_and_record_the_drop() -> None:
    sag = run(BOTH, SagParams(threshold=0.5))
    nodes = {n.id: n for n in sag.nodes}
    assert len({n.patches for n in sag.nodes}) == len(sag.nodes)  # identical sets are one node
    for e in sag.edges:
        parent, child = nodes[e.parent], nodes[e.child]
        assert set(parent.patches) - set(child.patches) == {e.removed_patch}
        assert abs(e.drop - (parent.confidence - child.confidence)) < 1e-9
        assert parent.confidence > 0.4  # only confident nodes are expanded
        assert child.depth == parent.depth + 1 or child.id < parent.id  # merged nodes keep their first depth


def test_search_is_deterministic_and_batched() -> None:
    a, b = run(BOTH), run(BOTH)
    assert a.roots == b.roots and [n.confidence for n in a.nodes] == [n.confidence for n in b.nodes]
    assert a.forwards > 5 * a.calls  # many masked images per model call


@pytest.mark.parametrize("window", [1, 3, 100])
def test_minimise_matches_the_one_at_a_time_definition(window: int) -> None:
    """Greedy passes in index order, one removal tried at a time (the original algorithm), on a
    non-additive score where the order of removals matters."""
    gen = torch.Generator().manual_seed(0)
    w = torch.rand(12, generator=gen)
    pair = torch.rand(12, 12, generator=gen) * 0.3

    def value(s: tuple[int, ...]) -> float:
        return float(sum(w[p] for p in s) + sum(pair[a, b] for a in s for b in s if a < b))

    class Scores:
        def __call__(self, sets):  # type: ignore[no-untyped-def]
            return [value(s) for s in sets]

    def one_at_a_time(s: tuple[int, ...], sufficient: float) -> tuple[int, ...]:
        current = list(s)
        while True:
            dropped = False
            i = 0
            while i < len(current):
                trial = current[:i] + current[i + 1 :]
                if value(tuple(trial)) > sufficient:
                    current, dropped = trial, True
                else:
                    i += 1
            if not dropped:
                return tuple(current)

    sets = [tuple(sorted(torch.randperm(12, generator=gen)[: 4 + k % 6].tolist())) for k in range(40)]
    got = minimise(Scores(), sets, 1.6, window)  # type: ignore[arg-type]
    assert got == [one_at_a_time(s, 1.6) for s in sets]
    assert len({len(g) for g in got}) > 1


def test_diverse_subset_is_the_largest_with_small_overlap() -> None:
    roots = [(1, 2), (2, 3), (1, 3), (4, 5), (1, 2, 3)]
    best = diverse_subset(roots, overlap=1)
    assert len(best) == 4 and (1, 2, 3) not in best
    assert all(len(set(a) & set(b)) <= 1 for a, b in itertools.combinations(best, 2))
    assert diverse_subset(roots, overlap=0) == [(1, 2), (4, 5)]


def test_questions_differ_clearly_and_know_whether_the_diagram_shows_them() -> None:
    sag = run(BOTH, SagParams(questions=6))
    in_graph = {n.patches for n in sag.nodes}
    assert sag.questions
    for q in sag.questions:
        assert abs(q.confidence_a - q.confidence_b) >= 0.25
        assert q.a_in_graph == (q.a in in_graph) and q.b_in_graph == (q.b in in_graph)
        assert q.higher == ("a" if q.confidence_a > q.confidence_b else "b")
    assert any(not q.a_in_graph and not q.b_in_graph for q in sag.questions)
    assert {q.higher for q in sag.questions} == {"a", "b"}  # the right answer is not always on one side


def test_scorer_caches_and_counts() -> None:
    image = regions_image(BOTH)
    model = RegionsModel(BOTH)
    with frozen(model):
        scorer = Scorer(ClassProbability(model, torch.tensor([0])), image, torch.zeros_like(image), SagParams())
        first = scorer([(8,), (40,), (8,)])
        again = scorer([(40,)])
    assert scorer.forwards == 2 and scorer.calls == 1
    assert first[1] == again[0] and first[0] == first[2]


@pytest.mark.parametrize(("children", "removed"), [("salient", {40, 30, 20}), ("index", {1, 10, 20})])
def test_children_remove_the_most_salient_or_as_the_authors_the_first_by_index(
    children: str, removed: set[int]
) -> None:
    from pipeline.methods.sag import Sag, _graph

    p = SagParams(children=children)
    image = torch.zeros(1, 3, 112, 112)
    scorer = Scorer(lambda x, idx: torch.ones(len(x)), image, image, p)  # every set stays confident
    order = [40, 30, 20, 10, 1, *(j for j in range(49) if j not in (40, 30, 20, 10, 1))]
    sag = Sag(p_full=1.0, order=order, all_roots=[(1, 10, 20, 30, 40)], roots=[(1, 10, 20, 30, 40)])
    _graph(sag, scorer, p)
    assert {e.removed_patch for e in sag.edges if e.parent == 0} == removed


def test_authors_search_has_no_patience_stop() -> None:
    """With patience 1 the search stops one idle step after its first root; without (the authors')
    it goes on until the beam empties or enough roots are found, so it scores more sets."""
    short = run(BOTH, SagParams(patience=1))
    authors = run(BOTH, SagParams(patience=None))
    assert authors.forwards > short.forwards
    assert set(short.all_roots) <= set(authors.all_roots)
    with pytest.raises(ValueError, match="children"):
        run(BOTH, SagParams(children="random"))
