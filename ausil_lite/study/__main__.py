"""``python -m ausil_lite.study --profile ci``: run the study's notebooks, then build and check the book.

Exit status 0 when every step passed; 1 with a message naming the failing notebook and cell, or the
failing build or browser check.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from ausil_lite.paths import REPO_ROOT
from ausil_lite.study.book import build_book, write_book_pages
from ausil_lite.study.plan import StudyError, load_plan
from ausil_lite.study.runner import run_notebooks

BROWSER_CHECK = REPO_ROOT / "tools" / "browser_check.py"
BROWSER_TIMEOUT_S = 300


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        plan = load_plan(args.notebooks / "profiles.yaml")
        profile = plan.profile(args.profile)
        runs = run_notebooks(
            plan, profile, args.notebooks.resolve(), args.book.resolve() / "chapters", force=args.force, dry_run=args.dry_run
        )
        if args.dry_run:
            return 0
        write_book_pages(args.book, runs, profile.name)
        if not args.no_build:
            print("study: building the book (strict)", flush=True)
            html = build_book(args.book)
            if not args.no_browser_check:
                screenshot = args.book / "_build" / "browser-check" / "results.png"
                try:
                    check = subprocess.run(
                        [sys.executable, str(BROWSER_CHECK), str(html), "--screenshot", str(screenshot)],
                        timeout=BROWSER_TIMEOUT_S,
                    )
                except subprocess.TimeoutExpired as exc:
                    raise StudyError(f"browser check did not finish in {BROWSER_TIMEOUT_S} s") from exc
                if check.returncode != 0:
                    raise StudyError(f"browser check failed (exit {check.returncode}); see its report above")
    except StudyError as exc:
        print(f"study: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"study: profile {profile.name} done in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
