"""Run a baseline over video lists: fingerprint each video once, then score every query against the
database into the original's similarity format ``{query_id: {video_id: similarity}}``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ausil_lite.baselines.cache import FingerprintCache
from ausil_lite.baselines.interface import Baseline
from ausil_lite.descriptors.store import FeatureStore, StoreError
from ausil_lite.errors import AudioError

Videos = Sequence[tuple[str, str | Path]]


@dataclass
class FingerprintBatch:
    """Fingerprints by id, and the ids whose audio could not be read, with the reason (naming the file)."""

    fingerprints: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def fingerprint_videos(
    baseline: Baseline, videos: Videos, cache: FingerprintCache | None = None, progress: bool = False
) -> FingerprintBatch:
    """Fingerprint ``(id, path)`` pairs, reading from and writing to ``cache`` when given.

    Bad media (any :class:`ausil_lite.errors.AudioError`) is recorded in ``failed`` and the batch
    goes on; every other error propagates.
    """
    batch = FingerprintBatch()
    for video_id, path in tqdm(videos, desc=baseline.name, unit="video", disable=not progress, file=sys.stderr):
        if video_id in batch.fingerprints or video_id in batch.failed:
            continue
        if cache is not None and cache.has(video_id):
            batch.fingerprints[video_id] = cache.load(video_id)
            continue
        try:
            fingerprint = baseline.fingerprint(Path(path))
        except AudioError as exc:
            batch.failed[video_id] = str(exc)
            continue
        if cache is not None:
            cache.save(video_id, fingerprint)
        batch.fingerprints[video_id] = fingerprint
    return batch


def store_fingerprints(baseline: Baseline, store: FeatureStore, ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Fingerprints of a descriptor baseline (``chamfer``, ``pooled``) from a feature store's descriptors.

    The store must have been made with the baseline's extraction settings (checked as the store
    checks a new extraction: device and batch size may differ); ``ids`` default to all stored ones.
    """
    if not store.config_path.is_file():
        raise StoreError(f"{store.root}: not a feature store (no config.json)")
    store.bind(baseline.config)
    return {vid: baseline.from_descriptors(store.load(vid)) for vid in (store.ids() if ids is None else ids)}


def similarity_json(
    baseline: Baseline, queries: Mapping[str, Any], database: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    """``{query_id: {video_id: score}}`` for every query against every database fingerprint."""
    return {
        q: {v: baseline.score(query, candidate) for v, candidate in database.items()}
        for q, query in queries.items()
    }


def compare_videos(
    baseline: Baseline,
    queries: Videos,
    database: Videos,
    cache_root: str | Path | None = None,
    progress: bool = False,
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Similarities of query videos against database videos, and the ids that failed (id -> reason).

    Ids in both lists are fingerprinted once; failed ids are left out of the similarities, so the
    evaluation counts them as misses or drops them, as its convention says.
    """
    cache = FingerprintCache(cache_root, baseline) if cache_root is not None else None
    batch = fingerprint_videos(baseline, list(queries) + list(database), cache, progress)
    found = batch.fingerprints
    query_fps = {vid: found[vid] for vid, _ in queries if vid in found}
    database_fps = {vid: found[vid] for vid, _ in database if vid in found}
    return similarity_json(baseline, query_fps, database_fps), batch.failed
