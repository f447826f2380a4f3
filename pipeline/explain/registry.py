"""The explanation methods `fieldmark explain` knows: one spec per method, one place to add one.

A spec names the method, describes it (the manifest and `--help` show it), says which kind of
explanation it is (the manifest record it writes and how a study page shows it: app/studies/
explanations.py has one spec per kind), which stage runs it and what that stage needs from it,
its parameters with their defaults under a run's configuration, and the asset files it writes.
The CLI, the runner, the manifest and the tests read this table; nothing else lists methods.

This module imports no torch: the command line builds its help from it. What needs torch (a
parameter class, a saliency function) is reached through a function that imports it when called.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    import torch

    from pipeline.explain.heatmaps import Batch

Kind = Literal["heatmap", "sag", "concepts", "examples"]
Stage = Literal["heatmap", "sag", "xnn", "examples"]
Targets = tuple[str, ...]


class Params(Protocol):
    """A method's parameters: a frozen dataclass that can say what it holds."""

    def as_dict(self) -> dict[str, object]: ...


@dataclass(frozen=True)
class Defaults:
    """What a run's configuration decides about every method's parameters."""

    resolution: int  # I-GOS-style mask size
    seed: int
    max_batch: int  # model inputs per forward pass on this device


Saliency = Callable[["Params", "torch.nn.Module", "Batch", dict[str, Any]], "torch.Tensor"]


@dataclass(frozen=True)
class Method:
    name: str
    description: str  # one line: the method, its paper, what the saliency means
    kind: Kind  # the manifest record it writes (app.assets.manifest) and how a study shows it
    stage: Stage  # the module of pipeline/explain/ that runs it
    params: Callable[[Defaults], Params]  # its parameters with defaults under this configuration
    writes: tuple[str, ...]  # its files per (image, target): globs in the run, {stem} = explanations/METHOD/ID-TARGET
    targets: Targets = ("predicted", "true")  # "true": also when the model is wrong (--explain-true)
    saliency: Saliency | None = None  # heatmap stage: N×h×w, higher = more important
    nested: Mapping[str, Callable[[Defaults], Params]] = dataclasses.field(default_factory=dict)
    # parameter groups of their own (XNN's concept heatmaps are an I-GOS run): name -> defaults
    default: bool = True  # in `fieldmark explain`'s default --methods


METHODS: dict[str, Method] = {}
ALIASES: dict[str, tuple[str, ...]] = {}


def register(method: Method) -> Method:
    """Make a method known to the CLI, the runner and the manifest (a test adds one this way)."""
    if method.name in METHODS or method.name in ALIASES:
        raise ValueError(f"explanation method {method.name!r} is already registered")
    if (method.stage == "heatmap") != (method.saliency is not None):
        raise ValueError(f"{method.name}: a heatmap-stage method needs a saliency function, and only it")
    METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Forget a method (tests that registered one clean up with this)."""
    METHODS.pop(name)


def alias(name: str, members: tuple[str, ...]) -> None:
    ALIASES[name] = members


def get(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise PipelineError(f"unknown explanation method {name!r}; use any of {', '.join(METHODS)}") from None


def parse_methods(text: str) -> list[str]:
    """`--methods`: a comma list of names and aliases, in the order given, each once."""
    out: list[str] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        for name in ALIASES.get(token, (token,)):
            if name not in METHODS:
                raise PipelineError(
                    f"--methods: unknown method {token!r}; use any of {', '.join((*METHODS, *ALIASES))}"
                )
            if name not in out:
                out.append(name)
    if not out:
        raise PipelineError("--methods is empty; e.g. --methods igos,gradcam")
    return out


def default_methods() -> str:
    """The default of `--methods`, aliases folded (ig-blur and ig-black read as 'ig')."""
    names = [m.name for m in METHODS.values() if m.default]
    out: list[str] = []
    for name in names:
        group = next((a for a, members in ALIASES.items() if name in members), None)
        if group and all(n in names for n in ALIASES[group]):
            if group not in out:
                out.append(group)
        else:
            out.append(name)
    return ",".join(out)


def help_text() -> str:
    """One line per method for `fieldmark explain --help`."""
    lines = [f"{m.name}: {m.description}" for m in METHODS.values()]
    lines += [f"{a}: {' and '.join(members)}" for a, members in ALIASES.items()]
    return "\n\n".join(lines)


def parse_param_changes(items: list[str]) -> dict[str, dict[str, Any]]:
    """`--param METHOD.NAME=VALUE` (repeatable; a group: METHOD.GROUP.NAME=VALUE) as `ExplainConfig.params`.

    VALUE is read as JSON (5, 0.5, true, "black") and otherwise taken as text (black).
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        path = key.strip().split(".")
        if not sep or len(path) not in (2, 3) or not all(path):
            raise PipelineError(f"--param {item!r}: write METHOD.NAME=VALUE, e.g. igos.iterations=5")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        target = out.setdefault(path[0], {})
        if len(path) == 3:
            target = target.setdefault(path[1], {})
        target[path[-1]] = value
    return out


def make_params(method: Method, defaults: Defaults, changes: Mapping[str, Any]) -> Params:
    """The method's parameters: its defaults under this configuration, with `changes` applied.

    Unknown names and values of the wrong type are refused with the list of what the method takes,
    so a typo in a benchmark or a demo setting fails at once instead of being silently ignored.
    """
    base = method.params(defaults)
    own = {k: v for k, v in changes.items() if k not in method.nested}
    return _replace(method.name, base, own)


def nested_params(method: Method, group: str, defaults: Defaults, changes: Mapping[str, Any]) -> Params:
    sub = changes.get(group, {})
    if not isinstance(sub, Mapping):
        raise PipelineError(f"parameter {method.name}.{group} is a group of parameters, not {sub!r}")
    return _replace(f"{method.name}.{group}", method.nested[group](defaults), sub)


def _replace(where: str, base: Params, changes: Mapping[str, Any]) -> Params:
    fields = {f.name: f for f in dataclasses.fields(base)}  # type: ignore[arg-type]
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in fields:
            raise PipelineError(f"{where} has no parameter {key!r}; it takes {', '.join(fields)}")
        current = getattr(base, key)
        optional = "None" in str(fields[key].type)  # e.g. SAG's `patience: int | None`
        if current is not None and not (value is None and optional):  # a None default takes what it is given
            if isinstance(value, int) and not isinstance(value, bool) and isinstance(current, float):
                value = float(value)  # an int is a fine float, stored as one
            if isinstance(current, bool) != isinstance(value, bool) or not isinstance(value, type(current)):
                raise PipelineError(f"{where}.{key} must be of type {type(current).__name__}, got {value!r}")
        clean[key] = value
    return dataclasses.replace(base, **clean)  # type: ignore[type-var]
