"""Baselines that AuSiL is measured against, all behind one interface (:mod:`.interface`).

- ``chamfer``: chamfer similarity of raw MAC segment descriptors (no learning);
- ``pooled``: cosine of one mean-pooled MAC descriptor per video;
- ``landmark``: spectral-peak pair hashes voted over time offsets (Shazam-style);
- ``chromaprint``: Chromaprint words from ``fpcalc -raw``, best alignment by bit error rate.

``make_baseline(name, settings)`` builds one from plain values, rejecting unknown or mistyped keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ausil_lite.baselines.chromaprint import ChromaprintBaseline, ChromaprintConfig
from ausil_lite.baselines.descriptors import ChamferBaseline, PooledBaseline
from ausil_lite.baselines.interface import Baseline
from ausil_lite.baselines.landmark import LandmarkBaseline, LandmarkConfig
from ausil_lite.config import config_from_dict
from ausil_lite.descriptors.extraction import ExtractionConfig

BASELINES: dict[str, tuple[type, type]] = {
    "chamfer": (ChamferBaseline, ExtractionConfig),
    "pooled": (PooledBaseline, ExtractionConfig),
    "landmark": (LandmarkBaseline, LandmarkConfig),
    "chromaprint": (ChromaprintBaseline, ChromaprintConfig),
}
"""Name -> (baseline class, its config dataclass)."""


def make_baseline(name: str, settings: Mapping[str, Any] | None = None) -> Baseline:
    """The baseline ``name`` with its config built from ``settings`` (defaults for missing keys)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}")
    cls, config_cls = BASELINES[name]
    return cls(config_from_dict(config_cls, settings or {}))
