import numpy as np

from app.assets.manifest import SagGraph
from pipeline.render.sag import cell_box, confidence_colour, layout, patch_weights, percent, thumbnail


def graph() -> SagGraph:
    node = {"thumbnail": "n.png", "depth": 0}
    return SagGraph.model_validate(
        {
            "image_id": 1,
            "target_class": 62,
            "grid": 7,
            "baseline": "blur",
            "threshold": 0.9,
            "node_threshold": 0.4,
            "p_full": 0.8,
            "order": list(range(49)),
            "all_roots": [[8], [40, 41]],
            "roots": [[8], [40, 41]],
            "nodes": [
                {**node, "id": 0, "patches": [8], "confidence": 1.05, "root": True},
                {**node, "id": 1, "patches": [40, 41], "confidence": 0.95, "root": True},
                {**node, "id": 2, "patches": [], "confidence": 0.02, "root": False, "depth": 1},
                {**node, "id": 3, "patches": [41], "confidence": 0.3, "root": False, "depth": 1},
            ],
            "edges": [
                {"parent": 0, "child": 2, "removed_patch": 8, "drop": 1.03},
                {"parent": 1, "child": 3, "removed_patch": 40, "drop": 0.65},
            ],
            "questions": [],
            "forwards": 10,
            "calls": 2,
            "seconds": 0.1,
            "seed": 0,
        }
    )


def test_patch_weights_are_tents_that_sum_to_one() -> None:
    total = sum(patch_weights([p], 7, 64) for p in range(49))
    assert np.allclose(total, 1.0, atol=1e-5)
    w = patch_weights([24], 7, 64)  # the centre cell
    assert w.max() > 0.9 and w[0, 0] == 0  # the tent peaks between pixels at 64 px


def test_thumbnail_dims_everything_but_the_patches() -> None:
    img = np.full((70, 70, 3), 200, np.uint8)
    t = np.asarray(thumbnail(img, [0], 7, 70)).astype(int)
    assert t[0, 0, 0] > 190 and t[-1, -1, 0] < 60


def test_layout_puts_each_root_in_its_own_column() -> None:
    lay = layout(graph())
    assert len(lay.columns) == 2
    assert lay.placed[0].x < lay.placed[1].x  # root columns left to right
    assert lay.placed[2].y > lay.placed[0].y  # children below their root
    assert lay.hidden == 0


def test_confidence_display() -> None:
    assert percent(0.944) == "94%" and percent(1.05) == "100%*"
    green, grey = confidence_colour(0.95), confidence_colour(0.0)
    assert green[1] > green[0] and grey == (138, 143, 152)
    assert cell_box(0, 7, 97) == (0.0, 0.0, 8.0, 8.0)  # a corner patch owns half a cell each way
