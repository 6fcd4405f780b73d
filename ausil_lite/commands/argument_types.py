"""Argument types for the commands' parsers: a bad number is an argparse error (usage, one line, exit code
2) at once, not a traceback from deep in the work after the index or the model has been loaded."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    value = int(text)  # not a number: argparse says "invalid positive_int value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value
