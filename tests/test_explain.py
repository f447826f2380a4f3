"""`fieldmark explain`: every method's assets, a manifest the app accepts, resume, and bad input."""

import fnmatch
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.assets import manifest as schema
from pipeline.data.cub import Dataset
from pipeline.errors import PipelineError
from pipeline.explain import HEATMAP_METHODS, METHODS, ExplainConfig, explain, parse_ids, parse_methods
from pipeline.provenance import file_hash

CHEAP = {
    "igos": {"iterations": 2, "steps": 2},
    "igospp": {"iterations": 2, "steps": 2},
    "igospp-authors": {"iterations": 2, "steps": 2},
    "ig-blur": {"steps": 4},
    "ig-black": {"steps": 4},
    "occlusion": {"window": 112, "stride": 112},
    "rise": {"masks": 16},
}
ALL = parse_methods("igos,igospp,igospp-authors,gradcam,ig,occlusion,rise,examples")


def assert_files_declared(m: schema.Manifest) -> None:
    """Every file a record names is one its method's spec says it writes."""
    for entry in m.images:
        for e in entry.explanations:
            stem = f"explanations/{e.method}/{entry.image_id}-{e.target}"
            writes = [w.format(stem=stem) for w in METHODS[e.method].writes]
            for f in e.paths():
                assert any(fnmatch.fnmatch(f, w) for w in writes), (e.method, f, writes)


