"""Build or update a search index from descriptors in a feature store.

An update writes a new index version (see :mod:`ausil_lite.search.index`): new videos are whitened
into a new stage-2 shard and their compact vectors added to a copy of the stage-1 index. Dropped
videos (files that changed) make stage 1 be rebuilt from the kept shards. The whitening is fitted
on (a sample of) the indexed descriptors, or taken from a model; without a model it is fitted
again, with everything re-read from the store, each time the collection has grown ``refit_growth``
times since the last fit, so a collection started small does not keep a whitening fitted on a few
videos.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch

from ausil_lite.config import config_from_dict, provenance
from ausil_lite.descriptors.extraction import describe_extraction, same_descriptors
from ausil_lite.descriptors.store import PATH_ERRORS, FeatureStore
from ausil_lite.descriptors.whitening import EPSILON, PCAWhitening
from ausil_lite.errors import InputError
from ausil_lite.search.collection import MediaFile
from ausil_lite.search.index import (
    STAGE1,
    VIDEO_COLUMNS,
    VIDEOS,
    WHITENING,
    SearchIndex,
    current_version,
    new_version_dir,
    publish,
    remove_leftovers,
    write_shard,
    writer_lock,
)
from ausil_lite.search.stage1 import Stage1Config, build_stage1, compact
from ausil_lite.similarity import load_model

SHARD_SEGMENTS = 2**18  # segments per stage-2 shard written by a rebuild (128 MB at 256 dims, float16)
CHUNK_SEGMENTS = 2**17  # segments per batch added to stage 1


@dataclass(frozen=True)
class IndexConfig:
    """How an index is built; fixed at its first build (change it with ``rebuild``)."""

    stage1_dim: int = 128  # whitened components per segment in stage 1 (the measured choice: ausil_lite.search.stage1)
    stage1_kind: str = "auto"  # see ausil_lite.search.stage1.Stage1Config
    pq_bytes: int = 64
    ivf_min_segments: int = 200_000
    stage2_dim: int = 256  # whitened components kept for chamfer reranking (a model keeps all of its own)
    fit_segments: int = 50_000  # most segments the whitening is fitted on (a 2528 x 2528 covariance)
    refit_growth: float = 4.0  # refit the whitening (no model) once the collection has grown this many times
    seed: int = 0

    def stage1(self, dim: int) -> Stage1Config:
        pq_bytes = self.pq_bytes if dim % self.pq_bytes == 0 else 1
        return Stage1Config(dim, self.stage1_kind, pq_bytes, self.ivf_min_segments)


@dataclass
class UpdateSummary:
    version: str | None  # the version written; None when the index was already up to date
    added: int
    unchanged: int
    removed: int
    videos: int
    segments: int
    stage1: str
    rebuilt: str  # "" (incremental), "stage 1" or "all"
    seconds: float

    def __str__(self) -> str:
        if self.version is None:
            return f"index up to date ({self.videos} videos, {self.unchanged} unchanged): nothing to do"
        how = f", rebuilt {self.rebuilt}" if self.rebuilt else ""
        return (
            f"index {self.version}: {self.videos} videos, {self.segments} segments ({self.stage1}); "
            f"added {self.added}, unchanged {self.unchanged}, removed {self.removed}{how} in {self.seconds:.1f} s"
        )


def _fit_whitening(store: FeatureStore, ids: Sequence[str], segments: np.ndarray, config: IndexConfig) -> tuple[PCAWhitening, int]:
    """Whitening fitted on whole videos drawn at random until ``fit_segments``; returns it and the count."""
    order = np.random.default_rng(config.seed).permutation(len(ids))
    take = order[: int(np.searchsorted(np.cumsum(segments[order]), config.fit_segments)) + 1]
    sample = np.concatenate([store.load(ids[i]) for i in np.sort(take)])
    # components beyond the sample's rank would be noise blown up by the inverse square root
    n_components = int(min(config.stage2_dim, max(2, len(sample) // 4), sample.shape[1]))
    if len(sample) >= sample.shape[1]:
        return PCAWhitening.fit(sample, n_components), len(sample)
    return _fit_whitening_few(sample, n_components), len(sample)


def _fit_whitening_few(sample: np.ndarray, n_components: int) -> PCAWhitening:
    """The same whitening as :meth:`PCAWhitening.fit`, from the SVD of the centred sample.

    With fewer segments than dimensions this avoids the eigendecomposition of the full
    D x D covariance (2528 x 2528: tens of seconds on two busy cores) for the same result.
    """
    x = torch.nn.functional.normalize(torch.as_tensor(sample, dtype=torch.float64), dim=1)
    mean = x.mean(dim=0)
    _, singular, vh = torch.linalg.svd(x - mean, full_matrices=False)
    eigval = singular[:n_components] ** 2 / (len(x) - 1)
    return PCAWhitening(mean, vh[:n_components].T / torch.sqrt(eigval + EPSILON))


def _stage1_chunks(table: pd.DataFrame, shards: dict[str, np.ndarray], dim: int) -> Iterator[np.ndarray]:
    """Stage-1 vectors of the videos of ``table``, in its order, in batches of about CHUNK_SEGMENTS."""
    batch, size = [], 0
    for shard, start, n in table[["shard", "shard_row", "segments"]].itertuples(index=False):
        start, n = int(start), int(n)
        batch.append(compact(np.asarray(shards[shard][start : start + n], dtype=np.float32), dim))
        size += n
        if size >= CHUNK_SEGMENTS:
            yield np.concatenate(batch)
            batch, size = [], 0
    if batch:
        yield np.concatenate(batch)


def _rebuild_stage1(table: pd.DataFrame, shards: dict[str, np.ndarray], dim: int, config: IndexConfig):
    """Train stage 1 on a sample of whole videos, then add every video's vectors in table order."""
    total = int(table["segments"].sum())
    stage1 = config.stage1(dim)
    # training sample: whole videos drawn at random, up to what the largest index kind asks for
    wanted = max(100_000, 256 * stage1.train_per_list)
    order = np.random.default_rng(config.seed).permutation(len(table))
    take = np.sort(order[: int(np.searchsorted(np.cumsum(table["segments"].to_numpy()[order]), wanted)) + 1])
    training = np.concatenate(list(_stage1_chunks(table.iloc[take], shards, dim)))
    return build_stage1(training, _stage1_chunks(table, shards, dim), total, stage1, config.seed)


