"""Extraction in worker processes, in one of two shapes chosen by where the network runs.

- **On a CPU, whole files side by side.** Each worker holds its own copy of the network (the fast one compiled
  once a process) and turns a file into descriptors: decode, resample, log-mel and the network, on
  ``threads`` torch threads. A single process cannot keep two cores busy: decoding is serial, and a
  network on two threads beside a decode worker on a third stalls on the cores they share (measured on
  2 cores, 160 clips of 15 s, fast network: 149x realtime with a decode worker and the network on two
  threads here, 190x with it on one, 276x with two whole-file workers of one thread each).
- **On a GPU, first reads ahead.** Workers decode and make each file's mel power
  (:func:`~ausil_lite.descriptors.extraction.scan_audio`), and the process that owns the GPU runs the
  network, so one device serves every worker.

Either way results come back in the order the files were given, with a bounded read-ahead, so an
interrupted batch wastes little; a file that cannot be read comes back as its ``AudioError``, and any
other error (a bug) is raised in the caller.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ausil_lite.descriptors.backbone import resolve_device
from ausil_lite.descriptors.extraction import AudioScan, ExtractionConfig, FeatureExtractor, scan_audio
from ausil_lite.errors import AudioError

MAX_DEFAULT_WORKERS = 8
"""Most worker processes a command starts when told nothing: each holds torch and a network (peaks near 0.9 GB)."""

_extractor: FeatureExtractor | None = None
"""A whole-file worker's network, built once by :func:`_init_worker`."""


def usable_cores() -> int:
    """Cores this process may run on (its affinity, which a container or ``taskset`` may narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers() -> int:
    """The commands' worker count when told nothing: one a usable core, at most :data:`MAX_DEFAULT_WORKERS`."""
    return min(usable_cores(), MAX_DEFAULT_WORKERS)


def on_cpu(config: ExtractionConfig) -> bool:
    """Whether workers extract whole files (the network on the CPU) rather than read ahead of a GPU."""
    return resolve_device(config.device).type == "cpu"


def scan(path: str | Path) -> tuple[AudioScan, str]:
    """A file's first read (a few numbers, and the mel power frames of a file up to ``KEEP_SECONDS``) and any
    recovery warning, as text."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = scan_audio(path)
    return found, "; ".join(str(w.message) for w in caught)


def extract(path: str | Path, extractor: FeatureExtractor) -> tuple[np.ndarray, float, str]:
    """A whole file's ``(descriptors, seconds of audio, recovery note)``."""
    found, note = scan(path)
    return extractor.from_file(path, found), found.seconds, note


def _extract_here(path: str) -> tuple[np.ndarray, float, str]:
    """Worker job: :func:`extract` with the worker's own network."""
    return extract(path, _extractor)


class ExtractionWorkers:
    """``workers`` processes that extract files for ``config``: whole files on a CPU, first reads for a GPU.

    Reusable across batches (a whole-file worker builds its network, and compiles the fast one, once);
    close it, or use it as a context manager. ``threads`` is each whole-file worker's torch threads (default:
    the usable cores shared out among the workers); a first-read worker uses one. ``whole_files`` overrides
    the shape that the network's device chooses.
    """

    def __init__(self, config: ExtractionConfig, workers: int, threads: int | None = None,
                 whole_files: bool | None = None):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.config = config
        self.workers = workers
        self.whole_files = on_cpu(config) if whole_files is None else whole_files
        threads = threads or max(1, usable_cores() // workers)
        # forkserver: children must not inherit the parent's OpenMP thread pool (fork can deadlock torch)
        self._pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("forkserver"), initializer=_init_worker,
            initargs=(config, threads) if self.whole_files else (None, 1))

    def results(self, paths: Iterable[tuple[str, str | Path]]) -> Iterator[tuple[str, str | Path, object]]:
        """``(id, path, result | AudioError)`` in order: a whole file's :func:`extract` result, or a first read's
        :func:`scan` result. An interruption (Ctrl-C, SIGTERM, an error) ends the workers at once."""
        job = _extract_here if self.whole_files else scan
        pending: deque[tuple[str, str | Path, Future]] = deque()
        items = iter(paths)
        finished = False
        try:
            while True:
                while len(pending) < 2 * self.workers:  # bounded read-ahead: an interruption wastes little
                    nxt = next(items, None)
                    if nxt is None:
                        break
                    pending.append((nxt[0], nxt[1], self._pool.submit(job, nxt[1])))
                if not pending:
                    finished = True
                    return
                vid, path, future = pending.popleft()
                try:
                    yield vid, path, future.result()
                except AudioError as exc:
                    yield vid, path, exc
        finally:
            if not finished:
                self.close(terminate=True)

    def close(self, terminate: bool = False) -> None:
        """Let the workers finish and exit; ``terminate`` ends the jobs in flight now, not after them."""
        if terminate:
            # _processes is private, but the only handle on the workers before Python 3.14's terminate_workers()
            for process in list((self._pool._processes or {}).values()):
                process.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
        else:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> ExtractionWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close(terminate=exc[0] is not None)


def _init_worker(config: ExtractionConfig | None, threads: int) -> None:
    global _extractor
    import torch

    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole terminal group: the parent ends us
    threading.Thread(target=_exit_with_parent, daemon=True, name="exit-with-parent").start()
    if config is not None:
        _extractor = FeatureExtractor(config)


def _exit_with_parent() -> None:
    """Worker thread: end this process as soon as the one that started it is gone.

    A parent killed outright (SIGKILL, or SIGTERM outside the command line) runs no cleanup, and its
    workers, blocked on the task queue or busy with a long file, would live on for good.
    """
    multiprocessing.connection.wait([multiprocessing.parent_process().sentinel])
    os._exit(1)
