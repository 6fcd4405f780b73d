"""The study's plan: which notebooks run, in what order, with which parameters (``notebooks/profiles.yaml``).

The file has two keys. ``notebooks`` maps each notebook name (``NN_name``, reading order) to what it
reads: ``needs`` (earlier notebooks whose outputs it uses) and ``inputs`` (paths outside the study that
it reads, such as installed recordings). ``profiles`` maps a profile name to its silence limit and
parameter values; a profile may ``extend`` another and override some values. ``shared`` values go to
every notebook whose parameters cell declares them; per-notebook values must be declared there, so a
typo in the file fails before anything runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

from ausil_lite.paths import REPO_ROOT, data_root

PLAIN_TYPES = (str, int, float, bool, type(None))
"""What papermill passes faithfully on its command line; lists and dicts belong in package configs."""


class StudyError(RuntimeError):
    """The study cannot go on: a bad plan, a failing notebook or a failing book build."""


@dataclass(frozen=True)
class NotebookSpec:
    """One chapter notebook: its name (file stem) and what it reads."""

    name: str
    needs: tuple[str, ...] = ()  # earlier notebooks whose outputs this one reads
    inputs: tuple[str, ...] = ()  # path templates ({data}, {profile}); relative ones are against the repo root


@dataclass(frozen=True)
class Profile:
    """One way to run the whole study: its silence limit and the parameter values per notebook.

    There is no wall-clock limit: a busier or slower machine only takes longer.
    """

    name: str
    description: str
    silence_limit_s: int  # a cell that writes no output (prints, progress bars) for this long is stopped as stuck
    shared: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyPlan:
    notebooks: tuple[NotebookSpec, ...]
    profiles: dict[str, Profile]

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise StudyError(f"unknown profile {name!r}; profiles.yaml defines {sorted(self.profiles)}")
        return self.profiles[name]


def _check_keys(where: str, mapping: Any, allowed: set[str]) -> dict:
    if not isinstance(mapping, dict):
        raise StudyError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise StudyError(f"{where}: unknown key(s) {unknown}; known: {sorted(allowed)}")
    return mapping


def _check_plain(where: str, values: Any) -> dict[str, Any]:
    values = values or {}
    if not isinstance(values, dict):
        raise StudyError(f"{where}: expected a mapping of parameter values")
    for key, value in values.items():
        if not isinstance(value, PLAIN_TYPES):
            raise StudyError(
                f"{where}.{key}: parameters are plain values (str, int, float, bool, null), got {type(value).__name__}"
            )
    return dict(values)


def _resolve_profile(name: str, raw: dict[str, Any], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Merge a profile over the profile it extends (values of the child win, per key)."""
    if name in seen:
        raise StudyError(f"profiles: cycle in 'extends': {' -> '.join(seen + (name,))}")
    if name not in raw:
        raise StudyError(f"profiles: {seen[-1]!r} extends unknown profile {name!r}")
    spec = _check_keys(f"profiles.{name}", raw[name], {"extends", "description", "silence_limit_s", "shared", "parameters"})
    base = _resolve_profile(spec["extends"], raw, seen + (name,)) if "extends" in spec else {"shared": {}, "parameters": {}}
    merged = {
        "description": spec.get("description", base.get("description", "")),
        "silence_limit_s": spec.get("silence_limit_s", base.get("silence_limit_s")),
        "shared": {**base["shared"], **_check_plain(f"profiles.{name}.shared", spec.get("shared"))},
        "parameters": {k: dict(v) for k, v in base["parameters"].items()},
    }
    params = spec.get("parameters") or {}
    if not isinstance(params, dict):
        raise StudyError(f"profiles.{name}.parameters: expected a mapping of notebook -> values")
    for notebook, values in params.items():
        merged["parameters"].setdefault(notebook, {}).update(_check_plain(f"profiles.{name}.parameters.{notebook}", values))
    return merged


def parse_plan(text: str, where: str = "profiles.yaml") -> StudyPlan:
    """Read and validate the plan from YAML text; every mistake names its place in the file."""
    raw = yaml.safe_load(text)
    raw = _check_keys(where, raw, {"notebooks", "profiles"})
    notebooks = []
    for name, spec in (raw.get("notebooks") or {}).items():
        spec = _check_keys(f"notebooks.{name}", spec or {}, {"needs", "inputs"})
        needs = tuple(spec.get("needs") or ())
        earlier = {n.name for n in notebooks}
        for need in needs:
            if need not in earlier:
                raise StudyError(f"notebooks.{name}.needs: {need!r} is not an earlier notebook in the list")
        notebooks.append(NotebookSpec(name=name, needs=needs, inputs=tuple(str(p) for p in spec.get("inputs") or ())))
    names = {n.name for n in notebooks}
    profiles = {}
    for name in raw.get("profiles") or {}:
        merged = _resolve_profile(name, raw["profiles"])
        unknown = sorted(set(merged["parameters"]) - names)
        if unknown:
            raise StudyError(f"profiles.{name}.parameters: unknown notebook(s) {unknown}; known: {sorted(names)}")
        limit = merged["silence_limit_s"]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            raise StudyError(f"profiles.{name}.silence_limit_s: expected a positive number of seconds, got {limit!r}")
        profiles[name] = Profile(name=name, **merged)
    if not profiles:
        raise StudyError(f"{where}: no profiles defined")
    return StudyPlan(notebooks=tuple(notebooks), profiles=profiles)


def load_plan(path: Path) -> StudyPlan:
    if not Path(path).is_file():
        raise StudyError(f"{path}: the study's plan (notebooks and profiles) is missing")
    return parse_plan(Path(path).read_text(), where=str(path))


def parameters_cell(notebook: nbformat.NotebookNode, where: str) -> nbformat.NotebookNode:
    """The notebook's one code cell tagged ``parameters`` (papermill would silently inject at the top otherwise)."""
    cells = [c for c in notebook.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise StudyError(f"{where}: expected exactly one code cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def declared_parameters(source: str, where: str) -> set[str]:
    """Names assigned at top level of a parameters cell (``name = value`` or ``name: type = value``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise StudyError(f"{where}: the parameters cell is not valid Python: {exc}") from exc
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def notebook_parameters(profile: Profile, name: str, declared: set[str], where: str) -> dict[str, Any]:
    """Values passed to one notebook: the shared ones it declares, then its own (which must be declared)."""
    own = profile.parameters.get(name, {})
    undeclared = sorted(set(own) - declared)
    if undeclared:
        raise StudyError(
            f"profiles.{profile.name}.parameters.{name}: {undeclared} not in the parameters cell of {where} "
            f"(it declares {sorted(declared)})"
        )
    shared = {k: v for k, v in profile.shared.items() if k in declared}
    return {**shared, **own}


def input_paths(spec: NotebookSpec, profile: str) -> list[Path]:
    """The notebook's declared input paths with ``{data}`` (the data root) and ``{profile}`` filled in."""
    paths = []
    for template in spec.inputs:
        path = Path(template.format(data=data_root(), profile=profile))
        paths.append(path if path.is_absolute() else REPO_ROOT / path)
    return paths
