"""Content hashes that decide whether a notebook must run again, and the stamp kept beside its output.

A notebook's key hashes five parts: its code (cell types, sources and tags; outputs and metadata
ignored), the parameter values it gets, its declared inputs (size and modification time of every file
under each path), the package modules it imports, directly or not (the notebooks are thin: the work
happens in ``ausil_lite``), and the keys of the notebooks it needs. The last part chains the keys, so a
change upstream reruns everything downstream of it and nothing else.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any

import nbformat

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def digest(value: Any) -> str:
    """SHA-256 of a JSON-serialisable value (keys sorted, so dict order does not matter)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def code_digest(notebook: nbformat.NotebookNode) -> str:
    """Hash of what a reader or the kernel sees: cell types, sources and tags (not outputs, not ids)."""
    cells = [(c.cell_type, c.source, sorted(c.get("metadata", {}).get("tags", []))) for c in notebook.cells]
    return digest(cells)


def path_stamps(paths: list[Path]) -> list[tuple[str, int | None, int | None]]:
    """(path, size in bytes, mtime in ns) of every file under ``paths``; (path, None, None) if absent.

    Size and modification time rather than content: feature stores hold thousands of files and
    reading them all on every run would cost more than most notebooks.
    """
    stamps: list[tuple[str, int | None, int | None]] = []
    for root in paths:
        if not root.exists():
            stamps.append((str(root), None, None))
            continue
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            st = f.stat()
            stamps.append((str(f), st.st_size, st.st_mtime_ns))
    return stamps


def _module_file(name: str, package_dir: Path) -> Path | None:
    """The source file of module ``ausil_lite.x.y`` (``x/y.py`` or ``x/y/__init__.py``), if it exists."""
    parts = name.split(".")[1:]
    base = package_dir.joinpath(*parts)
    candidates = ([base.with_suffix(".py")] if parts else []) + [base / "__init__.py"]
    return next((c for c in candidates if c.is_file()), None)


def _imported_modules(source: str, package: str, current: str | None = None) -> set[str]:
    """Names of the package's modules that ``source`` imports, anywhere in it (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom):
            if node.level and current:  # relative import inside the package
                base = current.split(".")[: -node.level]  # a package's __init__ is named "pkg.__init__"
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] == package:
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names)  # names may be submodules
    return found


def code_modules(sources: list[str], package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Source files of the package that code importing like ``sources`` runs: transitive imports and
    the ``__init__`` of every package on the way. IPython magics and shell lines are ignored. Code that
    does not parse as Python (the notebook will fail on it when it runs) counts as importing everything.
    """
    package = package_dir.name
    code = "\n".join(
        "\n".join(line for line in s.splitlines() if not line.lstrip().startswith(("%", "!"))) for s in sources
    )
    try:
        todo = _imported_modules(code, package)
    except SyntaxError:
        return sorted(package_dir.rglob("*.py"))
    files: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        for module in [name, *parents]:
            if module in files:
                continue
            path = _module_file(module, package_dir)
            if path is None:
                continue
            files[module] = path
            current = module + (".__init__" if path.name == "__init__.py" else "")
            todo |= _imported_modules(path.read_text(), package, current) - set(files)
    return sorted(set(files.values()))


def package_digest(files: list[Path], package_dir: Path = PACKAGE_DIR) -> str:
    """Hash of the given package source files (paths and contents)."""
    return digest([(str(p.relative_to(package_dir)), hashlib.sha256(p.read_bytes()).hexdigest()) for p in files])


def stamp_path(output: Path) -> Path:
    """Where the stamp of an executed notebook lives: beside it, ``NN_name.run.json``."""
    return output.with_suffix(".run.json")


def read_stamp(output: Path) -> dict[str, Any] | None:
    path = stamp_path(output)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_stamp(output: Path, record: dict[str, Any]) -> None:
    stamp_path(output).write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")


def changed_parts(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Names of the key parts that differ, to say why a notebook runs again."""
    return sorted(k for k in new if old.get(k) != new[k])
