"""Feature extraction on a Dask distributed cluster (``ausil-lite index --scheduler ADDRESS``).

Each video is one task, keyed by its id and the extraction config, so submitting it again (a rerun,
a retried task) is the same task. A worker decodes the file (the media must be readable at the same
path on the workers) and runs the backbone, keeping one extractor per process; the descriptors come
back to this process, which writes each video's feature file (the shard: one atomic file per id) and
index row into the store as soon as its task finishes. A crash loses only the tasks in flight and a
rerun skips what is stored; the store itself need not be visible to the workers.

Bad input (an :class:`~ausil_lite.errors.AudioError`) comes back as a value and is recorded as a
failure of that video; any other error in a task is a bug and propagates.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor
from ausil_lite.descriptors.store import ExtractionSummary, FeatureStore
from ausil_lite.descriptors.workers import extract
from ausil_lite.errors import AudioError

_EXTRACTORS: dict[ExtractionConfig, FeatureExtractor] = {}  # per worker process


def extract_task(path: str, config: ExtractionConfig) -> tuple[np.ndarray, float, str] | AudioError:
    """Run on a worker: ``(descriptors, duration_s, recovery note)``, or the AudioError of a bad file."""
    import torch
    from distributed import get_worker

    torch.set_num_threads(max(1, get_worker().state.nthreads))  # the worker's share of cores, not all of them
    if config not in _EXTRACTORS:
        _EXTRACTORS[config] = FeatureExtractor(config)
    try:
        return extract(path, _EXTRACTORS[config])  # streamed: hours of audio fit a worker
    except AudioError as exc:
        return exc


def task_key(video_id: str, config: ExtractionConfig) -> str:
    digest = hashlib.sha1(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:12]
    return f"ausil-extract-{video_id}-{digest}"


def extract_on_cluster(
    videos: list[tuple[str, str | Path]],
    store: FeatureStore,
    config: ExtractionConfig,
    scheduler: str,
    retry_failed: bool = False,
    progress: bool = True,
) -> ExtractionSummary:
    """Extract ``(id, path)`` pairs on the cluster at ``scheduler`` into ``store``, skipping stored ids.

    Same contract as :func:`ausil_lite.descriptors.store.extract_videos`: failures are recorded with their reason
    and the batch goes on; ids that failed before are skipped unless ``retry_failed``.
    """
    from distributed import Client, as_completed

    started = time.perf_counter()
    todo, summary = store.plan_extraction(videos, config, retry_failed)
    if todo:
        with Client(scheduler) as client:
            futures = {
                client.submit(extract_task, path, config, key=task_key(vid, config), retries=0): (vid, path)
                for vid, path in todo
            }
            bar = tqdm(total=len(todo), desc="extract (dask)", unit="video", disable=not progress, file=sys.stderr)
            for future, result in as_completed(futures, with_results=True):
                vid, path = futures[future]
                summary.record(store, vid, path, result)
                client.cancel(future)  # release the result on the worker
                bar.set_postfix(failed=len(summary.failed))
                bar.update()
            bar.close()
    summary.wall_seconds = time.perf_counter() - started
    return summary
