"""Content hashes that decide whether a notebook must run again, and the stamp kept beside its output.

A notebook's key hashes five parts: its code (cell types, sources and tags; outputs and metadata
ignored), the parameter values it gets, its declared inputs (size and modification time of every file
under each path), the package's source (the notebooks are thin: the work happens in ``ausil_lite``)
and the keys of the notebooks it needs. The last part chains the keys, so a change upstream reruns
everything downstream of it and nothing else.
"""

from __future__ import annotations

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


def package_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """Hash of the package's Python sources, except this runner's own (it does not change results)."""
    study_dir = Path(__file__).resolve().parent
    files = sorted(p for p in package_dir.rglob("*.py") if study_dir not in p.parents)
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
