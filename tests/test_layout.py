"""The package's layout as the README's table describes it, and the one way imports flow between its rooms."""

import ast
import re

from ausil_lite.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "ausil_lite"


def layout_names() -> set[str]:
    """Every backticked name in the README's Layout table, with and without its ``ausil_lite/`` prefix."""
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`([^`]+)`", table))
    return names | {n.removeprefix("ausil_lite/") for n in names}


def test_the_readme_layout_table_names_every_entry_of_the_package_root():
    entries = {p.name + "/" if p.is_dir() else p.name for p in PACKAGE.iterdir()
               if p.name not in {"__init__.py", "__pycache__"}}
    assert entries - layout_names() == set()
    modules = [p for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= 5, f"the package root holds {len(modules)} modules: {sorted(p.name for p in modules)}"


def test_the_library_never_imports_the_study():
    """What only the book uses lives under ``ausil_lite/study``; the library a user's command runs never needs it."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "study" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.relative_to(REPO_ROOT)}: {n}" for n in names if n.startswith("ausil_lite.study")]
    assert offenders == []