def config(model: Path, ds: Dataset, out: Path, **kw: object) -> ExplainConfig:
    base: dict[str, object] = {
        "model": model,
        "data": ds.root,
        "out": out,
        "methods": ALL,
        "images": [2, 6, 10],
        "params": CHEAP,
        "protocols": ("igos",),
        "device": "cpu",
        "max_batch": 64,
    }
    return ExplainConfig(**(base | kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, tiny_gulls: Dataset) -> Path:
    out = tmp_path_factory.mktemp("assets") / "run"
    explain(config(tiny_model, tiny_gulls, out))
    return out


def test_manifest_round_trips_through_the_apps_reader(run: Path, tiny_model: Path) -> None:
    m = schema.load(run)
    assert m.missing_files(run) == []
    assert [e.image_id for e in m.images] == [2, 6, 10]
    assert set(m.methods) == set(ALL)
    assert m.provenance.model_hash == file_hash(tiny_model) and m.provenance.model_arch == "compact"
    again = schema.Manifest.model_validate_json(m.model_dump_json())
    assert again == m
    assert_files_declared(m)
    # every method names its reference code and its deviations from it, with reasons
    assert all(info.reference_code for info in m.methods.values())
    assert any("end points" in d.what and d.switch for d in m.methods["igospp"].deviations)
    assert all(d.why for info in m.methods.values() for d in info.deviations)


def test_manifests_written_before_deviations_were_recorded_still_load(run: Path) -> None:
    doc = json.loads((run / schema.MANIFEST).read_text())
    for info in doc["methods"].values():
        del info["reference_code"], info["deviations"]
    for img in doc["images"]:
        for e in img["explanations"]:
            for f in e.get("faithfulness", []):
                del f["resolution"]
    old = schema.Manifest.model_validate(doc)
    assert old.methods["igos"].deviations == [] and old.methods["igos"].reference_code is None


def test_every_method_for_every_image_and_the_true_class_when_wrong(run: Path, tiny_gulls: Dataset) -> None:
    m = schema.load(run)
    train = Counter(r.class_id for r in tiny_gulls.split("train"))
    for entry in m.images:
        assert abs(sum(entry.probabilities.values()) - 1) < 1e-4
        assert entry.correct == (entry.true_class == entry.predicted_class)
        assert entry.predicted_class == max(entry.probabilities, key=entry.probabilities.__getitem__)
        for method in HEATMAP_METHODS:
            h = entry.explanation(method)
            assert isinstance(h, schema.Heatmap) and h.target_class == entry.predicted_class
            assert [f.protocol for f in h.faithfulness] == ["igos"]
            assert 0 <= h.faithfulness[0].deletion_auc <= 1 and 0 <= h.faithfulness[0].insertion_auc <= 1
            assert "discriminative" in h.localisation and "bill" in h.localisation
            truth = entry.explanation(method, "true")
            assert (truth is None) == entry.correct
            if truth is not None:
                assert isinstance(truth, schema.Heatmap) and truth.target_class == entry.true_class
        ex = entry.explanation("examples")
        # k = 3 nearest training images of the predicted class (never the image itself), or all of them
        pool = train[entry.predicted_class] - (entry.split == "train" and entry.true_class == entry.predicted_class)
        assert isinstance(ex, schema.Examples) and len(ex.neighbours) == min(3, pool)
        assert all(n.image_id != entry.image_id for n in ex.neighbours)
        assert all(n.true_class == entry.predicted_class for n in ex.neighbours)  # they explain the prediction
        assert [n.distance for n in ex.neighbours] == sorted(n.distance for n in ex.neighbours)
    assert any(not e.correct for e in m.images), "the two-epoch model should get one of these wrong"


def test_raw_maps_keep_each_methods_resolution_and_overlays_are_images(run: Path) -> None:
    entry = schema.load(run).images[0]
    shapes = {}
    for e in entry.explanations:
        if isinstance(e, schema.Heatmap):
            raw = np.load(run / e.raw)
            shapes[e.method] = raw.shape
            assert raw.dtype == np.float32 and np.isfinite(raw).all()
            with Image.open(run / e.overlay) as im:
                assert im.size == (224, 224) and im.mode == "RGB"
            curves = json.loads((run / e.curves).read_text())
            assert len(curves["igos"]["deletion"]) == len(curves["igos"]["removed"]) == 54
    assert shapes["igos"] == shapes["igospp"] == (28, 28)
    assert shapes["gradcam"] == (7, 7)
    assert shapes["ig-blur"] == shapes["rise"] == shapes["occlusion"] == (224, 224)
    with Image.open(run / entry.image) as im:
        assert im.size == (224, 224)


def test_a_rerun_skips_finished_work_and_can_add_methods(tmp_path: Path, tiny_model: Path, tiny_gulls: Dataset) -> None:
    out = tmp_path / "r"
    explain(config(tiny_model, tiny_gulls, out, methods=["gradcam"], images=[2]))
    record = out / "records/gradcam/2-predicted.json"
    stamp = record.stat().st_mtime_ns
    calls: list[tuple[int, int]] = []
    explain(
        config(tiny_model, tiny_gulls, out, methods=["gradcam", "igos"], images=[2]),
        lambda done, total, _phase: calls.append((done, total)),
    )
    assert record.stat().st_mtime_ns == stamp
    explanations = schema.load(out).images[0].explanations
    assert calls[0][1] == len([e for e in explanations if e.method == "igos"])  # only igos was new work
    assert {e.method for e in explanations} == {"gradcam", "igos"}


def test_refuses_to_mix_runs(tmp_path: Path, tiny_model: Path, tiny_gulls: Dataset) -> None:
    out = tmp_path / "r"
    explain(config(tiny_model, tiny_gulls, out, methods=["gradcam"], images=[2]))
    with pytest.raises(PipelineError, match="another seed"):
        explain(config(tiny_model, tiny_gulls, out, methods=["gradcam"], images=[2], seed=5))
    with pytest.raises(PipelineError, match="igos assets made with other parameters"):
        explain(config(tiny_model, tiny_gulls, out, methods=["igos"], images=[2]))
        explain(
            config(
                tiny_model,
                tiny_gulls,
                out,
                methods=["igos"],
                images=[2],
                params={"igos": {"iterations": 3, "steps": 2}},
            )
        )
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(PipelineError, match="not an asset run"):
        explain(config(tiny_model, tiny_gulls, busy, methods=["gradcam"]))


def test_the_demo_sets_a_stale_run_aside_and_makes_it_again(
    tmp_path: Path, tiny_model: Path, tiny_gulls: Dataset
) -> None:
    from fieldmark.demo import explain_or_rebuild

    out = tmp_path / "demo"
    explain(config(tiny_model, tiny_gulls, out, methods=["igos"], images=[2]))
    old = (out / "settings.json").read_text()
    newer = {"igos": {"iterations": 3, "steps": 2}}  # as after an upgrade that changed a method
    m = explain_or_rebuild(config(tiny_model, tiny_gulls, out, methods=["igos"], images=[2], params=newer))
    (aside,) = tmp_path.glob("demo.old-*")
    assert (aside / "settings.json").read_text() == old  # kept, not deleted
    assert json.loads((out / "settings.json").read_text())["methods"]["igos"]["iterations"] == 3
    assert [e.image_id for e in m.images] == [2]


def test_bad_input(tmp_path: Path, tiny_model: Path, tiny_gulls: Dataset, two_species: Dataset) -> None:
    with pytest.raises(PipelineError, match=r"image ids \[999\] are not in"):
        explain(config(tiny_model, tiny_gulls, tmp_path / "a", images=[999]))
    with pytest.raises(PipelineError, match="trained on classes"):
        explain(config(tiny_model, two_species, tmp_path / "b"))
    with pytest.raises(PipelineError, match="no such file"):
        explain(config(tmp_path / "none.pt", tiny_gulls, tmp_path / "c"))
    with pytest.raises(PipelineError, match="--resolution"):
        explain(config(tiny_model, tiny_gulls, tmp_path / "d", resolution=30))
    with pytest.raises(PipelineError, match="unknown method 'lime'"):
        parse_methods("igos,lime")
    with pytest.raises(PipelineError, match="--images"):
        parse_ids("1,x")
    assert parse_methods("ig,igos,ig-blur") == ["ig-blur", "ig-black", "igos"]
    assert parse_ids("1,3-5") == [1, 3, 4, 5]


def test_both_protocols_when_asked(tmp_path: Path, tiny_model: Path, tiny_gulls: Dataset) -> None:
    explain(config(tiny_model, tiny_gulls, tmp_path / "p", methods=["gradcam"], images=[2], protocols=("igos", "rise")))
    h = schema.load(tmp_path / "p").images[0].explanation("gradcam")
    assert isinstance(h, schema.Heatmap)
    assert [f.protocol for f in h.faithfulness] == ["igos", "rise"]
    assert [f.resolution for f in h.faithfulness] == [28, 224]


def test_igos_native_only_for_maps_off_the_28_grid(tmp_path: Path, tiny_model: Path, tiny_gulls: Dataset) -> None:
    """Grad-CAM (7×7) is also ranked on its own grid; I-GOS (28×28) is not scored twice."""
    cfg = config(tiny_model, tiny_gulls, tmp_path / "n", methods=["gradcam", "igos"], images=[2])
    explain(ExplainConfig(**{**cfg.__dict__, "protocols": ("igos", "igos-native")}))
    entry = schema.load(tmp_path / "n").images[0]
    cam, ig = entry.explanation("gradcam"), entry.explanation("igos")
    assert isinstance(cam, schema.Heatmap) and isinstance(ig, schema.Heatmap)
    assert [(f.protocol, f.resolution) for f in cam.faithfulness] == [("igos", 28), ("igos-native", 7)]
    assert [(f.protocol, f.resolution) for f in ig.faithfulness] == [("igos", 28)]


def test_sag_assets(tmp_path: Path, tiny_model: Path, tiny_gulls: Dataset) -> None:
    import xml.etree.ElementTree as ET

    out = tmp_path / "s"
    cheap = {"sag": {"order_iterations": 1, "order_steps": 4, "max_roots": 3, "patience": 2}}
    explain(config(tiny_model, tiny_gulls, out, methods=["sag"], images=[2], params=cheap, explain_true=False))
    m = schema.load(out)
    assert m.missing_files(out) == []
    assert_files_declared(m)
    sag = m.images[0].explanation("sag")
    assert isinstance(sag, schema.Sag)
    graph = schema.load_graph(out, sag)
    assert graph.image_id == 2 and graph.grid == 7 and graph.baseline == "blur"
    assert sag.roots == len(graph.roots) >= 1 and len(graph.roots) <= 3
    assert set(graph.files()) == set(sag.files)
    roots = {tuple(n.patches) for n in graph.nodes if n.root}
    assert {tuple(r) for r in graph.roots} <= roots
    for q in graph.questions:
        assert q.higher == ("a" if q.a.confidence > q.b.confidence else "b")
    ns = "{http://www.w3.org/2000/svg}"
    for rel, widest in ((sag.diagram_svg, 516), (sag.diagram_phone, 240)):
        svg = ET.fromstring((out / rel).read_text())
        assert int(svg.get("width", "999")) <= widest and svg.find(f"{ns}title") is not None
        # one picture per shown root and per child of one, nothing focusable, no ids
        shown = [n for n in graph.nodes if n.depth == 0 and n.patches in graph.roots]
        kids = [e for e in graph.edges if e.parent in {n.id for n in shown}]
        assert len(list(svg.iter(f"{ns}image"))) == len(shown) + len(kids)
        assert not [el for el in svg.iter() if el.get("id") or el.get("tabindex")]
    with Image.open(out / sag.diagram_png) as im:
        assert im.width > 400


def test_xnn_assets(tmp_path: Path, tiny_model: Path, tiny_gulls: Dataset) -> None:
    out = tmp_path / "x"
    cheap = {
        "xnn": {
            "epochs": 3,
            "pretrain_epochs": 1,
            "max_rounds": 1,
            "gallery": 2,
            "heatmap": {"iterations": 2, "steps": 2},
        },
    }
    explain(config(tiny_model, tiny_gulls, out, methods=["xnn"], images=[2, 6], params=cheap))
    m = schema.load(out)
    assert m.missing_files(out) == []
    assert_files_declared(m)
    assert m.xnn is not None and m.xnn.k == 5 and m.xnn.feature_dim == 128
    assert 0 <= m.xnn.accuracy_xnn <= 1 and m.xnn.accuracy_classifier >= 0
    assert [c.class_id for c in m.xnn.classes] == [59, 62, 64, 66]
    assert any(ci.gallery for cc in m.xnn.classes for ci in cc.concepts)
    for cc in m.xnn.classes:
        assert len(cc.concepts) == 5 and cc.logit_range >= 0
        for ci in cc.concepts:
            assert len(ci.gallery) <= 2
            assert ci.mean_contribution > 0 or not ci.gallery  # only concepts that speak for the class
            if ci.gallery:
                assert set(ci.part_shares) >= {"background", "bill", "eye", "legs"}
                assert abs(sum(ci.part_shares.values()) - 1) < 0.02  # every pixel has one label
                assert ci.suggested_name in (*ci.part_shares, "background")
    for entry in m.images:
        c = entry.explanation("xnn")
        assert isinstance(c, schema.Concepts) and c.target_class == entry.predicted_class
        positive = sorted((v for v in c.contributions if v > 0), reverse=True)
        shown = [s.contribution for s in c.significant]
        assert shown == pytest.approx(positive[: len(shown)], abs=1e-4)
        assert (not positive) or sum(shown) >= 0.9 * sum(positive) - 1e-4
        assert c.summary.startswith("The model saw mostly") or not shown
        with Image.open(out / c.card) as im:
            assert im.width > 400
        if not entry.correct:
            assert isinstance(entry.explanation("xnn", "true"), schema.Concepts)


def test_param_changes_from_the_command_line() -> None:
    from pipeline.explain.registry import parse_param_changes

    assert parse_param_changes(["igos.iterations=5", "sag.baseline=black", "xnn.heatmap.steps=4", "igos.l1=0.5"]) == {
        "igos": {"iterations": 5, "l1": 0.5},
        "sag": {"baseline": "black"},
        "xnn": {"heatmap": {"steps": 4}},
    }
    with pytest.raises(PipelineError, match=r"METHOD\.NAME=VALUE"):
        parse_param_changes(["igos.iterations"])


def test_a_run_made_before_a_parameter_existed(tmp_path: Path) -> None:
    """A new parameter whose value keeps the old behaviour (iGOS++'s end-point line search) matches
    an older run; one that changes it (I-GOS's L1 schedule) does not."""
    from pipeline.explain.run_folder import Run

    base = {"model_hash": "m", "data_hash": "d", "seed": 0, "resolution": 28, "transform": {}}
    Run(tmp_path / "r").check_settings({**base, "methods": {"igospp": {"size": 28}, "igos": {"size": 28}}})
    new_pp = {"size": 28, "l1_schedule": False, "line_search": "end-point"}
    Run(tmp_path / "r").check_settings({**base, "methods": {"igospp": new_pp}})
    with pytest.raises(PipelineError, match="igos assets made with other parameters"):
        Run(tmp_path / "r").check_settings({**base, "methods": {"igos": {"size": 28, "l1_schedule": True}}})
