"""A feature store: one ``.npy`` file of descriptors per video plus an index table, and resumable
batch extraction into it.

Layout under ``root``::

    config.json         extraction config, git commit, version: a store never mixes backbones or precisions
    features/<id>.npy   float32 (segments, 2528)
    index.csv           id, source, duration (s), segments, status (ok | partial | failed), error

Each finished video is written atomically and appended to the index at once, so a crash loses at
most the video in flight, and a rerun skips what is done. A crash mid-append leaves a torn last row
(no line end): it is left out when the index is read and cut off before the next append, so that
video is extracted again. A feature file recorded as done but shorter than its header says (a crash
before the file reached the disk) is extracted again too.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import warnings
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format
import pandas as pd
from tqdm import tqdm

from ausil_lite.config import provenance
from ausil_lite.descriptors.extraction import AudioScan, ExtractionConfig, FeatureExtractor, describe_extraction, same_descriptors, scan_audio
from ausil_lite.errors import AudioError, InputError

INDEX_COLUMNS = ["id", "source", "duration", "segments", "status", "error"]
DONE = ("ok", "partial")
PATH_ERRORS = "surrogateescape"
"""How text files holding paths encode them: a file name that is not valid UTF-8 (Python holds its bytes
as lone surrogates) is written back as the same bytes, so the recorded source still opens the file."""


class StoreError(InputError):
    """A store that cannot be used as asked (another backbone's features, a bad id, a missing item)."""


class FeatureStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.features_dir = self.root / "features"
        self.index_path = self.root / "index.csv"
        self.config_path = self.root / "config.json"

    def feature_path(self, video_id: str) -> Path:
        if not video_id or "/" in video_id or "\\" in video_id or video_id.startswith(".") or any(c.isspace() for c in video_id):
            raise StoreError(f"{self.root}: id {video_id!r} cannot name a feature file")
        return self.features_dir / f"{video_id}.npy"

    @property
    def index(self) -> pd.DataFrame:
        """The index, one row per id (the latest record wins when a video was retried), without a torn last row."""
        complete = self._complete_rows()
        if not complete:
            return pd.DataFrame(columns=INDEX_COLUMNS)
        try:
            table = pd.read_csv(io.BytesIO(complete), dtype={"id": str, "source": str, "error": str},
                                keep_default_na=False, encoding_errors=PATH_ERRORS)
        except (ValueError, pd.errors.ParserError) as exc:
            raise StoreError(f"{self.index_path}: unreadable store index ({exc})") from exc
        if list(table.columns) != INDEX_COLUMNS:
            raise StoreError(f"{self.index_path}: expected columns {INDEX_COLUMNS}, found {list(table.columns)}")
        return table.drop_duplicates("id", keep="last").reset_index(drop=True)

    def _complete_rows(self) -> bytes:
        """The index file's bytes up to its last line end: every row it holds whole."""
        if not self.index_path.is_file():
            return b""
        data = self.index_path.read_bytes()
        return data[: data.rfind(b"\n") + 1]

    def ids(self) -> list[str]:
        """Ids with stored descriptors, in the order they were extracted."""
        table = self.index
        return table.loc[table["status"].isin(DONE), "id"].tolist()

    def has(self, video_id: str) -> bool:
        return self.feature_path(video_id).is_file()

    def load(self, video_id: str) -> np.ndarray:
        path = self.feature_path(video_id)
        if not path.is_file():
            raise StoreError(f"{self.root}: no features for id {video_id!r}")
        try:
            return np.load(path)
        except (OSError, EOFError, ValueError) as exc:
            raise StoreError(f"{path}: damaged feature file ({exc}); a rerun of the extraction redoes it") from exc

    def intact(self, video_id: str, segments: int) -> bool:
        """Whether ``video_id``'s feature file is whole: the (``segments``, dims) its header declares, every byte there."""
        try:
            with open(self.feature_path(video_id), "rb") as f:
                version = npy_format.read_magic(f)
                read_header = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
                shape, _, dtype = read_header[version](f)
                size = f.tell() + int(np.prod(shape)) * dtype.itemsize
                return len(shape) == 2 and shape[0] == segments and os.fstat(f.fileno()).st_size == size
        except (OSError, ValueError, KeyError):  # missing, or a header cut short or not NumPy's
            return False

    def mismatch(self, config: ExtractionConfig) -> str | None:
        """Why descriptors made with ``config`` do not belong here (None: a new store, or the same settings;
        the device and batch size do not change descriptors, the backbone, model version and precision do)."""
        if not self.config_path.is_file():
            return None
        wanted = asdict(config)
        stored = json.loads(self.config_path.read_text())["config"]
        if not same_descriptors(stored, wanted):
            return (f"{self.root}: made with {describe_extraction(stored)}, asked for {describe_extraction(wanted)} "
                    f"(stored {stored}, asked {wanted})")
        return None

    def bind(self, config: ExtractionConfig) -> None:
        """Record ``config`` in a new store, or check it matches the one the store was made with."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: an existing file, not a feature store folder")
        if self.config_path.is_file():
            if (why := self.mismatch(config)) is not None:
                raise StoreError(f"{why}; use another --output folder")
            return
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(self.config_path, json.dumps(provenance(config, config.seed), indent=2).encode())

    def plan_extraction(
        self, videos: list[tuple[str, str | Path]], config: ExtractionConfig, retry_failed: bool = False
    ) -> tuple[list[tuple[str, str]], ExtractionSummary]:
        """What a batch still has to do: ``(todo, summary)`` with the skipped ids already counted.

        Binds the store to ``config``; finished ids are skipped unless their source file changed after
        their descriptors were written (a re-rendered video is extracted again), and ids that failed
        before are skipped unless ``retry_failed``. Shared by local and cluster extraction.
        """
        ids = [vid for vid, _ in videos]
        if len(set(ids)) != len(ids):
            dupes = sorted({v for v in ids if ids.count(v) > 1})
            raise StoreError(f"duplicate ids in the video list: {dupes[:10]}")
        self.bind(config)
        table = self.index.set_index("id")
        previous, segments = table["status"].to_dict(), table["segments"].to_dict()
        summary = ExtractionSummary()
        todo = []
        for vid, path in videos:
            status = previous.get(vid)
            if (status in DONE and self.intact(vid, segments[vid]) and not self._source_changed(vid, path)) or (
                status == "failed" and not retry_failed
            ):
                summary.skipped += 1
            else:
                todo.append((vid, str(path)))
        return todo, summary

    def _source_changed(self, video_id: str, source: str | Path) -> bool:
        """True when ``source`` was modified after ``video_id``'s descriptors were stored."""
        try:
            return Path(source).stat().st_mtime > self.feature_path(video_id).stat().st_mtime
        except OSError:
            return False  # a source gone since extraction keeps its stored descriptors

    def save(self, video_id: str, descriptors: np.ndarray, source: str | Path, duration: float, note: str = "") -> None:
        """Store one video's descriptors, then append its index row (status ``partial`` when ``note``)."""
        path = self.feature_path(video_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, np.asarray(descriptors, dtype=np.float32))
        os.replace(tmp, path)
        self._append(video_id, source, round(duration, 3), len(descriptors), "partial" if note else "ok", note)

    def record_failure(self, video_id: str, source: str | Path, error: str) -> None:
        self._append(video_id, source, 0.0, 0, "failed", error)

    def _append(self, video_id, source, duration, segments, status, error) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        complete = self._complete_rows()
        if self.index_path.is_file() and len(complete) < self.index_path.stat().st_size:
            os.truncate(self.index_path, len(complete))  # a crash tore the last row: append after whole rows only
        new = not complete
        with open(self.index_path, "a", newline="", encoding="utf-8", errors=PATH_ERRORS) as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(INDEX_COLUMNS)
            writer.writerow([video_id, str(source), duration, segments, status, error])


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class ExtractionSummary:
    """What a batch did; ``failed`` maps id -> reason, ``partial`` id -> what of its damaged audio was decoded
    (those are stored, counted in ``extracted``, and searchable only in the part that decoded)."""

    extracted: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    partial: dict[str, str] = field(default_factory=dict)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    def __str__(self) -> str:
        speed = self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0
        lines = [
            f"extracted {self.extracted} ({len(self.partial)} in part), skipped {self.skipped} already done, "
            f"failed {len(self.failed)} ({self.audio_seconds / 60:.1f} min of audio in {self.wall_seconds:.1f} s, "
            f"{speed:.0f}x realtime)"
        ]
        lines += [f"  PARTIAL {vid}: {note}" for vid, note in self.partial.items()]
        lines += [f"  FAILED {vid}: {reason}" for vid, reason in self.failed.items()]
        return "\n".join(lines)


def _scan(path: str) -> tuple[AudioScan, str]:
    """Worker job: the file's first read (a few numbers, and the mel power frames of a file up to KEEP_SECONDS)
    and any recovery warning (as text)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = scan_audio(path)
    return scan, "; ".join(str(w.message) for w in caught)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one core each: the parent runs the backbone on the others
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole terminal group: the parent ends us
    threading.Thread(target=_exit_with_parent, daemon=True, name="exit-with-parent").start()


def _exit_with_parent() -> None:
    """Worker thread: end this process as soon as the one that started it is gone.

    A parent killed outright (SIGKILL, or SIGTERM outside the command line) runs no cleanup, and its
    decode workers, blocked on the task queue or busy with a long file, would live on for good.
    """
    multiprocessing.connection.wait([multiprocessing.parent_process().sentinel])
    os._exit(1)


def extract_videos(
    videos: list[tuple[str, str | Path]],
    store: FeatureStore,
    config: ExtractionConfig = ExtractionConfig(),
    workers: int = 1,
    retry_failed: bool = False,
    progress: bool = True,
    extractor: FeatureExtractor | None = None,
) -> ExtractionSummary:
    """Extract descriptors for ``(id, path)`` pairs into ``store``, resuming where a run stopped.

    ``extractor`` (made with ``config``) lets a caller that extracts several batches build the network,
    and compile the fast one, once.

    A file's first read (:func:`~ausil_lite.descriptors.extraction.scan_audio`) runs ahead in ``workers`` processes
    (0: in this process) while this one runs the backbone: on the samples the scan kept for a short
    file, or on a streamed second read of a long one, so neither process holds more than a chunk of a
    long recording.
    A file that cannot be decoded is recorded as failed with its reason and the batch goes on; ids
    that failed before are skipped unless ``retry_failed``. Errors that are not bad input (bugs)
    propagate: finished videos stay stored.
    """
    started = time.perf_counter()
    todo, summary = store.plan_extraction(videos, config, retry_failed)
    if extractor is not None and extractor.config != config:
        raise ValueError(f"the extractor was made with {extractor.config}, the batch asks for {config}")
    if todo:
        extractor = extractor or FeatureExtractor(config)
        # closing: an interruption in the loop ends the decode workers now, not when the generator is collected
        with tqdm(total=len(todo), desc="extract", unit="video", disable=not progress, file=sys.stderr) as bar, \
                contextlib.closing(_scanned(todo, workers)) as scanned:
            for vid, path, result in scanned:
                if isinstance(result, AudioError):
                    summary.failed[vid] = str(result)
                    store.record_failure(vid, path, str(result))
                else:
                    scan, note = result
                    try:
                        descriptors = extractor.from_file(path, scan)
                    except AudioError as exc:  # the file changed between its two reads
                        summary.failed[vid] = str(exc)
                        store.record_failure(vid, path, str(exc))
                    else:
                        store.save(vid, descriptors, path, scan.seconds, note)
                        if note:
                            summary.partial[vid] = note
                        summary.extracted += 1
                        summary.audio_seconds += scan.seconds
                bar.set_postfix(failed=len(summary.failed))
                bar.update()
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _scanned(todo: list[tuple[str, str]], workers: int):
    """Yield ``(id, path, (scan, note) | AudioError)`` in order, scanning ahead in worker processes."""
    if workers <= 0:
        for vid, path in todo:
            try:
                yield vid, path, _scan(path)
            except AudioError as exc:
                yield vid, path, exc
        return
    # forkserver: children must not inherit the parent's OpenMP thread pool (fork can deadlock torch)
    context = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)
    pending: deque[tuple[str, str, Future]] = deque()
    items = iter(todo)
    finished = False
    try:
        while True:
            while len(pending) < 2 * workers:  # bounded read-ahead: an interruption wastes little, no scan goes stale
                nxt = next(items, None)
                if nxt is None:
                    break
                pending.append((nxt[0], nxt[1], pool.submit(_scan, nxt[1])))
            if not pending:
                finished = True
                return
            vid, path, future = pending.popleft()
            try:
                yield vid, path, future.result()
            except AudioError as exc:
                yield vid, path, exc
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # interrupted (Ctrl-C, SIGTERM, an error): end the decodes in flight now, not after them
            # _processes is private, but the only handle on the workers before Python 3.14's terminate_workers()
            for process in list((pool._processes or {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
