"""``ausil-lite``: the command line. Each subcommand lives in ``ausil_lite/commands/<name>.py`` and
exposes ``register(subparsers)``, which adds its parser and sets ``run`` (args -> exit code)."""

from __future__ import annotations

import argparse
import functools
import importlib
import signal
import sys
import threading
import warnings

from ausil_lite.commands.model_choice import DEFAULT_HELP
from ausil_lite.errors import CorruptStreamWarning, InputError

COMMANDS = [
    "ausil_lite.commands.extract",
    "ausil_lite.commands.similarity",
    "ausil_lite.commands.evaluate",
    "ausil_lite.commands.index",
    "ausil_lite.commands.query",
    "ausil_lite.commands.benchmark",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ausil-lite",
        description="Duplicate audio video retrieval after AuSiL (ICPR 2020): extract audio descriptors, "
        "score similarities, evaluate, and search your own collection. " + DEFAULT_HELP
        + " A query uses the model its index was built with.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # a file name that is not valid UTF-8 is printed with its odd bytes escaped, never a crash mid-batch
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    show_warning = warnings.showwarning
    warnings.showwarning = functools.partial(_show_warning, show_warning)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        kept = " (finished videos stay stored; a rerun goes on from there)" if args.command in ("extract", "index") else ""
        print(f"ausil-lite {args.command}: interrupted{kept}", file=sys.stderr)
        return 130
    except InputError as exc:
        print(f"ausil-lite {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:
            raise
        # the system refused a path the user gave (an --output that is a file, a folder not writable): plain
        # misuse, to be told in one line, not a bug to show a traceback for
        print(f"ausil-lite {args.command}: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = show_warning
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _show_warning(otherwise, message, category, *args, **kwargs) -> None:
    """A damaged input file (say a query decoded only in part) is a WARNING line for the user, not Python's
    two-line warning with our source file and line; other warnings go to ``otherwise`` (Python's form)."""
    if issubclass(category, CorruptStreamWarning):
        print(f"WARNING: {message}", file=sys.stderr)
    else:
        otherwise(message, category, *args, **kwargs)


def _interrupt(signum, frame) -> None:
    """SIGTERM (``timeout``, a scheduler) ends a command as Ctrl-C does: extraction workers stopped, one line said."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
