"""Every method names its reference code and its deviations, and the docs list the same."""

from pathlib import Path

from pipeline.explain import METHODS
from pipeline.methods.deviations import DEVIATIONS, REFERENCE_CODE

DOC = (Path(__file__).resolve().parents[2] / "docs" / "explanations.md").read_text()


def test_every_method_has_reference_code_and_reasons() -> None:
    assert set(REFERENCE_CODE) == set(DEVIATIONS) == set(METHODS)
    assert all(d.what and d.why for devs in DEVIATIONS.values() for d in devs)


def test_the_docs_list_every_deviation() -> None:
    for method, ref in REFERENCE_CODE.items():
        assert f"| `{method}` | {ref} |" in DOC
        for d in DEVIATIONS[method]:
            assert d.what in DOC and d.why in DOC
