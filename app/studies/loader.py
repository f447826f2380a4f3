"""Load a study file: parse, validate with line numbers, select items, check every asset.

`load_study` either returns a study that can be served as it stands, or raises StudyError
listing every problem: YAML syntax, unknown step types or fields (with file, line and field),
item counts the run cannot satisfy, and every asset a condition needs that the run lacks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.assets.manifest import MANIFEST, ImageEntry, Manifest, Sag, SagGraph, load, load_graph
from app.errors import StudyError
from app.steps import TASKS
from app.steps.plain import Instructions
from app.studies import explanations
from app.studies.items import Item, SelectionError, select
from app.studies.schema import StudySpec


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line (1-based) of the deepest YAML node the pydantic error location reaches."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
            if match is None:
                continue  # a union tag such as 'trials' in ('steps', 3, 'trials', 'items')
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            continue
        line = node.start_mark.line + 1
    return line


def _field(loc: tuple[Any, ...], doc: Any) -> str:
    """A readable field path: steps[3].items.correct (union tags left out)."""
    out = ""
    cur = doc
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            cur = cur[part] if isinstance(cur, list) and part < len(cur) else None
        elif isinstance(cur, dict) and part in cur:
            out += f".{part}" if out else str(part)
            cur = cur[part]
    return out or "(top level)"


def parse(path: Path) -> tuple[StudySpec, str, str]:
    """Validate a study file; returns (spec, source text, content hash)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StudyError(str(path), [f"cannot be read ({exc.strerror or exc})"]) from None
    source = raw.decode("utf-8", errors="replace")
    try:
        node = yaml.compose(source)
        doc = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise StudyError(str(path), [f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    if not isinstance(doc, dict):
        raise StudyError(str(path), [f"{path}:1: a study file is a mapping of fields (id, title, steps, ...)"])
    try:
        spec = StudySpec.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_of(node, loc)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "union_tag_invalid":
                msg = f"unknown step type {err['input'].get('type')!r}" if isinstance(err["input"], dict) else msg
            problems.append(f"{path}:{line}: {_field(loc, doc)}: {msg}")
        raise StudyError(str(path), problems) from None
    return spec, source, hashlib.sha256(raw).hexdigest()


class AssetIndex:
    """Opaque, unguessable names for the files a study serves: a URL never says which image,
    method or class a file belongs to."""

    def __init__(self, secret: str, run: Path) -> None:
        self.secret = secret.encode()
        self.run = run
        self.by_token: dict[str, Path] = {}
        self.by_path: dict[str, str] = {}

    def token(self, rel: str) -> str:
        """The file's name in URLs. It covers the file's size and modification time, so a file
        rebuilt in place gets a new name: browsers may keep a served file for good."""
        if rel not in self.by_path:
            try:
                st = (self.run / rel).stat()
                stamp = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stamp = "missing"  # reported by the loader's check of every file a study needs
            digest = hmac.new(self.secret, f"{self.run.name}/{rel}:{stamp}".encode(), hashlib.sha256).digest()
            token = base64.urlsafe_b64encode(digest[:18]).decode()
            self.by_path[rel] = token
            self.by_token[token] = self.run / rel
        return self.by_path[rel]

    def url(self, rel: str) -> str:
        return f"/asset/{self.token(rel)}"


@dataclass(eq=False)  # compared and hashed by identity: a loaded study is one object per process
class LoadedStudy:
    spec: StudySpec
    path: Path
    source: str
    content_hash: str
    run: Path
    manifest: Manifest
    items: dict[str, list[list[Item]]]  # block id -> item sets
    graphs: dict[int, SagGraph]  # image id -> SAG document (for SAG conditions and counterfactuals)
    entries: dict[int, ImageEntry] = field(default_factory=dict)
    assets: AssetIndex | None = None
    manifest_hash: str = ""  # SHA-256 of the run's manifest.json as loaded: what the export ties data to

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def class_names(self) -> dict[int, str]:
        return {c.id: c.name for c in self.manifest.classes}


def _first_problem(exc: ValidationError) -> str:
    """One line for many errors: the first field and what is wrong with it, and how many more."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"])
    more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def load_study(
    path: Path, assets_root: Path, secret: str, others: Mapping[str, LoadedStudy] | None = None
) -> LoadedStudy:
    """Everything needed to serve a study, or StudyError with every problem found. `others`: the
    studies loaded before it, which its `avoid_stimuli_of` may name."""
    spec, source, content_hash = parse(path)
    problems: list[str] = []
    run = assets_root / spec.assets
    try:
        manifest = load(run)
    except FileNotFoundError:
        raise StudyError(
            str(path),
            [
                f"assets: run {spec.assets!r} not found at {run}; build it with "
                "'fieldmark explain --out ...' or 'make demo'"
            ],
        ) from None
    except ValidationError as exc:
        raise StudyError(
            str(path),
            [
                f"assets: {run / 'manifest.json'} is not a valid manifest ({_first_problem(exc)}); a run made "
                "by an older version is brought up to date by running 'fieldmark explain' on it again (or 'make demo')"
            ],
        ) from None
    manifest_hash = hashlib.sha256((run / MANIFEST).read_bytes()).hexdigest()
    entries = {e.image_id: e for e in manifest.images}
    graphs: dict[int, SagGraph] = {}
    for e in manifest.images:
        sag = e.explanation("sag", "predicted")
        if isinstance(sag, Sag) and (run / sag.graph).is_file():
            graphs[e.image_id] = load_graph(run, sag)
    known_classes = {c.id for c in manifest.classes}
    items: dict[str, list[list[Item]]] = {}
    used: set[int] = set()
    taught_there, tested_there = _avoided(path, spec, run, others or {}, problems)
    for block in spec.blocks:
        for cls in (block.choices or []) + (block.items.classes or []):
            if cls not in known_classes:
                problems.append(f"{path}: steps.{block.id}: class {cls} is not in run {spec.assets!r}")
        # a block this study tests draws no picture another study teaches, and one it teaches
        # (feedback naming the species) none that another tests
        if not block.feedback:
            skip = taught_there
        elif TASKS[block.task].names_species:
            skip = tested_there
        else:
            skip = set()
        try:
            items[block.id] = select(manifest, block, TASKS[block.task], spec.seed, used | skip, graphs)
        except SelectionError as exc:
            problems.append(f"{path}: steps.{block.id}.items: {exc}")
            continue
        used |= {it.image_id for s in items[block.id] for it in s}
    index = AssetIndex(secret, run)
    missing: dict[str, list[int]] = {}
    for block in spec.blocks:
        for it in (i for s in items.get(block.id, []) for i in s):
            entry = entries[it.image_id]
            index.token(entry.image)
            for f in TASKS[block.task].files(it):
                index.token(f)
            for condition in spec.conditions if (block.explanation or block.two_stage) else []:
                if condition.explanation == "none":
                    continue
                found = explanations.explanation_for(entry, condition)
                label = condition.method or condition.explanation
                if condition.explains == "true_class":
                    label += " true-class ('fieldmark explain --explain-true')"
                label += explanations.KINDS[condition.explanation].needs(condition)
                if found is None:
                    missing.setdefault(f"{label} explanations (condition {condition.id}, block {block.id})", []).append(
                        it.image_id
                    )
                    continue
                for f in explanations.files(condition, found):
                    index.token(f)
    problems += _incoherent(path, spec, items)
    for what, ids in missing.items():
        problems.append(
            f"{path}: run {spec.assets!r} lacks {what} for images {sorted(ids)[:12]}"
            f"{' and more' if len(ids) > 12 else ''}"
        )
    for kind in dict.fromkeys(c.explanation for c in spec.conditions):
        for f in explanations.KINDS[kind].study_files(manifest) if kind in explanations.KINDS else []:
            index.token(f)
    for img in spec.guides:
        if not (run / img).is_file():
            problems.append(f"{path}: guides: {img} is not in run {spec.assets!r}")
        else:
            index.token(img)
    for step in spec.steps:
        if isinstance(step, Instructions):
            for img in step.images:
                if not (run / img).is_file():
                    problems.append(f"{path}: steps.{step.id}.images: {img} is not in run {spec.assets!r}")
                else:
                    index.token(img)
    absent = [rel for rel, tok in index.by_path.items() if not index.by_token[tok].is_file()]
    if absent:
        problems.append(f"{path}: run {spec.assets!r} lists files that are missing: {absent[:8]}")
    if problems:
        raise StudyError(str(path), problems)
    return LoadedStudy(spec, path, source, content_hash, run, manifest, items, graphs, entries, index, manifest_hash)


def _avoided(
    path: Path, spec: StudySpec, run: Path, others: Mapping[str, LoadedStudy], problems: list[str]
) -> tuple[set[int], set[int]]:
    """The pictures the studies named in `avoid_stimuli_of` teach, and those they test."""
    from app.studies.overlap import taught, tested  # it reads loaded studies: imported late

    teach: set[int] = set()
    test: set[int] = set()
    for sid in spec.avoid_stimuli_of:
        other = others.get(sid)
        if other is None:
            problems.append(
                f"{path}: avoid_stimuli_of: study {sid!r} is not loaded with this one (put its file in the "
                "studies folder; studies may not avoid each other)"
            )
        elif other.run.resolve() != run.resolve():
            problems.append(f"{path}: avoid_stimuli_of: study {sid!r} uses another asset run; nothing to avoid")
        else:
            teach |= taught(other)
            test |= tested(other)
    return teach, test


def load_many(
    paths: list[Path], assets_root: Path, secret: str
) -> tuple[dict[str, LoadedStudy], dict[Path, StudyError]]:
    """Load study files in an order that lets each avoid the pictures of those it names in
    `avoid_stimuli_of`; a later file whose id is already loaded is skipped. Returns the studies
    and, per file that could not be loaded, why."""
    out: dict[str, LoadedStudy] = {}
    failed: dict[Path, StudyError] = {}
    wants: dict[Path, tuple[str, list[str]]] = {}
    for path in paths:
        try:
            spec = parse(path)[0]
        except StudyError as exc:
            failed[path] = exc
            continue
        if spec.id not in {sid for sid, _ in wants.values()}:
            wants[path] = (spec.id, spec.avoid_stimuli_of)
    pending = list(wants)
    while pending:
        ready = [p for p in pending if all(o in out for o in wants[p][1])] or pending  # the rest: say what is missing
        for path in ready:
            try:
                out[wants[path][0]] = load_study(path, assets_root, secret, out)
            except StudyError as exc:
                failed[path] = exc
        pending = [p for p in pending if p not in ready]
    return out, failed


def _incoherent(path: Path, spec: StudySpec, items: dict[str, list[list[Item]]]) -> list[str]:
    """Blocks whose explanation and page disagree: an explanation of the model's (wrong) answer on
    a page that names only the true species teaches the marks of the wrong species."""
    out = []
    for block in spec.blocks:
        task = TASKS[block.task]
        errors = sum(not it.model_correct for s in items.get(block.id, [])[:1] for it in s)
        if not (block.explanation or block.two_stage) or not task.names_species or not errors:
            continue
        for c in spec.conditions:
            said = task.shows_prediction if task.shows_prediction is not None else c.show_prediction
            if c.explanation != "none" and c.explains == "predicted_class" and not said:
                out.append(
                    f"{path}: steps.{block.id}: condition {c.id!r} explains the model's answer "
                    f"(explains: predicted_class) but never says what it was, and {errors} items are model errors "
                    "whose page names only the true species: set show_prediction: true, explains: true_class, "
                    "or items.incorrect: 0"
                )
    return out


def load_all(studies_dir: Path, assets_root: Path, secret: str) -> dict[str, LoadedStudy]:
    """Every *.yaml under studies_dir; refuses to start if any is broken or two share an id."""
    paths = sorted(studies_dir.glob("*.yaml"))
    out, failed = load_many(paths, assets_root, secret)
    errors = [str(failed[p]) for p in paths if p in failed]
    loaded = {s.path for s in out.values()}
    for path in paths:
        if path not in failed and path not in loaded:
            sid = parse(path)[0].id
            errors.append(f"{path}: study id {sid!r} is also used by {out[sid].path}")
    if errors:
        raise StudyError(str(studies_dir), errors)
    return out
