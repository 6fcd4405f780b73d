"""Typed configs from plain mappings: unknown keys and wrong types fail at once, naming the key.

Shared by the CLI, the notebooks' parameter cells and the stored artefacts, so a typo in a notebook
parameter or a config file never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import subprocess
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from ausil_lite.paths import REPO_ROOT

C = TypeVar("C")


def _accepts(hint: Any, value: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(h, value) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_accepts(args[0], v) for v in value)
        return len(args) == len(value) and all(_accepts(a, v) for a, v in zip(args, value))
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, hint)


def config_from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
    """Build the dataclass ``cls`` from ``values``, rejecting unknown keys and mistyped values."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; known: {sorted(names)}")
    for key, value in values.items():
        if not _accepts(hints[key], value):
            raise TypeError(f"{cls.__name__}.{key}: expected {hints[key]}, got {value!r}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**converted)


def git_commit() -> str:
    """The commit of the working tree that made an artefact ('unknown' outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(config: Any, seed: int | None = None) -> dict[str, Any]:
    """What every artefact stores about how it was made: resolved config, seed, git commit, version."""
    from ausil_lite import __version__

    record: dict[str, Any] = {"config": dataclasses.asdict(config), "git_commit": git_commit(), "version": __version__}
    if seed is not None:
        record["seed"] = seed
    return record
