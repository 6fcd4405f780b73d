"""The results chapters' parameters, the paper's benchmarks when present, and their tables.

``notebooks/04_davr_results.ipynb`` scores every method (:mod:`ausil_lite.study.method_scores`) and tabulates
mAP per benchmark, per transformation family and as PR curves; ``notebooks/05_speed.ipynb`` reads the
same similarity files and plots mAP against the speed and tempo factor (:mod:`ausil_lite.evaluation.breakdown`).
Everything a table needs is computed here, so the notebooks only arrange and explain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from ausil_lite.datasets.benchmark import AnnotationError, Benchmark
from ausil_lite.datasets.fivr import load_fivr200k_alpha
from ausil_lite.datasets.svd import load_svd_alpha
from ausil_lite.descriptors.extraction import BACKBONES
from ausil_lite.descriptors.speeds import best_over_variants
from ausil_lite.evaluation.breakdown import breakdown, breakdown_table, changed_positives, subset_map
from ausil_lite.evaluation.protocol import RECALL_LEVELS, evaluate_benchmark, read_similarities
from ausil_lite.similarity.chamfer import CHAMFER_RULES
from ausil_lite.study.method_scores import KINDS, MEDIA_KINDS, SPEEDS_SUFFIX, ScoredMethod

V = TypeVar("V")

NOT_AVAILABLE = "not available here"


def _csv_names(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose from {list(allowed)}")
    return names


@dataclass(frozen=True)
class DavrResultsChapter:
    """Chapter 4 (``notebooks/04_davr_results.ipynb``): where the inputs are, what to score, where results go."""

    profile: str
    davr_root: str  # a built DAVR-mini
    features_root: str  # its feature stores, one folder per backbone
    models_root: str  # trained models, ausil-<backbone>/
    results_dir: str  # similarities/ and the tables (CSV) are written here
    cache_root: str  # fingerprint caches of the media baselines, one folder per baseline
    fivr_root: str  # FIVR-200K files (annotation.json, youtube_ids.txt, media or videos.txt), if any
    svd_root: str  # SVD-alpha files, if any
    paper_features_root: str  # feature stores of the paper's benchmarks: <root>/fivr200k-alpha/<backbone>/, svd-alpha/
    backbones: str  # comma-separated backbones to score; "" scores every one with a feature store
    media_baselines: str  # comma-separated subset of "landmark,chromaprint"
    workers: int  # threads fingerprinting media (fpcalc runs one subprocess per file)
    device: str | None  # torch device of the AuSiL models; None: CUDA when available
    force: bool  # rescore even when a similarity file is up to date

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        _csv_names(self.backbones, BACKBONES, "backbone(s)")
        _csv_names(self.media_baselines, MEDIA_KINDS, "media baseline(s)")

    @property
    def backbone_list(self) -> tuple[str, ...]:
        return _csv_names(self.backbones, BACKBONES, "backbone(s)")

    @property
    def media_list(self) -> tuple[str, ...]:
        return _csv_names(self.media_baselines, MEDIA_KINDS, "media baseline(s)")

    @property
    def similarities_dir(self) -> Path:
        return Path(self.results_dir) / "similarities"


@dataclass(frozen=True)
class SpeedChapter:
    """Chapter 5 (``notebooks/05_speed.ipynb``): the benchmark and the similarity files of chapter 4."""

    profile: str
    davr_root: str
    results_dir: str  # chapter 4's results: similarities/<method>.json
    target_speed_map: float  # the bar for speed-changed duplicates, drawn on the plot

    def __post_init__(self) -> None:
        if not 0.0 < self.target_speed_map <= 1.0:
            raise ValueError(f"target_speed_map must be in (0, 1], got {self.target_speed_map}")


# --- the paper's benchmarks -----------------------------------------------------------------------------------

PAPER_BENCHMARKS = {"FIVR-200K-alpha": "fivr200k-alpha", "SVD-alpha": "svd-alpha"}
"""Benchmark name -> folder name of its feature stores (as the reproduce page's commands write them)."""


def paper_benchmark(name: str, root: str | Path) -> tuple[Benchmark | None, str]:
    """The paper's benchmark ``name`` read from ``root``, or None and why it is not here."""
    root = Path(root)
    needed = {"FIVR-200K-alpha": ["annotation.json", "youtube_ids.txt"],
              "SVD-alpha": ["annotation.json|metadata/test_groundtruth"]}[name]
    present = all(any((root / alt).is_file() for alt in need.split("|")) for need in needed)
    if not present:
        files = ", ".join(n.replace("|", " or ") for n in needed)
        return None, (f"no {name} annotation files at {root} ({files}); its videos cannot be fetched "
                      "from this project's machines (see 'Reproduce with the original data')")
    try:
        bench = load_fivr200k_alpha(root) if name == "FIVR-200K-alpha" else load_svd_alpha(root)
    except AnnotationError as exc:
        return None, f"{name} files at {root} could not be read: {exc}"
    return bench, ""


# --- tables ------------------------------------------------------------------------------------------------


def _order(name: str) -> tuple[int, str]:
    kind = name.split("-")[0]
    return (KINDS.index(kind) if kind in KINDS else len(KINDS), name)


def load_similarity_files(directory: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """Every ``<method>.json`` similarity file in ``directory`` (not the ``.meta.json`` records), in method order."""
    directory = Path(directory)
    paths = [p for p in directory.glob("*.json") if not p.name.endswith(".meta.json")]
    if not paths:
        raise FileNotFoundError(f"{directory}: no similarity files; run the DAVR-mini results chapter first")
    return {p.stem: read_similarities(p) for p in sorted(paths, key=lambda p: _order(p.stem))}


def load_meta(directory: str | Path, method: str) -> dict:
    return json.loads((Path(directory) / f"{method}.meta.json").read_text(encoding="utf-8"))


def method_rows(scored: Sequence[ScoredMethod], benchmark: Benchmark) -> pd.DataFrame:
    """One row per method: provenance, mAP under both conventions, counts."""
    rows = []
    for s in scored:
        keep = evaluate_benchmark(s.similarities, benchmark, convention="keep")
        remove = evaluate_benchmark(s.similarities, benchmark, convention="remove")
        rows.append({
            "method": s.method.name, "kind": s.method.kind, "backbone": s.meta.get("backbone") or "-",
            "seed": "-" if s.meta.get("seed") is None else s.meta["seed"],
            "mAP (keep)": keep.mean_ap, "mAP (remove)": remove.mean_ap,
            "queries": len(keep.average_precisions), "not scored": len(s.meta["failed"]),
            "scored (UTC)": s.meta["scored_at"][:10], "reused": s.reused,
        })
    return pd.DataFrame(rows).set_index("method")


def pr_curves(methods: Mapping[str, Mapping], benchmark: Benchmark) -> pd.DataFrame:
    """21-point interpolated precision (rows: recall levels) of each method (columns), ``keep`` convention."""
    return pd.DataFrame(
        {name: evaluate_benchmark(sims, benchmark).precision_curve for name, sims in methods.items()},
        index=pd.Index(np.round(RECALL_LEVELS, 2), name="recall"),
    )


def speed_changed_maps(methods: Mapping[str, Mapping], benchmark: Benchmark, column: str = "speed") -> pd.Series:
    """mAP of each method over the positives with any ``column`` (speed or tempo) change, combinations included."""
    relevant = changed_positives(benchmark, column)
    return pd.Series({name: subset_map(sims, benchmark, relevant).mean_ap for name, sims in methods.items()},
                     name=f"{column}-changed mAP")


def penalty_sweep(
    variant_sims: Mapping[str, Mapping[str, float]], benchmark: Benchmark, penalties: Sequence[float]
) -> pd.DataFrame:
    """What :data:`ausil_lite.descriptors.speeds.VARIANT_PENALTY` trades, one row per penalty: the mAP of
    :func:`best_over_variants` at that penalty, on speed-changed duplicates, and on the family it does
    worst on (``variant_sims``: :func:`ausil_lite.study.method_scores.variant_similarities`). An infinite
    penalty gives the model without speed hypotheses."""
    rows, speed_changed = [], changed_positives(benchmark)
    for penalty in penalties:
        sims = best_over_variants(variant_sims, penalty)
        families = breakdown(sims, benchmark, "family").set_index("group")["mAP"]
        rows.append({"penalty": penalty, "mAP": evaluate_benchmark(sims, benchmark).mean_ap,
                     "speed-changed mAP": subset_map(sims, benchmark, speed_changed).mean_ap,
                     "lowest family mAP": families.min(), "lowest family": families.idxmin()})
    return pd.DataFrame(rows).set_index("penalty")


def study_methods(methods: Mapping[str, V]) -> dict[str, V]:
    """``methods`` by name, without those made with the released model's backbone: the models the study trains
    itself and the baselines, which the study's targets compare (chapter 8 holds the released model to its own)."""
    return {name: value for name, value in methods.items()
            if not name.removesuffix(SPEEDS_SUFFIX).endswith("-released")}


def choose_chamfer_rule(table: pd.DataFrame) -> str:
    """The chamfer rule whose ``<rule>-speeds`` row of ``table`` (one row per rule, with and without speed hypotheses,
    as ``benchmarks/chamfer_rule.py`` scores DAVR-dev) has the best (mAP, speed-changed mAP); ``query``, the rule
    every model trains with, on a tie."""
    rows = {rule: table.loc[f"{rule}{SPEEDS_SUFFIX}"] for rule in CHAMFER_RULES}
    return max(rows, key=lambda rule: (rows[rule]["mAP"], rows[rule]["speed-changed"], rule == "query"))


def target_checks(
    methods: Mapping[str, Mapping], benchmark: Benchmark, overall: float = 0.95, speed: float = 0.90
) -> tuple[str | None, pd.DataFrame]:
    """The study's targets for the best AuSiL-lite model: its name and one row per target (value, bar, met).

    The best model is the ``ausil-*`` method with the highest mAP; the bars: mAP >= ``overall``; on every
    transformation family, mAP >= that of every baseline; mAP on speed-changed duplicates >= ``speed``.
    """
    ausil = {n: s for n, s in methods.items() if n.startswith("ausil-")}
    if not ausil:
        return None, pd.DataFrame(columns=["value", "bar", "met"])
    maps = {n: evaluate_benchmark(s, benchmark).mean_ap for n, s in ausil.items()}
    best = max(maps, key=maps.get)
    baselines = {n: s for n, s in methods.items() if not n.startswith("ausil-")}
    families = breakdown_table({best: ausil[best], **baselines}, benchmark, "family")
    margin = families.loc[best] - families.drop(index=best).max() if baselines else families.loc[best] * 0
    worst_family = margin.idxmin()
    speed_map = speed_changed_maps({best: ausil[best]}, benchmark)[best]
    rows = {
        "mAP over all queries": (maps[best], overall, maps[best] >= overall),
        f"least margin over the best baseline, per family ({worst_family})": (
            float(margin.min()), 0.0, bool((margin >= 0).all())),
        "mAP on speed-changed duplicates": (speed_map, speed, speed_map >= speed),
    }
    return best, pd.DataFrame.from_dict(rows, orient="index", columns=["value", "bar", "met"])
