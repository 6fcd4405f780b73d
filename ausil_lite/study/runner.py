"""Execute the study's notebooks in order with papermill, skipping those whose key has not changed.

Executed notebooks go to the book's chapter folder (a build output); each gets a stamp beside it
(``NN_name.run.json``) with its key, the parts of the key, its parameters and its run time. The first
failing notebook stops the study with a message naming the notebook, the cell and the error.

A notebook may take as long as the machine needs: while it runs, the newest line of its output (tqdm
bars, epoch lines) is shown in the terminal, and only a cell silent for the profile's ``silence_limit_s``
is stopped (:mod:`ausil_lite.study.watch`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import nbformat
import papermill

from ausil_lite.study.fingerprint import (
    changed_parts,
    code_digest,
    code_modules,
    digest,
    package_digest,
    path_stamps,
    read_stamp,
    stamp_path,
    write_stamp,
)
from ausil_lite.study.plan import (
    Profile,
    StudyError,
    StudyPlan,
    declared_parameters,
    input_paths,
    notebook_parameters,
    parameters_cell,
)
from ausil_lite.study.watch import ENGINE, KernelWatch

KERNEL = "python3"
START_TIMEOUT_S = 120  # kernel start; a cold torch import on a busy 2-core machine takes tens of seconds


@dataclass(frozen=True)
class NotebookRun:
    """What happened to one notebook in this study run; ``seconds`` is its last successful execution."""

    name: str
    status: str  # "ran" (executed now) or "unchanged" (key equal to the last successful run's)
    seconds: float
    finished_at: str  # UTC, ISO 8601, of the execution that produced the chapter
    output: Path
    parameters: dict  # the values papermill passed to that execution


def _failing_cell(output: Path) -> str:
    """Describe the failing cell of an executed notebook: number (papermill's cells not counted), first line.

    Papermill marks a cell that raised; a cell whose kernel was killed is left marked completed, so then
    the last cell that started is the one named.
    """
    if not output.is_file():
        return "before any cell ran (the kernel did not start?)"
    nb = nbformat.read(output, as_version=4)
    added = {"injected-parameters", "papermill-error-cell-tag"}  # cells papermill inserts
    own = [c for c in nb.cells if not added & set(c.get("metadata", {}).get("tags", []))]
    states = [c.get("metadata", {}).get("papermill", {}) for c in own]
    failed = [i for i, meta in enumerate(states) if meta.get("exception")]
    started = [i for i, meta in enumerate(states) if meta.get("start_time")]
    if not failed and not started:
        return "before any cell ran"
    index = failed[0] if failed else started[-1]
    cell = own[index]
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    count = cell.get("execution_count")
    return f"cell {index + 1}" + (f" (In [{count}])" if count else "") + f": {first.strip()[:100]}"


def error_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """Error outputs left in an executed notebook, outside cells tagged ``raises-exception``."""
    found = []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {number}: {out.get('ename')}: {out.get('evalue')}")
    return found


def execute(source: Path, output: Path, parameters: dict, profile: Profile, cwd: Path, label: str,
            terminal: TextIO) -> None:
    """Run one notebook with papermill, its progress shown on ``terminal`` under ``label``.

    On failure, or when the notebook fell silent for the profile's limit, raise :class:`StudyError`
    naming notebook and cell.
    """
    watch = KernelWatch(label, profile.silence_limit_s, terminal)
    failure = None
    try:
        with watch:
            papermill.execute_notebook(
                str(source),
                str(output),
                parameters=parameters,
                engine_name=ENGINE,
                watch=watch,
                kernel_name=KERNEL,
                language="python",
                start_timeout=START_TIMEOUT_S,
                progress_bar=False,  # the watch shows the notebook's own progress instead of a bar of cells
                cwd=str(cwd),
            )
    except Exception as exc:  # papermill, nbclient (a killed kernel) and the kernel raise many types: all stop it
        failure = exc
    if watch.stopped:
        raise StudyError(
            f"notebook {source.name}: no progress for {profile.silence_limit_s} s in {_failing_cell(output)}, so it "
            f"was stopped\n  (profiles.yaml: silence_limit_s of profile {profile.name}; a slow machine only takes "
            f"longer, a silent cell is stuck)\n  the executed notebook, with where it stopped, is {output}"
        ) from failure
    if failure is not None:
        if isinstance(failure, papermill.PapermillExecutionError):
            summary = f"{failure.ename}: {failure.evalue}"
        else:
            summary = next((line for line in str(failure).splitlines() if line.strip()), "")
        raise StudyError(
            f"notebook {source.name} failed in {_failing_cell(output)}\n"
            f"  {type(failure).__name__}: {summary[:300]}\n"
            f"  the executed notebook, with the traceback, is {output}"
        ) from failure
    errors = error_outputs(nbformat.read(output, as_version=4))
    if errors:
        raise StudyError(f"notebook {source.name} left error outputs: {'; '.join(errors)}")


def run_notebooks(
    plan: StudyPlan,
    profile: Profile,
    notebooks_dir: Path,
    chapters_dir: Path,
    *,
    force: bool = False,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
    terminal: TextIO | None = None,
) -> list[NotebookRun]:
    """Execute the plan's notebooks that exist, in order; return one record per chapter produced.

    Notebooks listed in the plan but not (yet) in ``notebooks_dir`` are left out of the study and the
    book. A notebook runs when its key differs from its last successful run's, or with ``force``.
    With ``dry_run`` nothing runs: the log says which notebooks would, and why; none are returned.
    A running notebook's progress goes to ``terminal`` (standard output by default).
    """
    chapters_dir.mkdir(parents=True, exist_ok=True)
    present = [spec for spec in plan.notebooks if (notebooks_dir / f"{spec.name}.ipynb").is_file()]
    absent = [spec.name for spec in plan.notebooks if spec not in present]
    if absent:
        log(f"study: not written yet, left out: {', '.join(absent)}")
    unplanned = sorted(p.stem for p in notebooks_dir.glob("*.ipynb") if p.stem not in {s.name for s in plan.notebooks})
    if unplanned:
        log(f"study: note: not in profiles.yaml, so not in the study: {', '.join(unplanned)}")
    # Read every notebook and check its parameters first, so a typo in the plan fails before anything runs.
    prepared = []
    for spec in present:
        source = notebooks_dir / f"{spec.name}.ipynb"
        nb = nbformat.read(source, as_version=4)
        declared = declared_parameters(parameters_cell(nb, str(source)).source, str(source))
        prepared.append((spec, source, nb, notebook_parameters(profile, spec.name, declared, str(source))))
    keys: dict[str, str | None] = {}
    runs = []
    for position, (spec, source, nb, params) in enumerate(prepared, start=1):
        output = chapters_dir / source.name
        for need in spec.needs:
            if need in absent:
                log(f"study: note: {spec.name} needs {need}, which is not written yet")
        parts = {
            "code": code_digest(nb),
            "parameters": digest(params),
            "inputs": digest(path_stamps(input_paths(spec, profile.name))),
            "package": package_digest(code_modules([c.source for c in nb.cells if c.cell_type == "code"])),
            "needs": digest({need: keys.get(need) for need in spec.needs}),
        }
        key = digest(parts)
        stamp = read_stamp(output)
        prefix = f"study [{position}/{len(present)}] {spec.name}"
        if not force and stamp is not None and stamp["key"] == key and output.is_file():
            log(f"{prefix}: unchanged since {stamp['finished_at']}, not run")
            runs.append(NotebookRun(spec.name, "unchanged", stamp["seconds"], stamp["finished_at"], output, params))
            keys[spec.name] = key
            continue
        if force:
            reason = "forced"
        elif stamp is None or not output.is_file():
            reason = "no successful run yet"
        else:
            reason = "changed: " + ", ".join(changed_parts(stamp.get("parts", {}), parts))
        if dry_run:
            log(f"{prefix}: would run ({reason})")
            keys[spec.name] = key
            continue
        log(f"{prefix}: running ({reason}; profile {profile.name}, parameters {params})")
        stamp_path(output).unlink(missing_ok=True)
        started = time.monotonic()
        execute(source, output, params, profile, notebooks_dir, prefix, terminal or sys.stdout)
        seconds = round(time.monotonic() - started, 1)
        finished = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_stamp(
            output,
            {"key": key, "parts": parts, "profile": profile.name, "parameters": params,
             "seconds": seconds, "finished_at": finished, "source": str(source)},
        )
        log(f"{prefix}: done in {seconds:.1f} s")
        runs.append(NotebookRun(spec.name, "ran", seconds, finished, output, params))
        keys[spec.name] = key
    return runs
