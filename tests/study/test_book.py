"""End to end: the real notebooks under the ``tiny`` profile, the strict book build and the browser check.

One study run (module fixture) into a copy of ``book/`` under a temporary folder, with its own data root;
the tests then read what it produced. The repository's own ``book/chapters`` is never touched.
"""

from __future__ import annotations

import base64
import importlib.util
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from ausil_lite.paths import REPO_ROOT
from ausil_lite.study import runner
from ausil_lite.study.__main__ import main as study_main
from ausil_lite.study.fingerprint import package_digest
from ausil_lite.study.plan import load_plan
from ausil_lite.study.runner import error_outputs

NOTEBOOKS = REPO_ROOT / "notebooks"
BOOK_SOURCES = ("_config.yml", "intro.md", "settings_tried.md", "reproduce.md", "_ext", "_extra")
CHROMIUM = Path("/usr/bin/chromium")


def chapter_names() -> list[str]:
    plan = load_plan(NOTEBOOKS / "profiles.yaml")
    return [spec.name for spec in plan.notebooks if (NOTEBOOKS / f"{spec.name}.ipynb").is_file()]


def load_browser_check():
    spec = importlib.util.spec_from_file_location("browser_check", REPO_ROOT / "tools" / "browser_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_browser_check_names_console_errors_exceptions_and_offsite_requests():
    check = load_browser_check()
    base = "http://127.0.0.1:8000/"
    events = [
        {"method": "Runtime.consoleAPICalled", "params": {"type": "error", "args": [{"value": "boom"}]}},
        {"method": "Runtime.consoleAPICalled", "params": {"type": "log", "args": [{"value": "fine"}]}},
        {"method": "Runtime.exceptionThrown", "params": {"exceptionDetails": {"exception": {"description": "TypeError: x"}}}},
        {"method": "Network.requestWillBeSent", "params": {"request": {"url": base + "_static/a.js"}}},
        {"method": "Network.requestWillBeSent", "params": {"request": {"url": "https://cdn.example.org/mathjax.js"}}},
        {"method": "Log.entryAdded", "params": {"entry": {"level": "error", "text": "404", "url": base + "x.png"}}},
    ]
    problems = check.page_problems(events, base)
    assert problems == [
        "console error: boom",
        "uncaught exception: TypeError: x",
        "request off the local server: https://cdn.example.org/mathjax.js",
        f"console error: 404 {base}x.png",
    ]


def test_browser_check_server_is_quiet_when_the_browser_drops_a_download(tmp_path, capfd):
    import socket
    import struct
    import time

    check = load_browser_check()
    (tmp_path / "big.bin").write_bytes(bytes(32 * 2**20))
    server = check.serve(tmp_path)
    try:
        for _ in range(3):
            client = socket.create_connection(server.server_address)
            client.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            client.recv(1024)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, as a navigation does
            client.close()
        time.sleep(1.0)
    finally:
        server.shutdown()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium not installed (tools/system_packages.sh)")
def test_browser_check_fails_a_page_with_a_broken_figure_and_a_script_error(tmp_path):
    check = load_browser_check()
    (tmp_path / "good.png").write_bytes(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="))
    shutil.copy(REPO_ROOT / "book" / "_extra" / "favicon.ico", tmp_path)  # browsers ask for it on every page
    (tmp_path / "ok.html").write_text('<html><body><img src="good.png"></body></html>')
    (tmp_path / "bad.html").write_text(
        '<html><body><img src="missing.png"><script>console.error("bad page")</script></body></html>')
    results = check.check_book(tmp_path, screenshot=None)
    assert results["ok.html"] == []
    assert any("figure not loaded" in p and "missing.png" in p for p in results["bad.html"])
    assert "console error: bad page" in results["bad.html"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Run ``python -m ausil_lite.study --profile tiny`` on a copy of the book; return (book dir, output)."""
    root = tmp_path_factory.mktemp("study")
    book = root / "book"
    book.mkdir()
    for name in BOOK_SOURCES:
        source = REPO_ROOT / "book" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, book / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUSIL_DATA", str(root / "data"))
        # Package edits made meanwhile (by other work in this tree) must not rerun notebooks between the
        # two runs: the first digest of each set of modules stands for the whole test.
        first: dict[tuple, str] = {}
        mp.setattr(runner, "package_digest", lambda files: first.setdefault(tuple(files), package_digest(files)))
        args = ["--profile", "tiny", "--notebooks", str(NOTEBOOKS), "--book", str(book)]
        if not CHROMIUM.is_file():
            args.append("--no-browser-check")
        status = study_main(args)
        assert status == 0, "the tiny study failed; its report is in the captured output"
        rerun = study_main(args + ["--no-build", "--no-browser-check"])
        assert rerun == 0
    return book


@pytest.mark.slow
def test_every_notebook_executed_without_errors(built):
    names = chapter_names()
    assert names, "no notebooks found"
    for name in names:
        executed = nbformat.read(built / "chapters" / f"{name}.ipynb", as_version=4)
        assert not error_outputs(executed), name
        states = {c.metadata.get("papermill", {}).get("status") for c in executed.cells}
        assert states == {"completed"}, f"{name}: cell states {states}"
        assert (built / "chapters" / f"{name}.run.json").is_file()


@pytest.mark.slow
def test_every_chapter_page_is_in_the_toc_and_built(built):
    toc = yaml.safe_load((built / "_toc.yml").read_text())
    files = [entry["file"] for entry in toc["chapters"]]
    assert files == [f"chapters/{n}" for n in chapter_names()] + ["settings_tried", "reproduce", "chapters/environment"]
    for page in ["intro"] + files:
        assert (built / "_build" / "html" / f"{page}.html").is_file(), page


def _expected_figures_and_tables(nb: nbformat.NotebookNode) -> tuple[int, int]:
    """Images and tables a chapter must show: displayed outputs, glued images, Markdown tables."""
    glued_images = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            record = out.get("metadata", {}).get("scrapbook")
            if record:
                glued_images[record["name"]] = any("image/" in mime for mime in out.get("data", {}))
    figures = tables = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for name in re.findall(r"```\{glue:figure\}\s*(\S+)", cell.source):
                assert name in glued_images, f"{{glue:figure}} {name}: nothing glued under that name"
                figures += glued_images[name]  # a glued text (e.g. "not run in this profile") is no image
            tables += len(re.findall(r"^\|[-:| ]+\|\s*$", cell.source, flags=re.M))
            continue
        for out in cell.get("outputs", []):
            if "scrapbook" in out.get("metadata", {}):
                continue  # glued: shown where the text refers to it
            data = out.get("data", {})
            figures += "image/png" in data or "image/svg+xml" in data
            tables += "<table" in data.get("text/html", "")
    return figures, tables


@pytest.mark.slow
def test_each_figure_and_table_is_in_the_html(built):
    html_dir = built / "_build" / "html"
    for name in chapter_names():
        executed = nbformat.read(built / "chapters" / f"{name}.ipynb", as_version=4)
        figures, tables = _expected_figures_and_tables(executed)
        page = (html_dir / "chapters" / f"{name}.html").read_text()
        images = re.findall(r'<img[^>]*src="([^"]+)"', page)
        assert len(images) >= figures, f"{name}: {len(images)} images in the page, {figures} expected"
        assert page.count("<table") >= tables, f"{name}: tables missing"
        for src in images:
            if not src.startswith("data:"):
                assert (html_dir / "chapters" / src).resolve().is_file(), f"{name}: {src} not in the build"
    # chapter 1 glues its figures into the text: three of them, and its numbers, not placeholders
    page = (html_dir / "chapters" / "01_audio_features.html").read_text()
    assert page.count("<figure") >= 3
    assert "glue:" not in re.sub(r"<pre.*?</pre>", "", page, flags=re.S)


@pytest.mark.slow
def test_environment_page_lists_each_notebook_with_its_time(built):
    page = (built / "chapters" / "environment.md").read_text()
    for name in chapter_names():
        assert re.search(rf"\| {name} \| (ran|unchanged) \| [0-9T:-]+Z \| [0-9.]+ \|", page), name


@pytest.mark.slow
def test_second_run_skips_every_notebook(built):
    for name in chapter_names():
        executed_at = (built / "chapters" / f"{name}.ipynb").stat().st_mtime
        assert executed_at < (built / "chapters" / "environment.md").stat().st_mtime
    page = (built / "chapters" / "environment.md").read_text()
    assert "| ran |" not in page and "| unchanged |" in page


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium not installed (tools/system_packages.sh)")
def test_browser_check_kept_a_screenshot(built):
    shot = built / "_build" / "browser-check" / "results.png"
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_results_page_labels_paper_figures_and_the_run_that_made_ours(built):
    """Issue 5: measured figures beside the paper's, with profile, backbone, seed and date of the run."""
    page = built / "_build" / "html" / "chapters" / "04_davr_results.html"
    if "04_davr_results" not in chapter_names():
        pytest.skip("04_davr_results is not written yet")
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<pre.*?</pre>", "", page.read_text(), flags=re.S))
    assert re.search(r"paper", text, flags=re.I), "no figures labelled as the paper's"
    assert "tiny" in text, "the profile of the run is not shown"
    assert re.search(r"\b(random|selfsup|kumar2018)\b", text), "the backbone is not shown"
    assert re.search(r"seed", text, flags=re.I) and re.search(r"\b20\d\d-\d\d-\d\d\b", text), "seed or date missing"
