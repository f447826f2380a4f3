"""Nearest examples: the k nearest rows, with rows a query may not be shown left out."""

import torch

from pipeline.methods.examples import nearest


def test_nearest_keeps_only_allowed_rows_and_marks_missing_places() -> None:
    bank = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    queries = torch.tensor([[0.1], [9.0]])
    idx, dist = nearest(queries, bank, k=2)
    assert idx.tolist() == [[0, 1], [3, 2]]
    # the first query may only be shown rows 2 and 3 (say, the predicted class's), the second only row 0
    allowed = torch.tensor([[False, False, True, True], [True, False, False, False]])
    idx, dist = nearest(queries, bank, k=2, allowed=allowed)
    assert idx[0].tolist() == [2, 3] and torch.allclose(dist[0], torch.tensor([1.9, 9.9]))
    assert idx[1, 0] == 0 and dist[1, 0] == 9.0 and torch.isinf(dist[1, 1])  # fewer allowed than k
    idx, _ = nearest(queries, bank, k=1, exclude=torch.tensor([0, -1]))
    assert idx.tolist() == [[1], [3]]
