"""The on-disk search index: immutable versions, checksummed files, and an atomic switch.

Layout under the index folder::

    current                  name of the active version; replaced with os.replace, so readers see
                             the old version or the new one, never a half-written one
    versions/vNNNNNN/        one version, never modified once published:
        manifest.json        configs, provenance, and the size and SHA-256 of every file it uses
        videos.csv           one row per indexed video (stage-1 segment ids follow this order)
        stage1.faiss         the stage-1 approximate nearest-neighbour index
        whitening.npz        the whitening (fitted on the indexed descriptors, or the model's)
    shards/s-<hex>.npy       stage-2 segment embeddings, float16 (segments, dims), shared by versions
    .lock                    writers take an exclusive flock on it; readers take no lock
    .run-lock                an ``index`` run holds it from start to end (the pid of the holder inside)

A writer builds a version in ``versions/.tmp-<hex>``, renames it to its final name and then
switches ``current``; a crash at any point leaves the previous version active, and the next writer
removes what the crashed one left. Old versions (all but the current and the previous one) and
unreferenced shards are removed after each switch.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch

from ausil_lite.descriptors.store import PATH_ERRORS
from ausil_lite.descriptors.whitening import PCAWhitening
from ausil_lite.digests import file_digest
from ausil_lite.errors import InputError

FORMAT = 1
MANIFEST = "manifest.json"
VIDEOS = "videos.csv"
STAGE1 = "stage1.faiss"
WHITENING = "whitening.npz"
VERSION_FILES = (VIDEOS, STAGE1, WHITENING)
RUN_LOCK = ".run-lock"
VIDEO_COLUMNS = ["id", "source", "size", "mtime_ns", "duration", "segments", "shard", "shard_row"]
HASH_LIMIT = 64 * 2**20
"""Shards larger than this (bytes) are only size-checked when an index is opened for queries;
``verify="full"`` hashes them too. Version files are always hashed."""


class IndexCorruptError(InputError):
    """An index file that is missing, truncated or altered; the message names the file."""


class NoIndexError(InputError):
    """A folder that holds no search index."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def writer_lock(root: Path):
    """Serialise writers of one index (another ``index`` run waits here)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def run_lock(root: Path, say: Callable[[str], None]):
    """Held by one ``index`` run from its start to its end, so a second run on the same index waits (after
    ``say``-ing so) and then finds the files indexed, instead of extracting them all a second time."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / RUN_LOCK, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process"
            say(f"{root}: another index run ({holder}) holds {root / RUN_LOCK}; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_leftovers(root: Path) -> None:
    """Remove what writers killed mid-write left: unpublished versions and shards (call under :func:`writer_lock`)."""
    for leftover in (root / "versions").glob(".tmp-*"):
        shutil.rmtree(leftover)
    for leftover in (root / "shards").glob(".tmp-*"):
        leftover.unlink()


def current_version(root: Path) -> str | None:
    """The active version's name, or None when ``root`` holds no index."""
    pointer = Path(root) / "current"
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not name.startswith("v") or not name[1:].isdigit():
        raise IndexCorruptError(f"{pointer}: does not name an index version ({name[:40]!r})")
    return name


def write_shard(root: Path, embeddings: np.ndarray) -> str:
    """Store stage-2 embeddings as a new immutable float16 shard; returns its name."""
    shards = root / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    name = f"s-{uuid.uuid4().hex[:16]}.npy"
    tmp = shards / f".tmp-{name}"
    np.save(tmp, np.asarray(embeddings, dtype=np.float16))
    _fsync(tmp)
    os.replace(tmp, shards / name)
    return name


def new_version_dir(root: Path) -> Path:
    """A fresh folder to write a version into (call under :func:`writer_lock`)."""
    tmp = root / "versions" / f".tmp-{uuid.uuid4().hex[:16]}"
    tmp.mkdir(parents=True)
    return tmp


def publish(root: Path, tmp: Path, manifest: dict, known_shards: dict[str, dict] | None = None) -> str:
    """Checksum the files of ``tmp`` and its shards, write the manifest, and make it current.

    ``manifest["shards"]`` lists the shard names the version uses; ``known_shards`` are records
    (bytes, sha256) already computed for shards of the previous version. Returns the version name.
    """
    known_shards = known_shards or {}
    files = {}
    for name in VERSION_FILES:
        path = tmp / name
        _fsync(path)
        files[name] = {"bytes": path.stat().st_size, "sha256": file_digest(path)}
    shard_records = {
        name: known_shards.get(name) or {"bytes": (root / "shards" / name).stat().st_size, "sha256": file_digest(root / "shards" / name)}
        for name in manifest["shards"]
    }
    previous = current_version(root)
    version = f"v{(int(previous[1:]) if previous else 0) + 1:06d}"
    record = {**manifest, "format": FORMAT, "version": version, "files": files, "shards": shard_records}
    (tmp / MANIFEST).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    _fsync(tmp / MANIFEST)
    os.rename(tmp, root / "versions" / version)
    pointer_tmp = root / "current.tmp"
    pointer_tmp.write_text(version + "\n", encoding="utf-8")
    _fsync(pointer_tmp)
    os.replace(pointer_tmp, root / "current")
    _fsync(root)
    _collect_garbage(root)
    return version


def _collect_garbage(root: Path, keep: int = 2) -> None:
    """Remove leftovers of crashed writers, versions older than the last ``keep``, unused shards."""
    versions = sorted(p for p in (root / "versions").iterdir() if p.name.startswith("v"))
    for stale in versions[:-keep]:
        shutil.rmtree(stale)
    remove_leftovers(root)
    used = set()
    for kept in versions[-keep:]:
        used |= set(json.loads((kept / MANIFEST).read_text(encoding="utf-8"))["shards"])
    for shard in (root / "shards").glob("*"):
        if shard.name not in used:
            shard.unlink()


def read_manifest(root: Path, verify: str = "quick") -> tuple[Path, dict]:
    """The active version's folder and manifest, after checking its files.

    ``verify``: "quick" hashes version files and shards up to :data:`HASH_LIMIT` bytes and checks
    the sizes of larger shards; "full" hashes everything; "none" checks nothing.
    """
    root = Path(root)
    for attempt in range(2):  # a writer may remove the version between reading `current` and opening it
        version = current_version(root)
        if version is None:
            raise NoIndexError(f"{root}: no search index here; build one with `ausil-lite index PATHS --index {root}`")
        folder = root / "versions" / version
        if folder.is_dir() or attempt:
            break
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["files"], manifest["shards"]  # noqa: B018 - both must be present
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(f"{path}: unreadable index manifest ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise IndexCorruptError(f"{path}: index format {manifest.get('format')!r}, this version reads {FORMAT}")
    if verify != "none":
        checks = [(folder / n, r, True) for n, r in manifest["files"].items()]
        checks += [(root / "shards" / n, r, verify == "full" or r["bytes"] <= HASH_LIMIT) for n, r in manifest["shards"].items()]
        for file, record, hash_it in checks:
            _check(file, record, hash_it)
    return folder, manifest


def _check(path: Path, record: dict, hash_it: bool) -> None:
    if not path.is_file():
        raise IndexCorruptError(f"{path}: index file missing")
    size = path.stat().st_size
    if size != record["bytes"]:
        raise IndexCorruptError(f"{path}: index file truncated or altered ({size} bytes, the manifest says {record['bytes']})")
    if hash_it and file_digest(path) != record["sha256"]:
        raise IndexCorruptError(f"{path}: index file corrupt (SHA-256 differs from the manifest)")


@dataclass
class SearchIndex:
    """One opened version: video table, stage-1 index, whitening and stage-2 embeddings (memory-mapped)."""

    root: Path
    folder: Path
    manifest: dict
    videos: pd.DataFrame
    stage1: faiss.Index
    whitening: PCAWhitening
    shards: dict[str, np.ndarray]
    offsets: np.ndarray  # (V + 1,) first stage-1 segment id of each video row, then the total

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @classmethod
    def open(cls, root: str | Path, verify: str = "quick") -> "SearchIndex":
        root = Path(root)
        folder, manifest = read_manifest(root, verify)
        videos = read_videos(folder / VIDEOS)
        try:
            stage1 = faiss.read_index(str(folder / STAGE1))
        except RuntimeError as exc:
            raise IndexCorruptError(f"{folder / STAGE1}: unreadable stage-1 index ({str(exc).splitlines()[0]})") from exc
        try:
            whitening = PCAWhitening.load(folder / WHITENING)
        except ValueError as exc:
            raise IndexCorruptError(str(exc)) from exc
        shards = {}
        for name in manifest["shards"]:
            try:
                shards[name] = np.load(root / "shards" / name, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise IndexCorruptError(f"{root / 'shards' / name}: unreadable stage-2 shard ({exc})") from exc
        offsets = np.concatenate([[0], np.cumsum(videos["segments"].to_numpy(np.int64))])
        if offsets[-1] != stage1.ntotal:
            raise IndexCorruptError(f"{folder / STAGE1}: holds {stage1.ntotal} segments, {VIDEOS} lists {offsets[-1]}")
        return cls(root, folder, manifest, videos, stage1, whitening, shards, offsets)

    def embeddings(self, row: int) -> np.ndarray:
        """Stage-2 embeddings (segments, dims) float32 of the video in ``row``."""
        shard, start, segments = self._locations[row]
        stored = np.array(self.shards[shard][start : start + segments])  # read from the memory map
        return torch.from_numpy(stored).float().numpy()  # float16 -> 32 about 4x as fast as numpy's cast

    @functools.cached_property
    def _locations(self) -> list[tuple[str, int, int]]:
        """(shard, first row, segments) of each video row: a query reads a hundred candidates, and a pandas
        row lookup each cost about as much as reading the embeddings."""
        return list(self.videos[["shard", "shard_row", "segments"]].itertuples(index=False, name=None))


def read_videos(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype={"id": str, "source": str, "shard": str}, keep_default_na=False,
                            encoding_errors=PATH_ERRORS)
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path}: unreadable video table ({exc})") from exc
    if list(table.columns) != VIDEO_COLUMNS:
        raise IndexCorruptError(f"{path}: expected columns {VIDEO_COLUMNS}, found {list(table.columns)}")
    return table
