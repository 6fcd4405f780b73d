"""The one data root every artefact lives under: ``$AUSIL_DATA``, default ``<repo>/data``."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """Directory for benchmarks, features, models and results; never the working directory."""
    return Path(os.environ.get("AUSIL_DATA", REPO_ROOT / "data")).resolve()
