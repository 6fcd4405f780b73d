"""The study runner: plan validation, content keys, skipping, failure reports, generated book pages.

Runs small notebooks the tests write themselves (a kernel start is about a second each).
"""

from __future__ import annotations

import ast
import io
import json
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from ausil_lite.paths import REPO_ROOT
from ausil_lite.study import watch
from ausil_lite.study.__main__ import exclusive
from ausil_lite.study.__main__ import main as study_main
from ausil_lite.study.book import environment_markdown, toc_yaml
from ausil_lite.study.fingerprint import code_digest, code_modules, package_digest, path_stamps
from ausil_lite.study.plan import (
    PLAIN_TYPES,
    StudyError,
    declared_parameters,
    load_plan,
    notebook_parameters,
    parameters_cell,
    parse_plan,
)
from ausil_lite.study.runner import NotebookRun, error_outputs, run_notebooks


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


PLAN = """
notebooks:
  01_make: {}
  02_use: {needs: [01_make]}
  03_alone: {inputs: ["{data}/alone-input.txt"]}
profiles:
  test:
    silence_limit_s: 60
    shared: {profile: test}
    parameters:
      03_alone: {factor: 2}
"""


@pytest.fixture
def study(tmp_path, monkeypatch):
    """Three notebooks: 02 reads what 01 writes; 03 reads a declared input file. Returns a run function."""
    monkeypatch.setenv("AUSIL_DATA", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alone-input.txt").write_text("1")
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write_notebook(nbs / "01_make.ipynb", "profile = 'x'\nout = None",
                   "from pathlib import Path\nimport os\n"
                   "Path(os.environ['AUSIL_DATA'], 'made.txt').write_text(profile)")
    write_notebook(nbs / "02_use.ipynb", "profile = 'x'",
                   "import os\nassert open(os.path.join(os.environ['AUSIL_DATA'], 'made.txt')).read() == profile")
    write_notebook(nbs / "03_alone.ipynb", "profile = 'x'\nfactor = 1", "result = factor * 2")
    (nbs / "profiles.yaml").write_text(PLAN)
    chapters = tmp_path / "book" / "chapters"

    def run(plan_text: str = PLAN, profile: str = "test", **kwargs) -> dict[str, str]:
        plan = parse_plan(plan_text)
        runs = run_notebooks(plan, plan.profile(profile), nbs, chapters, log=lambda _: None, **kwargs)
        return {r.name: r.status for r in runs}

    return run, nbs, chapters, tmp_path


# --- plan -------------------------------------------------------------------------------------------

def test_profile_extends_and_overrides():
    plan = parse_plan("""
notebooks: {01_a: {}}
profiles:
  base: {silence_limit_s: 10, shared: {profile: base, seed: 1}, parameters: {01_a: {n: 1, m: 2}}}
  child: {extends: base, shared: {profile: child}, parameters: {01_a: {n: 5}}}
""")
    child = plan.profile("child")
    assert child.silence_limit_s == 10
    assert child.shared == {"profile": "child", "seed": 1}
    assert child.parameters == {"01_a": {"n": 5, "m": 2}}
    assert plan.profile("base").parameters == {"01_a": {"n": 1, "m": 2}}


@pytest.mark.parametrize(
    "text, message",
    [
        ("notebooks: {}\nprofiles: {p: {silence_limit_s: 1, typo: 1}}", "unknown key"),
        ("notebooks: {01_a: {}}\nprofiles: {p: {silence_limit_s: 1, parameters: {01_a: {x: [1, 2]}}}}", "plain values"),
        ("notebooks: {01_a: {}}\nprofiles: {p: {silence_limit_s: 1, parameters: {09_z: {x: 1}}}}", "unknown notebook"),
        ("notebooks: {01_a: {needs: [02_b]}, 02_b: {}}\nprofiles: {p: {silence_limit_s: 1}}", "not an earlier notebook"),
        ("notebooks: {}\nprofiles: {p: {extends: q, silence_limit_s: 1}, q: {extends: p}}", "cycle"),
        ("notebooks: {}\nprofiles: {p: {description: no timeout}}", "silence_limit_s"),
        ("notebooks: {01_a: {inputz: []}}\nprofiles: {p: {silence_limit_s: 1}}", "unknown key"),
    ],
)
def test_bad_plans_fail_naming_the_place(text, message):
    with pytest.raises(StudyError, match=message):
        parse_plan(text)


def test_unknown_profile_is_named():
    plan = parse_plan("notebooks: {}\nprofiles: {ci: {silence_limit_s: 1}}")
    with pytest.raises(StudyError, match="unknown profile 'gpu'"):
        plan.profile("gpu")


def test_declared_parameters_and_what_each_notebook_gets():
    declared = declared_parameters("a = 1\nb: int = 2\nc, d = 3, 4\nif True:\n    e = 5\n", "nb")
    assert declared == {"a", "b"}
    plan = parse_plan("notebooks: {01_a: {}}\nprofiles: {p: {silence_limit_s: 1, shared: {a: 9, z: 0}, "
                      "parameters: {01_a: {b: 7}}}}")
    assert notebook_parameters(plan.profile("p"), "01_a", declared, "nb") == {"a": 9, "b": 7}
    with pytest.raises(StudyError, match=r"\['b'\] not in the parameters cell"):
        notebook_parameters(plan.profile("p"), "01_a", {"a"}, "nb")


# --- keys ---------------------------------------------------------------------------------------------

def test_code_digest_follows_sources_and_tags_not_outputs():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    before = code_digest(nb)
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[0].execution_count = 3
    assert code_digest(nb) == before
    nb.cells[0].metadata["tags"] = ["remove-input"]
    tagged = code_digest(nb)
    assert tagged != before
    nb.cells[0].source = "x = 2"
    assert code_digest(nb) not in (before, tagged)


def test_path_stamps_see_new_changed_and_missing_files(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("1")
    first = path_stamps([tmp_path / "d", tmp_path / "missing"])
    assert first[-1] == (str(tmp_path / "missing"), None, None)
    (tmp_path / "d" / "a").write_text("12")
    assert path_stamps([tmp_path / "d", tmp_path / "missing"]) != first
    (tmp_path / "d" / "b").write_text("")
    assert len(path_stamps([tmp_path / "d"])) == 2


def test_package_part_covers_the_modules_a_notebook_imports_and_nothing_else(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import g\ndef f():\n    from pkg.sub import d\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    return 1\n")
    (pkg / "c.py").write_text("x = 1\n")
    (pkg / "sub" / "__init__.py").write_text("from . import d\n")
    (pkg / "sub" / "d.py").write_text("import os\n")
    files = code_modules(["%matplotlib inline\nfrom pkg.a import f\nimport numpy"], package_dir=pkg)
    assert [p.relative_to(pkg).as_posix() for p in files] == ["__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/d.py"]
    before = package_digest(files, package_dir=pkg)
    (pkg / "c.py").write_text("x = 2\n")
    assert package_digest(code_modules(["from pkg.a import f"], package_dir=pkg), package_dir=pkg) == before
    (pkg / "b.py").write_text("def g():\n    return 2\n")
    assert package_digest(code_modules(["from pkg.a import f"], package_dir=pkg), package_dir=pkg) != before
    assert len(code_modules(["from pkg.a import f", "x = ("], package_dir=pkg)) == 6  # unparsable: everything


# --- running ------------------------------------------------------------------------------------------

def test_runs_then_skips_and_reruns_only_what_changed(study):
    run, nbs, chapters, tmp = study
    assert run() == {"01_make": "ran", "02_use": "ran", "03_alone": "ran"}
    stamp = json.loads((chapters / "03_alone.run.json").read_text())
    assert stamp["parameters"] == {"profile": "test", "factor": 2} and stamp["seconds"] > 0
    assert run() == {"01_make": "unchanged", "02_use": "unchanged", "03_alone": "unchanged"}

    # editing a notebook reruns it and the notebooks that need it, nothing else
    write_notebook(nbs / "01_make.ipynb", "profile = 'x'\nout = None",
                   "from pathlib import Path\nimport os\n"
                   "Path(os.environ['AUSIL_DATA'], 'made.txt').write_text(profile)  # edited")
    assert run() == {"01_make": "ran", "02_use": "ran", "03_alone": "unchanged"}
    write_notebook(nbs / "02_use.ipynb", "profile = 'x'", "x = 1")
    assert run() == {"01_make": "unchanged", "02_use": "ran", "03_alone": "unchanged"}

    # a declared input and a parameter value are part of the key too
    (tmp / "data" / "alone-input.txt").write_text("22")
    assert run() == {"01_make": "unchanged", "02_use": "unchanged", "03_alone": "ran"}
    assert run(PLAN.replace("factor: 2", "factor: 3"))["03_alone"] == "ran"
    assert set(run(PLAN.replace("factor: 2", "factor: 3"), force=True).values()) == {"ran"}


def test_executed_notebook_has_the_profile_values(study):
    run, nbs, chapters, tmp = study
    run()
    executed = nbformat.read(chapters / "03_alone.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "factor = 2" in injected[0].source
    assert (tmp / "data" / "made.txt").read_text() == "test"


def test_first_failure_stops_the_study_naming_notebook_and_cell(study):
    run, nbs, chapters, tmp = study
    write_notebook(nbs / "02_use.ipynb", "profile = 'x'", "ok = 1", "raise ValueError('no such segment')", "after = 1")
    with pytest.raises(StudyError) as failure:
        run()
    message = str(failure.value)
    assert "02_use.ipynb" in message
    assert "cell 4" in message and "raise ValueError" in message  # markdown, parameters, ok = 1, then this
    assert "ValueError: no such segment" in message
    assert not (chapters / "02_use.run.json").exists()
    assert not (chapters / "03_alone.ipynb").exists()  # the study stopped there
    # the failed notebook runs again next time, the one before it does not
    write_notebook(nbs / "02_use.ipynb", "profile = 'x'", "ok = 1")
    assert run() == {"01_make": "unchanged", "02_use": "ran", "03_alone": "ran"}


def test_a_slow_cell_that_shows_progress_runs_past_the_silence_limit(study, capsys):
    run, nbs, chapters, tmp = study
    write_notebook(nbs / "03_alone.ipynb", "profile = 'x'\nfactor = 1",
                   "import sys, time\nfor step in range(12):\n"
                   "    print(f'\\rstep {step + 1}/12', end='', file=sys.stderr, flush=True)\n    time.sleep(0.5)")
    assert run(PLAN.replace("silence_limit_s: 60", "silence_limit_s: 3"))["03_alone"] == "ran"  # 6 s in one cell
    assert "study [3/3] 03_alone: step 1/12\n" in capsys.readouterr().out  # the first progress line is echoed


def test_a_silent_cell_is_stopped_naming_notebook_and_cell(study):
    run, nbs, chapters, tmp = study
    write_notebook(nbs / "01_make.ipynb", "profile = 'x'", "print('starting')", "import time\ntime.sleep(60)")
    started = time.monotonic()
    with pytest.raises(StudyError, match=r"01_make.ipynb: no progress for 2 s in cell 4 .*import time") as failure:
        run(PLAN.replace("silence_limit_s: 60", "silence_limit_s: 2"))
    assert time.monotonic() - started < 30
    assert "silence_limit_s of profile test" in str(failure.value)
    executed = nbformat.read(chapters / "01_make.ipynb", as_version=4)
    assert "KeyboardInterrupt" in json.dumps(executed.cells[-1].outputs)  # the traceback shows where it hung


def test_a_kernel_that_ignores_the_interrupt_is_killed(study, monkeypatch):
    run, nbs, chapters, tmp = study
    monkeypatch.setattr(watch, "KILL_AFTER_S", 1.0)
    write_notebook(nbs / "01_make.ipynb", "profile = 'x'",
                   "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)")
    started = time.monotonic()
    with pytest.raises(StudyError, match=r"01_make.ipynb: no progress for 2 s in cell 3 .*import signal"):
        run(PLAN.replace("silence_limit_s: 60", "silence_limit_s: 2"))
    assert time.monotonic() - started < 40


@pytest.mark.parametrize(
    "tail, text, expected",
    [
        ("", "epoch 1/3\n", ("", "epoch 1/3")),
        ("", "\r 10%|#  | 1/10 [00:01<00:09]\r 20%|## | 2/10 [00:02<00:08]", (" 20%|## | 2/10 [00:02<00:08]",) * 2),
        ("ep", "och 2", ("epoch 2", "epoch 2")),
        ("", "done\n\n  \n", ("", "done")),
        ("", "", ("", None)),
    ],
)
def test_latest_line_follows_carriage_returns_like_a_terminal(tail, text, expected):
    assert watch.latest_line(tail, text) == expected


def test_progress_is_echoed_at_most_so_often(monkeypatch):
    terminal = io.StringIO()
    monkeypatch.setattr(watch, "ECHO_EVERY_S", 3600.0)
    kernel = watch.KernelWatch("study [1/1] 01_a", silence_limit_s=60, terminal=terminal)
    for step in range(1, 4):
        kernel.stderr.write(f"\rstep {step}/3")
    kernel.stdout.write("step 3/3")  # the same line again is not repeated, however long after
    assert terminal.getvalue() == "study [1/1] 01_a: step 1/3\n"


def test_undeclared_parameter_fails_before_running(study):
    run, nbs, chapters, tmp = study
    with pytest.raises(StudyError, match="factr"):
        run(PLAN.replace("factor: 2", "factr: 2"))
    assert not chapters.exists() or not list(chapters.glob("*.ipynb"))


def test_notebook_without_parameters_cell_is_rejected(study):
    run, nbs, chapters, tmp = study
    nb = nbformat.read(nbs / "01_make.ipynb", as_version=4)
    nb.cells[1].metadata["tags"] = []
    nbformat.write(nb, nbs / "01_make.ipynb")
    with pytest.raises(StudyError, match="exactly one code cell tagged 'parameters'"):
        run()


def test_notebooks_not_written_yet_are_left_out(study):
    run, nbs, chapters, tmp = study
    plan = PLAN.replace("  03_alone: {inputs", "  04_later: {needs: [01_make]}\n  03_alone: {inputs")
    assert list(run(plan)) == ["01_make", "02_use", "03_alone"]


def test_notebooks_missing_from_the_plan_are_named(study):
    run, nbs, chapters, tmp = study
    write_notebook(nbs / "09_extra.ipynb", "profile = 'x'")
    messages = []
    plan = parse_plan(PLAN)
    runs = run_notebooks(plan, plan.profile("test"), nbs, chapters, dry_run=True, log=messages.append)
    assert runs == [] and "not in profiles.yaml, so not in the study: 09_extra" in "\n".join(messages)


def test_command_line_dry_run_then_failure_exit_status(study, capsys):
    run, nbs, chapters, tmp = study
    args = ["--profile", "test", "--notebooks", str(nbs), "--book", str(tmp / "book"), "--no-build"]
    assert study_main(args + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("would run (no successful run yet)") == 3
    assert not list(chapters.glob("*.ipynb"))
    write_notebook(nbs / "03_alone.ipynb", "profile = 'x'\nfactor = 1", "assert factor == 1, 'factor changed'")
    assert study_main(args) == 1
    err = capsys.readouterr().err
    assert "study: FAILED: notebook 03_alone.ipynb failed in cell 3" in err and "factor changed" in err
    assert study_main(["--profile", "nope", "--notebooks", str(nbs), "--book", str(tmp / "book")]) == 1
    assert "unknown profile 'nope'" in capsys.readouterr().err


def test_a_second_study_run_on_the_same_chapters_is_refused(study, capsys):
    run, nbs, chapters, tmp = study
    args = ["--profile", "test", "--notebooks", str(nbs), "--book", str(tmp / "book"), "--no-build"]
    with exclusive(chapters / ".study.lock"):
        assert study_main(args) == 1
    assert "another study run holds" in capsys.readouterr().err
    assert not list(chapters.glob("*.ipynb"))


@pytest.mark.parametrize("notebook", sorted((REPO_ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_repository_notebooks_follow_the_conventions(notebook):
    """Planned, titled, one parameters cell of plain values, stored without outputs, every cell with an id."""
    plan = load_plan(REPO_ROOT / "notebooks" / "profiles.yaml")
    assert notebook.stem in [spec.name for spec in plan.notebooks], "add it to notebooks/profiles.yaml"
    stored = json.loads(notebook.read_text(encoding="utf-8"))  # nbformat.read would invent the missing ids
    assert all("id" in cell for cell in stored["cells"]), "every cell has an id (nbformat will require it)"
    nb = nbformat.read(notebook, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "first cell: a # title"
    params = parameters_cell(nb, str(notebook))
    for node in ast.parse(params.source).body:
        assert isinstance(node, (ast.Assign, ast.AnnAssign)), f"parameters cell: only assignments ({ast.dump(node)[:60]})"
        assert isinstance(ast.literal_eval(node.value), PLAIN_TYPES), "parameters are plain values"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "notebooks are stored without outputs"
    for profile in plan.profiles.values():
        notebook_parameters(profile, notebook.stem, declared_parameters(params.source, notebook.name), notebook.name)


def test_error_outputs_are_found_except_in_cells_expected_to_raise():
    nb = nbformat.v4.new_notebook()
    bad = nbformat.v4.new_code_cell("1/0")
    bad.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]
    expected = nbformat.v4.new_code_cell("1/0", metadata={"tags": ["raises-exception"]})
    expected.outputs = list(bad.outputs)
    nb.cells = [expected, bad]
    assert error_outputs(nb) == ["cell 2: ZeroDivisionError: division by zero"]


# --- book pages ---------------------------------------------------------------------------------------

def test_toc_lists_the_chapters_in_order_between_front_and_back_pages():
    toc = yaml.safe_load(toc_yaml(["01_a", "03_c"]))
    assert toc["format"] == "jb-book" and toc["root"] == "intro"
    assert [c["file"] for c in toc["chapters"]] == ["chapters/01_a", "chapters/03_c", "settings_tried", "reproduce", "chapters/environment"]


def test_environment_page_shows_each_notebook_time_and_packages():
    env = {"python": "3.11.0", "platform": "Linux", "cpu_count": 2, "load": (1.0, 2.5, 3.0), "device": "CPU", "git_commit": "abc",
           "packages": {"torch": "9.9"}}
    runs = [NotebookRun("01_a", "ran", 12.25, "2026-01-01T00:00:00Z", Path("x"), {"profile": "ci", "seed": 3}),
            NotebookRun("02_b", "unchanged", 3.0, "2025-12-31T00:00:00Z", Path("y"), {})]
    page = environment_markdown(env, runs, "ci", "2026-01-01 00:00 UTC")
    assert "| 01_a | ran | 2026-01-01T00:00:00Z | 12.2 |" in page or "| 01_a | ran | 2026-01-01T00:00:00Z | 12.3 |" in page
    assert "| 02_b | unchanged | 2025-12-31T00:00:00Z | 3.0 |" in page
    assert "**15.2**" in page or "**15.3**" in page
    assert "| 01_a | `profile = 'ci'`, `seed = 3` |" in page and "| 02_b | (the notebook's defaults) |" in page
    assert "| Load average (1, 5, 15 min) when written | 1.0, 2.5, 3.0 |" in page
    assert "| torch | 9.9 |" in page and "`ci`" in page and "| Device | CPU |" in page