def _same_whitening(a: PCAWhitening, b: PCAWhitening) -> bool:
    return a.projection.shape == b.projection.shape and bool(
        torch.allclose(a.mean.cpu(), b.mean.cpu()) and torch.allclose(a.projection.cpu(), b.projection.cpu()))


def stale_ids(root: str | Path, entries: Sequence[MediaFile]) -> list[str]:
    """Indexed ids to drop before adding ``entries`` (the whole collection as it is now): ids no longer
    among them, and ids whose file changed since it was indexed (other path, size or modification time),
    which ``update_index`` then indexes again. Empty when there is no index yet.

    For collections whose ids stay with a file while it is edited (a benchmark's video ids); the ``index``
    command names files by a digest of path, size and time instead, so an edited file is a new id there.
    """
    if not current_version(Path(root)):
        return []
    now = {f.id: (str(f.path), int(f.size), int(f.mtime_ns)) for f in entries}
    indexed = SearchIndex.open(root, verify="none").videos
    return [vid for vid, source, size, mtime in indexed[["id", "source", "size", "mtime_ns"]].itertuples(index=False)
            if now.get(vid) != (str(source), int(size), int(mtime))]


def update_index(
    root: str | Path,
    add: Sequence[MediaFile],
    store: FeatureStore,
    *,
    drop: Sequence[str] = (),
    model_dir: str | Path | None = None,
    config: IndexConfig | None = None,
    rebuild: bool = False,
) -> UpdateSummary:
    """Add the videos ``add`` (ids stored in ``store``) to the index at ``root``, drop the ids ``drop``.

    Videos already indexed are left alone; when nothing changes no version is written. ``config``
    and ``model_dir`` default to the index's own; giving different ones needs ``rebuild``.
    """
    started = time.perf_counter()
    root = Path(root)
    with writer_lock(root):
        remove_leftovers(root)
        previous = SearchIndex.open(root) if current_version(root) else None
        old = previous.manifest if previous else {}
        if old and not rebuild:
            if config is not None and asdict(config) != old["config"]:
                raise InputError(f"{root}: built with {old['config']}; pass --rebuild to change its configuration")
            if model_dir is not None and str(Path(model_dir).resolve()) != old["model"]:
                raise InputError(f"{root}: built with model {old['model']}; pass --rebuild to use another")
            if (why := _other_descriptors(old["extraction"], store)) is not None:
                raise InputError(f"{root}: {why}; pass --rebuild to index everything with the store's, or index into another folder")
        config = config or (config_from_dict(IndexConfig, old["config"]) if old else IndexConfig())
        model_dir = model_dir if model_dir is not None else (old.get("model") if old and not rebuild else None)
        kept = previous.videos if previous else pd.DataFrame(columns=VIDEO_COLUMNS)
        dropping = kept["id"].isin(set(drop))
        kept = kept[~dropping].reset_index(drop=True)
        known = set(kept["id"])
        new = list({f.id: f for f in add if f.id not in known}.values())
        unchanged = len({f.id for f in add}) - len(new)
        model = load_model(model_dir, "cpu") if model_dir is not None else None
        if model is not None and previous is not None and not _same_whitening(model.whitening, previous.whitening):
            rebuild = True  # the model was retrained in place: every video is whitened again with its whitening
        if previous and not new and not dropping.any() and not rebuild:
            return UpdateSummary(None, 0, unchanged, 0, len(kept), int(kept["segments"].sum()),
                                 old["stage1"]["factory"], "", time.perf_counter() - started)
        stored = store.index.set_index("id")
        missing = [f.id for f in new if not store.has(f.id) or f.id not in stored.index]
        if missing:
            raise InputError(f"{store.root}: no stored features for {len(missing)} video(s), e.g. {missing[:3]}")
        new_rows = pd.DataFrame(
            {
                "id": [f.id for f in new],
                "source": [str(f.path) for f in new],
                "size": [f.size for f in new],
                "mtime_ns": [f.mtime_ns for f in new],
                "duration": [float(stored.at[f.id, "duration"]) for f in new],
                "segments": [int(stored.at[f.id, "segments"]) for f in new],
                "shard": "",
                "shard_row": 0,
            },
            columns=VIDEO_COLUMNS,
        )
        table = pd.concat([kept, new_rows], ignore_index=True) if len(kept) else new_rows
        table = table[table["segments"] > 0].reset_index(drop=True)
        if table.empty:
            raise InputError(f"{root}: nothing to index (no video with audio segments)")
        total = int(table["segments"].sum())
        refit = model is None and old and total >= config.refit_growth * old["whitening"]["fitted_total"]
        full = not previous or rebuild or refit
        tmp = new_version_dir(root)
        shards = dict(previous.shards) if previous and not full else {}
        if full:
            if model is not None:
                whitening, fitted = model.whitening.cpu(), 0
            else:
                whitening, fitted = _fit_whitening(store, table["id"].tolist(), table["segments"].to_numpy(), config)
            whitening_record = {"source": "model" if model else "fitted", "fitted_segments": fitted, "fitted_total": total}
            pending = table
        else:
            whitening, whitening_record = previous.whitening, old["whitening"]
            pending = table[table["shard"] == ""]
        # stage 2: whiten the videos not yet in a shard, a shard at a time
        batch: list[np.ndarray] = []
        batch_rows: list[int] = []
        for row, video_id in zip(pending.index, pending["id"]):
            batch.append(whitening.transform(store.load(video_id)).astype(np.float16))
            batch_rows.append(row)
            if sum(map(len, batch)) >= SHARD_SEGMENTS or row == pending.index[-1]:
                name = write_shard(root, np.concatenate(batch))
                shards[name] = np.load(root / "shards" / name, mmap_mode="r")
                starts = np.concatenate([[0], np.cumsum([len(b) for b in batch])[:-1]])
                table.loc[batch_rows, "shard"] = name
                table.loc[batch_rows, "shard_row"] = starts
                batch, batch_rows = [], []
        table = table.astype({"size": np.int64, "mtime_ns": np.int64, "duration": float, "segments": np.int64, "shard_row": np.int64})
        dim = min(config.stage1_dim, whitening.projection.shape[1])
        stage1_config = config.stage1(dim)
        same_kind = previous and stage1_config.resolved_kind(total) == stage1_config.resolved_kind(old["stage1"]["trained_total"])
        if full or dropping.any() or not same_kind or total >= config.refit_growth * old["stage1"]["trained_total"]:
            stage1, factory = _rebuild_stage1(table, shards, dim, config)
            stage1_record = {"factory": factory, "trained_total": total}
            rebuilt = "all" if full and previous else ("stage 1" if previous else "")
        else:
            stage1, stage1_record, rebuilt = previous.stage1, old["stage1"], ""
            for chunk in _stage1_chunks(table[table["shard"].isin(set(shards) - set(old["shards"]))], shards, dim):
                stage1.add(chunk)
        faiss.write_index(stage1, str(tmp / STAGE1))
        table.to_csv(tmp / VIDEOS, index=False, errors=PATH_ERRORS)
        whitening.save(tmp / WHITENING)
        used = sorted(set(table["shard"]))
        manifest = {
            "config": asdict(config),
            "dims": {"stage1": dim, "stage2": int(whitening.projection.shape[1])},
            "stage1": stage1_record,
            "whitening": whitening_record,
            "model": str(Path(model_dir).resolve()) if model_dir is not None else None,
            "store": str(store.root.resolve()),
            "extraction": store_config(store),
            "videos": len(table),
            "segments": total,
            "audio_hours": round(float(table["duration"].sum()) / 3600, 4),
            "shards": used,
            "provenance": provenance(config, config.seed),
        }
        version = publish(root, tmp, manifest, {k: v for k, v in old.get("shards", {}).items() if k in used})
    return UpdateSummary(version, len(new), unchanged, int(dropping.sum()), len(table), total,
                         stage1_record["factory"], rebuilt, time.perf_counter() - started)


def _other_descriptors(indexed: dict, store: FeatureStore) -> str | None:
    """Why ``store``'s descriptors cannot join an index of descriptors made with ``indexed`` (None: they can).

    Another backbone, released model version or precision gives descriptors that the index's whitening
    and its stage-1 vectors do not fit: the index and every query would mix two models.
    """
    stored = store_config(store)
    if not same_descriptors(indexed, stored):
        return (f"the index holds descriptors of {describe_extraction(indexed)}, the store {store.root} "
                f"those of {describe_extraction(stored)}")
    return None


def store_config(store: FeatureStore) -> dict:
    """The extraction config a store was made with (queries must be extracted the same way)."""
    if not store.config_path.is_file():
        raise InputError(f"{store.root}: not a feature store (no {store.config_path.name})")
    return json.loads(store.config_path.read_text(encoding="utf-8"))["config"]
