"""Open the built book in headless Chromium and check every page: no console errors, every figure loaded,
no request leaving the local server. Keeps a screenshot of the results page as a build artefact.

    python tools/browser_check.py book/_build/html --screenshot book/_build/browser-check/results.png

Talks to Chromium over the DevTools protocol on a pipe (``--remote-debugging-pipe``: file descriptors 3 and
4, NUL-separated JSON), so it needs only the standard library and Debian's ``chromium``. Exit status 0 when
every page passed, 1 otherwise (each problem is printed with its page).
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--remote-debugging-pipe", "--window-size=1280,900",
]
RESULTS_PAGES = ("chapters/04_davr_results.html", "chapters/01_audio_features.html")
"""The page whose screenshot is kept: the results chapter, or the first chapter until that one exists."""
PAGE_TIMEOUT_S = 30
SKIPPED = {"genindex.html", "search.html"}

IMAGES_SCRIPT = """
(async () => {
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.complete ? null :
    new Promise(done => { img.addEventListener("load", done); img.addEventListener("error", done); })));
  return JSON.stringify(images.map(img => ({src: img.currentSrc || img.src, ok: img.naturalWidth > 0})));
})()
"""


class DevTools:
    """A DevTools protocol session with one page of a Chromium started on a pipe."""

    def __init__(self, chromium: str, profile_dir: str):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipes() -> None:  # in the child: the protocol's fixed descriptors 3 (commands) and 4 (replies)
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            preexec_fn=wire_pipes, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._messages: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        target = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for message in messages:
                    self._messages.put(json.loads(message))
        self._messages.put(None)

    def call(self, method: str, session: bool = False, timeout_s: float = PAGE_TIMEOUT_S, **params) -> dict:
        """Send one command and wait for its reply; events arriving meanwhile are kept in ``events``."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if reply is None:
                raise RuntimeError(f"Chromium exited: {self.process.stderr.read().decode(errors='replace')[-2000:]}")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, count: int = 1, timeout_s: float = PAGE_TIMEOUT_S) -> None:
        """Wait until ``count`` events ``method`` have arrived (events already received count)."""
        deadline = time.monotonic() + timeout_s
        while sum(e.get("method") == method for e in self.events) < count:
            reply = self._messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if reply is None:
                raise RuntimeError("Chromium exited while a page was loading")
            self.events.append(reply)

    def page_images(self) -> list[dict]:
        """Wait for the page's images; a page that redirects (the book's index.html) is followed first."""
        for loads in range(1, 4):
            self.wait_for("Page.loadEventFired", count=loads)
            try:
                reply = self.call("Runtime.evaluate", session=True, expression=IMAGES_SCRIPT,
                                  awaitPromise=True, returnByValue=True)
            except RuntimeError as exc:
                if "navigated" not in str(exc):
                    raise
                continue
            return json.loads(reply["result"]["value"])
        raise RuntimeError("the page kept navigating away")

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout_s=5)
        except (RuntimeError, queue.Empty):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._to_browser)


def page_problems(events: list[dict], base_url: str) -> list[str]:
    """Console errors, uncaught exceptions, failed loads and off-site requests among DevTools events."""
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            problems.append(f"console error: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            problems.append(f"uncaught exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            problems.append(f"console error: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if not url.startswith((base_url, "data:", "blob:", "about:")):
                problems.append(f"request off the local server: {url}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            problems.append(f"failed to load a resource: {params.get('errorText')}")
    return problems


def serve(directory: Path) -> http.server.ThreadingHTTPServer:
    """Serve ``directory`` on a free local port, quietly, from a daemon thread."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            # Chromium drops a connection it no longer needs (a page navigated away mid-download): the
            # server's traceback would say nothing about the book; a resource that failed to load is
            # caught by the page checks instead
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def check_book(html_dir: Path, screenshot: Path | None, chromium: str = CHROMIUM) -> dict[str, list[str]]:
    """Problems per page of the book in ``html_dir`` (empty lists when all is well)."""
    pages = sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                   if not p.relative_to(html_dir).parts[0].startswith("_") and p.name not in SKIPPED)
    if not pages:
        raise SystemExit(f"browser check: no HTML pages under {html_dir}")
    server = serve(html_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    results: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="ausil-chromium-") as profile:
        browser = DevTools(chromium, profile)
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                browser.call(f"{domain}.enable", session=True)
            for page in pages:
                browser.events.clear()
                browser.call("Page.navigate", session=True, url=base + page)
                images = browser.page_images()
                problems = page_problems(browser.events, base)
                problems += [f"figure not loaded: {img['src']}" for img in images if not img["ok"]]
                results[page] = problems
                status = "ok" if not problems else f"{len(problems)} problem(s)"
                print(f"browser check: {page}: {len(images)} image(s), {status}", flush=True)
                for problem in problems:
                    print(f"    {problem}", flush=True)
            if screenshot is not None:
                take_screenshot(browser, base, html_dir, screenshot)
        finally:
            browser.close()
            server.shutdown()
    return results


def take_screenshot(browser: DevTools, base: str, html_dir: Path, path: Path) -> None:
    """Full-page PNG of the results page (see :data:`RESULTS_PAGES`)."""
    page = next((p for p in RESULTS_PAGES if (html_dir / p).is_file()), None)
    if page is None:
        raise SystemExit(f"browser check: none of {RESULTS_PAGES} was built, nothing to screenshot")
    browser.events.clear()
    browser.call("Page.navigate", session=True, url=base + page)
    browser.page_images()
    png = browser.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(png))
    print(f"browser check: screenshot of {page} in {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the built book, e.g. book/_build/html")
    parser.add_argument("--screenshot", type=Path, default=None, help="PNG to write of the results page")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"browser executable (default {CHROMIUM})")
    args = parser.parse_args(argv)
    if not Path(args.chromium).is_file():
        print(f"browser check: {args.chromium} not found; tools/system_packages.sh installs Debian's chromium",
              file=sys.stderr)
        return 1
    results = check_book(args.html_dir.resolve(), args.screenshot, args.chromium)
    failed = {page: p for page, p in results.items() if p}
    print(f"browser check: {len(results) - len(failed)}/{len(results)} pages clean", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
