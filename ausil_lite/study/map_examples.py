"""Similarity maps of chosen DAVR-mini pairs before and after the video comparator, and what they show.

The similarity-maps chapter picks, from the benchmark's item table, one pair of each kind
(:data:`KINDS`): a plain duplicate, a partial duplicate (cropped, or embedded in unrelated audio), a
speed-changed duplicate and a hard negative (another stretch of the query's own recording). For each
it asks the trained model for the segment-by-segment similarity matrix and the comparator's output
(:meth:`ausil_lite.similarity.model.AuSiL.similarity_maps`), and summarises both maps by numbers the
prose can cite: chamfer similarity, mean, the contrast between them, and the slope of the matching
diagonal (a speed factor f should give 1/f candidate segments per query segment).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ausil_lite.paths import data_root

KINDS = ("duplicate", "partial", "speed", "hard negative")
DUPLICATE_FAMILIES = ("reencode", "gain", "noise", "reverb", "telephone")
"""Whole-clip duplicates without a change of time scale, preferred in this order."""
PARTIAL_FAMILIES = ("embed", "crop")


@dataclass(frozen=True)
class MapsConfig:
    """Parameters of the similarity-maps chapter (plain values)."""

    profile: str = "ci"
    seed: int = 0  # picks among equally suitable pairs
    device: str | None = None
    benchmark_dir: str | None = None  # default data_root()/davr-mini/<profile>
    features_dir: str | None = None  # default data_root()/features/davr-mini-<profile>
    models_dir: str | None = None  # default data_root()/models/<profile>
    backbone: str = "random"  # whose features and trained model are shown

    @property
    def benchmark_root(self) -> Path:
        return Path(self.benchmark_dir) if self.benchmark_dir else data_root() / "davr-mini" / self.profile

    @property
    def store_dir(self) -> Path:
        root = Path(self.features_dir) if self.features_dir else data_root() / "features" / f"davr-mini-{self.profile}"
        return root / self.backbone

    @property
    def model_dir(self) -> Path:
        root = Path(self.models_dir) if self.models_dir else data_root() / "models" / self.profile
        return root / f"ausil-{self.backbone}"


@dataclass(frozen=True)
class Example:
    kind: str  # one of KINDS
    query: str
    candidate: str
    family: str
    detail: str  # the transformation in words, e.g. "speed x1.40"
    speed: float | None  # overall speed factor of the candidate (None when unchanged)


def _describe(row: pd.Series) -> str:
    params = json.loads(row["params"]) if row["params"] else {}
    if row["family"] == "combo":
        return " + ".join(step["family"] for step in params.get("steps", []))
    if row["family"] == "speed":
        return f"speed x{float(params['factor']):.2f}"
    shown = {k: v for k, v in params.items() if not k.endswith("seed")}
    return row["family"] + (" (" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else "")


def pick_examples(table: pd.DataFrame, available: set[str] | None = None, seed: int = 0) -> list[Example]:
    """One pair per kind of :data:`KINDS` from DAVR-mini's ``items.csv`` table (``bench.table``).

    Plain duplicates come from the first family of :data:`DUPLICATE_FAMILIES` present; partial ones
    prefer ``embed``; the speed example has the factor farthest from 1 (the clearest tilt); the hard
    negative is another stretch of the query's recording (label ``ST``) when there is one. Pairs whose
    query or candidate is not in ``available`` (e.g. a feature store's ids) are skipped. Raises
    ``ValueError`` naming a kind the table cannot supply.
    """
    rows = table.copy()
    if available is not None:
        rows = rows[rows["id"].isin(available) & rows["query"].isin(available)]
    rng = np.random.default_rng(seed)

    def one(candidates: pd.DataFrame, kind: str) -> pd.Series:
        if candidates.empty:
            raise ValueError(f"no {kind} pair in the item table (with features)")
        return candidates.iloc[int(rng.integers(len(candidates)))]

    positives = rows[rows["role"] == "positive"]
    examples = []
    for family in DUPLICATE_FAMILIES:
        if (positives["family"] == family).any():
            row = one(positives[positives["family"] == family].sort_values("id"), "duplicate")
            break
    else:
        raise ValueError(f"no duplicate pair of families {DUPLICATE_FAMILIES} in the item table")
    examples.append(row)
    partial = positives[positives["family"].isin(PARTIAL_FAMILIES)]
    partial = partial[partial["family"] == "embed"] if (partial["family"] == "embed").any() else partial
    examples.append(one(partial.sort_values("id"), "partial"))
    speed = positives[positives["family"] == "speed"]
    if not speed.empty:
        distance = np.abs(np.log(speed["speed"].astype(float)))
        speed = speed[np.isclose(distance, distance.max())]
    examples.append(one(speed.sort_values("id"), "speed"))
    negatives = rows[rows["role"] == "hard_negative"]
    negatives = negatives[negatives["label"] == "ST"] if (negatives["label"] == "ST").any() else negatives
    examples.append(one(negatives.sort_values("id"), "hard negative"))
    return [
        Example(kind, str(r["query"]), str(r["id"]), str(r["family"]), _describe(r),
                None if pd.isna(r["speed"]) or r["speed"] == "" else float(r["speed"]))
        for kind, r in zip(KINDS, examples)
    ]


def chamfer(sim: np.ndarray) -> float:
    """Chamfer similarity of one (X, Y) map: mean over query rows of the best candidate column."""
    return float(np.asarray(sim).max(axis=1).mean())


def diagonal_slope(sim: np.ndarray) -> float:
    """Candidate segments per query segment along the best match, fitted over the rows' maxima.

    A duplicate at the same speed gives about 1; a candidate sped up by f gives about 1/f. Rows are
    weighted by their best value, so rows that match nothing barely pull the fit.
    """
    sim = np.asarray(sim, dtype=np.float64)
    if sim.shape[0] < 2:
        raise ValueError(f"need at least two query rows to fit a slope, got {sim.shape}")
    rows = np.arange(sim.shape[0])
    cols = sim.argmax(axis=1)
    weights = np.clip(sim.max(axis=1), 1e-6, None)
    slope, _ = np.polyfit(rows, cols, 1, w=np.sqrt(weights))
    return float(slope)


def map_summary(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """Numbers for one pair: chamfer, mean and contrast (chamfer - mean) of each map, and the
    diagonal's slope before the comparator. ``after`` is clipped to [-1, 1] as the model scores it."""
    after = np.clip(after, -1.0, 1.0)
    out = {}
    for name, sim in (("before", before), ("after", after)):
        out[f"chamfer_{name}"] = chamfer(sim)
        out[f"mean_{name}"] = float(np.mean(sim))
        out[f"contrast_{name}"] = out[f"chamfer_{name}"] - out[f"mean_{name}"]
    out["slope_before"] = diagonal_slope(before)
    return out
