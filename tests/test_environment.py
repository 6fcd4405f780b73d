"""pyproject.toml and environment.yml must pin the same versions of every package."""

import re
import tomllib

import yaml

from ausil_lite.paths import REPO_ROOT

PIN = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;]+)")


def _pins(lines):
    pins = {}
    for line in lines:
        match = PIN.match(line)
        if match:
            name = re.sub(r"\[.*\]", "", match.group(1)).lower().replace("_", "-")
            pins[name] = match.group(2)
    return pins


def test_pyproject_and_environment_yml_agree():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"]) + [d for group in project["optional-dependencies"].values() for d in group]
    ours = _pins(declared)
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    theirs = _pins(pip_section)
    assert ours, "no pins found in pyproject.toml"
    assert ours == theirs
    assert "python=3.11" in env["dependencies"]
    assert ours["torch"] == ours["torchaudio"] == "2.11.0"
