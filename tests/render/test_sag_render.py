import itertools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.assets.manifest import SagGraph
from pipeline.render.concepts import hot_spot, same_spots
from pipeline.render.refresh import refresh
from pipeline.render.sag import (
    cell_box,
    confidence_colour,
    diagram_svg,
    layout,
    outline,
    patch_weights,
    percent,
    thumbnail,
)


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


def test_outline_is_the_border_of_the_union() -> None:
    assert len(outline([0], 7, 70)) == 4
    two = outline([8, 9], 7, 70)  # side by side: the shared side is not drawn
    assert len(two) == 6 and (cell_box(9, 7, 70)[0],) * 2 not in [(x0, x1) for x0, _, x1, _ in two]


def _text_boxes(svg: str) -> list[tuple[float, float, float, float]]:
    """Each label's box, from its position, size and length (a generous 0.62 em per character)."""
    boxes = []
    for x, y, size, text in re.findall(r'<text x="([\d.]+)" y="([\d.]+)" font-size="(\d+)"[^>]*>([^<]*)</text>', svg):
        x0, y0, s = float(x), float(y), float(size)
        boxes.append((x0, y0 - s, x0 + 0.62 * s * len(text), y0 + 0.25 * s))
    return boxes


@pytest.mark.parametrize("narrow", [False, True])
def test_participants_diagram(narrow: bool) -> None:
    g = graph()
    img = np.full((70, 70, 3), 160, np.uint8)
    svg = diagram_svg(g, img, narrow=narrow)
    root = ET.fromstring(svg)
    width = float(root.get("width", 0))
    assert width == (240 if narrow else 2 * 220 + 14)  # two roots: as wide as their columns
    ns = "{http://www.w3.org/2000/svg}"
    assert len(list(root.iter(f"{ns}image"))) == 2 + 2  # two roots, one child each
    assert not re.search(r"\bid=|tabindex|data-", svg)
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert not [t for t in [*texts, root.findtext(f"{ns}title")] if "62" in (t or "")]  # no class or image
    assert "100%+" in texts and "95%" in texts and "2%" in texts and "30%" in texts  # every node's share
    assert "100%+: even more sure than" in texts
    boxes = _text_boxes(svg)
    assert len(boxes) == len(texts)
    for a, b in itertools.combinations(boxes, 2):  # no label overlaps another
        assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert all(b[0] >= 0 and b[2] <= width + 1 for b in boxes)  # and none runs off the side


def test_refresh_redraws_old_records_once(tmp_path: Path) -> None:
    g = graph()
    (tmp_path / "images").mkdir()
    Image.fromarray(np.full((70, 70, 3), 120, np.uint8)).save(tmp_path / "images" / "1.png")
    (tmp_path / "explanations" / "sag").mkdir(parents=True)
    (tmp_path / "explanations" / "sag" / "1-predicted.json").write_text(g.model_dump_json())
    (tmp_path / "records" / "sag").mkdir(parents=True)
    old = {"graph": "explanations/sag/1-predicted.json", "diagram_svg": "explanations/sag/1-predicted.svg"}
    (tmp_path / "records" / "sag" / "1-predicted.json").write_text(json.dumps(old))
    assert refresh(tmp_path) == 1
    rec = json.loads((tmp_path / "records" / "sag" / "1-predicted.json").read_text())
    assert rec["diagram_phone"] == "explanations/sag/1-predicted-phone.svg"
    assert 'width="240"' in (tmp_path / rec["diagram_phone"]).read_text()
    assert refresh(tmp_path) == 0  # drawn by the current renderer: left alone


def test_same_spots() -> None:
    a = np.zeros((7, 7), np.float32)
    a[1:3, 1:3] = 1
    b = a * 0.8 + 0.1  # the same spot, weaker
    c = np.zeros((7, 7), np.float32)
    c[5:7, 4:7] = 1
    assert same_spots([a, c, b]) == [None, None, 0]
    assert not hot_spot(np.ones((7, 7))).any()  # a flat map has no spot


def test_an_empty_root_is_said_in_words() -> None:
    doc = graph().model_dump()
    doc["roots"] = doc["all_roots"] = [[]]
    doc["nodes"] = [{**doc["nodes"][0], "patches": [], "confidence": 0.93}]
    doc["edges"] = []
    g = SagGraph.model_validate(doc)
    img = np.full((70, 70, 3), 160, np.uint8)
    assert "with every square hidden" in diagram_svg(g, img)
    assert "with every square hidden" in diagram_svg(g, img, narrow=True)
