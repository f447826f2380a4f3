"""The two halves agree on the kinds of explanation: every method the pipeline registers writes a
record of a kind the study server can show, and every kind has its templates and documentation."""

from __future__ import annotations

import typing
from pathlib import Path

from app.studies.explanations import KINDS, NAMES
from app.studies.schema import Condition
from pipeline.explain import METHODS

REPO = Path(__file__).resolve().parents[1]


def test_every_method_writes_a_kind_the_server_shows() -> None:
    for m in METHODS.values():
        assert m.kind in KINDS, m.name
        record = KINDS[m.kind].record
        assert typing.get_args(record.model_fields["kind"].annotation) == (m.kind,)
    for kind in KINDS.values():
        if kind.method is not None:  # the kind implies its method: the pipeline has it, of this kind
            assert METHODS[kind.method].kind == kind.name


def test_every_kind_has_its_templates_and_is_documented() -> None:
    studies_doc = (REPO / "docs" / "studies.md").read_text(encoding="utf-8")
    for kind in KINDS.values():
        assert (REPO / "templates" / kind.template).is_file()
        assert (REPO / "templates" / kind.intro_template).is_file()
        assert f"explanation: {kind.name}" in studies_doc
    assert set(typing.get_args(Condition.model_fields["explanation"].annotation)) == set(NAMES)
