"""``python -m ausil_lite.study --profile ci``: run the study's notebooks, then build and check the book.

Exit status 0 when every step passed; 1 with a message naming the failing notebook and cell, or the
failing build or browser check.
"""

from __future__ import annotations

import argparse
import fcntl
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ausil_lite.paths import REPO_ROOT
from ausil_lite.study.book import build_book, write_book_pages
from ausil_lite.study.plan import StudyError, load_plan
from ausil_lite.study.runner import run_notebooks

BROWSER_CHECK = REPO_ROOT / "tools" / "browser_check.py"
BROWSER_TIMEOUT_S = 300


@contextmanager
def exclusive(lock_path: Path):
    """Hold an exclusive lock for one study run: two runs writing the same chapters would corrupt each other."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StudyError(f"another study run holds {lock_path}; wait for it to finish") from exc
        yield


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ausil_lite.study", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci", help="profile in notebooks/profiles.yaml (default: ci)")
    parser.add_argument("--force", action="store_true", help="run every notebook, even those unchanged")
    parser.add_argument("--dry-run", action="store_true", help="say which notebooks would run and why; run nothing")
    parser.add_argument("--no-build", action="store_true", help="run the notebooks only; do not build the book")
    parser.add_argument("--no-browser-check", action="store_true", help="build the book but skip the Chromium check")
    parser.add_argument("--notebooks", type=Path, default=REPO_ROOT / "notebooks", help="notebooks and profiles.yaml")
    parser.add_argument("--book", type=Path, default=REPO_ROOT / "book", help="book source; chapters go to BOOK/chapters")
    return parser.parse_args(argv)


def check_in_browser(html: Path, screenshot: Path) -> None:
    """Run tools/browser_check.py on the built book; it keeps ``screenshot`` of the results page."""
    command = [sys.executable, str(BROWSER_CHECK), str(html), "--screenshot", str(screenshot)]
    try:
        check = subprocess.run(command, timeout=BROWSER_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise StudyError(f"browser check did not finish in {BROWSER_TIMEOUT_S} s") from exc
    if check.returncode != 0:
        raise StudyError(f"browser check failed (exit {check.returncode}); see its report above")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    notebooks, chapters = args.notebooks.resolve(), args.book.resolve() / "chapters"
    try:
        plan = load_plan(notebooks / "profiles.yaml")
        profile = plan.profile(args.profile)
        if args.dry_run:
            run_notebooks(plan, profile, notebooks, chapters, force=args.force, dry_run=True)
            return 0
        with exclusive(chapters / ".study.lock"):
            runs = run_notebooks(plan, profile, notebooks, chapters, force=args.force)
            write_book_pages(args.book, runs, profile.name)
            if not args.no_build:
                print("study: building the book (strict)", flush=True)
                html = build_book(args.book)
                if not args.no_browser_check:
                    check_in_browser(html, args.book / "_build" / "browser-check" / "results.png")
    except StudyError as exc:
        print(f"study: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"study: profile {profile.name} done in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
