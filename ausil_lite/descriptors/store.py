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
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format
import pandas as pd
from tqdm import tqdm

from ausil_lite.config import provenance
from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor, describe_extraction, same_descriptors
from ausil_lite.descriptors.workers import ExtractionWorkers, extract
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

    def record(self, store: FeatureStore, vid: str, path: str | Path,
               result: tuple[np.ndarray, float, str] | AudioError) -> None:
        """Store one file's ``(descriptors, seconds of audio, recovery note)``, or record why it failed, and count it."""
        if isinstance(result, AudioError):
            self.failed[vid] = str(result)
            store.record_failure(vid, path, str(result))
            return
        descriptors, seconds, note = result
        store.save(vid, descriptors, path, seconds, note)
        if note:
            self.partial[vid] = note
        self.extracted += 1
        self.audio_seconds += seconds

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


def extract_videos(
    videos: list[tuple[str, str | Path]],
    store: FeatureStore,
    config: ExtractionConfig = ExtractionConfig(),
    workers: int | ExtractionWorkers = 1,
    retry_failed: bool = False,
    progress: bool = True,
    extractor: FeatureExtractor | None = None,
) -> ExtractionSummary:
    """Extract descriptors for ``(id, path)`` pairs into ``store``, resuming where a run stopped.

    ``workers`` processes (:mod:`ausil_lite.descriptors.workers`; 0: all in this process) extract whole
    files side by side when the network runs on the CPU, or read files ahead while this process runs it
    on the GPU. Pass a ready :class:`~ausil_lite.descriptors.workers.ExtractionWorkers`, or an
    ``extractor`` made with ``config`` for the network in this process, to build the network (and compile
    the fast one) once for several batches.
    A file that cannot be decoded is recorded as failed with its reason and the batch goes on; ids
    that failed before are skipped unless ``retry_failed``. Errors that are not bad input (bugs)
    propagate: finished videos stay stored.
    """
    started = time.perf_counter()
    todo, summary = store.plan_extraction(videos, config, retry_failed)
    pool = workers if isinstance(workers, ExtractionWorkers) else None
    for made in (extractor, pool):
        if made is not None and made.config != config:
            raise ValueError(f"the {type(made).__name__} was made with {made.config}, the batch asks for {config}")
    if todo:
        with contextlib.ExitStack() as stack, \
                tqdm(total=len(todo), desc="extract", unit="video", disable=not progress, file=sys.stderr) as bar:
            if pool is None and workers > 0:
                pool = stack.enter_context(ExtractionWorkers(config, workers))
            first_reads = pool is not None and not pool.whole_files
            if pool is None or first_reads:  # the network runs in this process
                extractor = extractor or FeatureExtractor(config)
            # closing: an interruption in the loop ends the workers now, not when the generator is collected
            results = stack.enter_context(contextlib.closing(
                pool.results(todo) if pool is not None else _in_process(todo, extractor)))
            for vid, path, result in results:
                if first_reads and not isinstance(result, AudioError):
                    found, note = result
                    try:
                        result = extractor.from_file(path, found), found.seconds, note
                    except AudioError as exc:  # the file changed between its two reads
                        result = exc
                summary.record(store, vid, path, result)
                bar.set_postfix(failed=len(summary.failed))
                bar.update()
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _in_process(todo: list[tuple[str, str | Path]], extractor: FeatureExtractor):
    """Yield ``(id, path, (descriptors, seconds, note) | AudioError)``, each file extracted in this process."""
    for vid, path in todo:
        try:
            yield vid, path, extract(path, extractor)
        except AudioError as exc:
            yield vid, path, exc
