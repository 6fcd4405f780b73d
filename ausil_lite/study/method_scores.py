"""Score every method of the results chapters on one benchmark; keep each similarity file until its inputs change.

The methods, for each backbone ``B`` whose feature store exists:

``ausil-B``      the trained AuSiL-lite model ``models/<profile>/ausil-B/`` on the store's descriptors (for
                 ``B = released``, the network shipped with the version the store was made with)
``ausil-B-speeds`` the same model, each query also played at the speeds of :mod:`ausil_lite.descriptors.speeds`
                 (when ``B-speeds/`` holds their descriptors); a candidate's best variant counts
``chamfer-B``    chamfer similarity of the raw MAC descriptors (no learning)
``pooled-B``     cosine of mean-pooled descriptors (no learning, no time)
``landmark``     spectral-peak pair hashes (Shazam-style), from the media
``chromaprint``  Chromaprint words from ``fpcalc``, from the media

Each method writes the original's similarity JSON ``{query: {video: similarity}}`` and, beside it,
``<method>.meta.json``: what made it (the method, the inputs' digest, git commit, date, wall time,
ids that could not be scored and why). A method is scored again only when the digest of its inputs
changes: the feature store's index and config, the model files, the media files' sizes and
modification times, the benchmark's ids, or the source code of the modules that compute it. So a
chapter that is edited and rerun re-reads its similarity files in seconds.

Fingerprints of the media baselines are cached on disk (:class:`ausil_lite.baselines.cache.FingerprintCache`)
and computed in threads: ``fpcalc`` runs as one subprocess per file and the landmark extractor spends
its time in FFmpeg decoding and NumPy FFTs, both of which release the GIL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ausil_lite.baselines import make_baseline
from ausil_lite.baselines.cache import FingerprintCache
from ausil_lite.baselines.compare import similarity_json, store_fingerprints
from ausil_lite.config import config_from_dict, git_commit
from ausil_lite.datasets.benchmark import Benchmark
from ausil_lite.descriptors.extraction import BACKBONES, ExtractionConfig
from ausil_lite.descriptors.speeds import VARIANT_PENALTY, base_id, best_over_variants, model_variant_penalty
from ausil_lite.descriptors.store import FeatureStore
from ausil_lite.digests import file_digest
from ausil_lite.errors import AudioError
from ausil_lite.evaluation.protocol import read_similarities, write_similarities
from ausil_lite.models.released import ReleasedModelError, version_dir
from ausil_lite.paths import REPO_ROOT
from ausil_lite.similarity.chamfer import CHAMFER_RULES
from ausil_lite.similarity.matrix import pad_sequences
from ausil_lite.similarity.model import (
    CONFIG_FILE,
    MIN_QUERY_SEGMENTS,
    WEIGHTS_FILE,
    WHITENING_FILE,
    AuSiL,
    load_model,
    read_provenance,
    repeat_short,
)
from ausil_lite.similarity.scoring import chunked

DESCRIPTOR_KINDS = ("ausil", "chamfer", "pooled")
SPEEDS_SUFFIX = "-speeds"
"""``features_root/<backbone>-speeds/``: the queries' speed variants; ``ausil-<backbone>-speeds`` scores with them."""
MEDIA_KINDS = ("landmark", "chromaprint")
KINDS = DESCRIPTOR_KINDS + MEDIA_KINDS

_SOURCES = {
    "ausil": ["similarity/model.py", "similarity/comparator.py", "similarity/chamfer.py", "similarity/matrix.py",
              "similarity/scoring.py", "descriptors/whitening.py", "descriptors/attention.py", "descriptors/speeds.py"],
    "chamfer": ["baselines/descriptors.py", "baselines/compare.py", "similarity/chamfer.py", "similarity/matrix.py"],
    "pooled": ["baselines/descriptors.py", "baselines/compare.py"],
    "landmark": ["baselines/landmark.py", "baselines/interface.py", "descriptors/audio.py"],
    "chromaprint": ["baselines/chromaprint.py"],
}
"""Package files (under ausil_lite/) whose code decides each kind's similarities: editing one rescores it
(this module is part of every kind's list, see :func:`input_key`)."""


@dataclass(frozen=True)
class Method:
    """One scored method: its name (also its file name), kind, and where its inputs are."""

    name: str
    kind: str  # a key of KINDS
    backbone: str | None = None  # descriptor methods: the backbone of the feature store
    features_dir: str | None = None  # descriptor methods: the feature store
    model_dir: str | None = None  # ausil: the trained model
    cache_dir: str | None = None  # media methods: the fingerprint cache
    speeds_dir: str | None = None  # ausil: a store of the queries' speed variants (ausil_lite.descriptors.speeds)
    # with speeds_dir: a variant's score counts this much lower (plan_methods: the model's calibrated penalty)
    variant_penalty: float = VARIANT_PENALTY
    chamfer_rule: str | None = None  # ausil: score by this rule (CHAMFER_RULES) instead of the model's own

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown method kind {self.kind!r}; choose one of {KINDS}")
        if self.kind in DESCRIPTOR_KINDS and self.features_dir is None:
            raise ValueError(f"{self.name}: a {self.kind} method needs features_dir")
        if self.kind == "ausil" and self.model_dir is None:
            raise ValueError(f"{self.name}: an ausil method needs model_dir")
        if self.speeds_dir is not None and self.kind != "ausil":
            raise ValueError(f"{self.name}: speed hypotheses are scored by the ausil kind only")
        if self.chamfer_rule is not None and (self.kind != "ausil" or self.chamfer_rule not in CHAMFER_RULES):
            raise ValueError(f"{self.name}: chamfer_rule is one of {sorted(CHAMFER_RULES)}, for the ausil kind only")


@dataclass
class MethodPlan:
    """The methods that can run on a benchmark here, and why the others cannot (name -> reason)."""

    methods: list[Method] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass
class ScoredMethod:
    """A method's similarities and the record stored beside them."""

    method: Method
    similarities: dict[str, dict[str, float]]
    meta: dict[str, Any]
    reused: bool  # True when the file on disk was up to date and nothing was computed


def store_extraction(store_dir: str | Path) -> ExtractionConfig:
    """The extraction config a feature store was made with (its ``config.json``)."""
    path = Path(store_dir) / "config.json"
    stored = json.loads(path.read_text(encoding="utf-8"))["config"]
    return config_from_dict(ExtractionConfig, {k: v for k, v in stored.items() if k in ("backbone", "weights", "seed", "batch_size", "model_version", "precision")})


def _same_descriptors(model_dir: Path, store_dir: Path) -> str | None:
    """None when the model was trained on descriptors made as the store's were, else the mismatch.

    The precision is not compared: the fast network's descriptors approximate the full one's, which the
    model was trained on, and are scored by it on purpose."""
    recorded = read_provenance(model_dir).get("data", {}).get("extraction")
    if not recorded:
        return None  # the model does not record its data: nothing to check against
    store = dataclasses.asdict(store_extraction(store_dir))
    differ = {k: (recorded.get(k), store[k]) for k in ("backbone", "weights", "seed", "model_version")
              if recorded.get(k) != store[k]}
    if differ:
        return f"model {model_dir} was trained on other descriptors than {store_dir} holds: {differ}"
    return None


def _ausil_model(backbone: str, models_root: Path, store_dir: Path) -> tuple[Path, str | None]:
    """The AuSiL network that scores a store's descriptors and why it cannot (None when it can): the one the
    training chapter wrote for ``backbone``, or for the released backbone the network shipped with the version
    the store was made with."""
    model_dir = models_root / f"ausil-{backbone}"
    if backbone == "released":
        try:
            model_dir = version_dir(store_extraction(store_dir).model_version)
        except ReleasedModelError as exc:  # a store of a version this copy no longer ships
            return model_dir, str(exc)
    if not all((model_dir / f).is_file() for f in (WEIGHTS_FILE, WHITENING_FILE, CONFIG_FILE)):
        return model_dir, f"no trained model at {model_dir} (the training chapter writes it)"
    return model_dir, _same_descriptors(model_dir, store_dir)


def plan_methods(
    features_root: str | Path,
    models_root: str | Path,
    cache_root: str | Path,
    benchmark: Benchmark,
    backbones: Sequence[str] = (),
    media_baselines: Sequence[str] = MEDIA_KINDS,
) -> MethodPlan:
    """Every method that can be scored on ``benchmark`` with what is on this machine.

    ``features_root/<backbone>/`` are the benchmark's feature stores, ``models_root/ausil-<backbone>/``
    the trained models (the released backbone's is its version folder in the package), ``cache_root/<baseline>/``
    the fingerprint caches. ``backbones`` limits the
    backbones (default: every store found); the media baselines need the benchmark's local media.
    """
    plan = MethodPlan()
    features_root, models_root, cache_root = Path(features_root), Path(models_root), Path(cache_root)
    found = sorted(p.name for p in features_root.iterdir() if (p / "config.json").is_file()) if features_root.is_dir() else []
    unknown = sorted(set(backbones) - set(BACKBONES))
    if unknown:
        raise ValueError(f"unknown backbone(s) {unknown}; choose from {BACKBONES}")
    wanted = list(backbones) or [b for b in BACKBONES if b in found or (models_root / f"ausil-{b}").is_dir()]
    if not wanted:
        plan.unavailable["ausil, chamfer, pooled"] = f"no feature store under {features_root} (extract the benchmark's descriptors first)"
    for backbone in wanted:
        store_dir = features_root / backbone
        names = [f"{kind}-{backbone}" for kind in DESCRIPTOR_KINDS]
        stored = set(FeatureStore(store_dir).ids()) if (store_dir / "config.json").is_file() else set()
        if not stored & set(benchmark.query_ids):
            reason = (f"the store at {store_dir} holds none of {benchmark.name}'s queries (made for another build?)"
                      if stored else f"no descriptors of the {backbone} backbone at {store_dir}")
            for name in names:
                plan.unavailable[name] = reason
            continue
        model_dir, reason = _ausil_model(backbone, models_root, store_dir)
        if reason is not None:
            plan.unavailable[names[0]] = reason
        else:
            plan.methods.append(Method(names[0], "ausil", backbone, str(store_dir), str(model_dir)))
            speeds_dir = features_root / f"{backbone}{SPEEDS_SUFFIX}"
            if (speeds_dir / "config.json").is_file():
                if store_extraction(speeds_dir) != store_extraction(store_dir):
                    plan.unavailable[f"{names[0]}{SPEEDS_SUFFIX}"] = f"{speeds_dir} was made with another backbone than {store_dir}"
                else:
                    plan.methods.append(Method(f"{names[0]}{SPEEDS_SUFFIX}", "ausil", backbone, str(store_dir),
                                               str(model_dir), speeds_dir=str(speeds_dir),
                                               variant_penalty=model_variant_penalty(model_dir)))
        for kind, name in zip(DESCRIPTOR_KINDS[1:], names[1:]):
            plan.methods.append(Method(name, kind, backbone, str(store_dir)))
    for kind in media_baselines:
        if kind not in MEDIA_KINDS:
            raise ValueError(f"unknown media baseline {kind!r}; choose from {MEDIA_KINDS}")
        if not benchmark.paths:
            plan.unavailable[kind] = f"no local media of {benchmark.name} on this machine"
        else:
            plan.methods.append(Method(kind, kind, cache_dir=str(cache_root / kind)))
    return plan


# --- digests of the inputs ---------------------------------------------------------------------------------


def input_key(method: Method, benchmark: Benchmark) -> str:
    """Digest of everything that decides ``method``'s similarities on ``benchmark`` (see the module docstring)."""
    record: dict[str, Any] = {
        "method": dataclasses.asdict(method) | {"cache_dir": None},
        "benchmark": benchmark.name,
        "queries": benchmark.query_ids,
        "database": benchmark.database_ids,
        "code": {f: file_digest(REPO_ROOT / "ausil_lite" / f) for f in ["study/method_scores.py", *_SOURCES[method.kind]]},
    }
    if method.features_dir is not None:
        store = Path(method.features_dir)
        record["store"] = {f: file_digest(store / f) for f in ("config.json", "index.csv")}
    if method.model_dir is not None:
        model = Path(method.model_dir)
        record["model"] = {f: file_digest(model / f) for f in (WEIGHTS_FILE, WHITENING_FILE, CONFIG_FILE)}
    if method.speeds_dir is not None:
        record["speeds"] = {f: file_digest(Path(method.speeds_dir) / f) for f in ("config.json", "index.csv")}
    if method.kind in MEDIA_KINDS:
        record["baseline"] = dataclasses.asdict(make_baseline(method.kind).config)
        record["media"] = {
            vid: [str(p), p.stat().st_size, p.stat().st_mtime_ns] for vid, p in sorted(benchmark.paths.items())
        }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


# --- scoring -----------------------------------------------------------------------------------------------


EMBED_ROWS = 4096
"""Segments whitened in one matrix product when preparing many videos (about 40 MB of float32 at 2528 dims)."""


def embed_videos(model: AuSiL, videos: Iterable[np.ndarray]) -> Iterator[torch.Tensor]:
    """``model.embed`` of each video's descriptors, in order, computed over concatenated segments.

    Whitening and attention act on each segment alone, so one large matrix product gives the same
    rows as one product per video, several times faster on a CPU than hundreds of small ones. Videos
    are read lazily and embedded about :data:`EMBED_ROWS` segments at a time, so memory stays bounded.
    """
    pending: list[np.ndarray] = []

    def flush() -> list[torch.Tensor]:
        batch = torch.as_tensor(np.concatenate(pending), dtype=torch.float32, device=model.device)
        with torch.inference_mode():
            parts = list(torch.split(model.embed(batch), [len(v) for v in pending]))
        pending.clear()
        return parts

    for video in videos:
        if pending and sum(map(len, pending)) + len(video) > EMBED_ROWS:
            yield from flush()
        pending.append(np.asarray(video, dtype=np.float32))
    if pending:
        yield from flush()


def _score_ausil(method: Method, benchmark: Benchmark, device: str | None) -> tuple[dict, dict[str, str]]:
    similarities, failed = variant_similarities(method, benchmark, device)
    return best_over_variants(similarities, method.variant_penalty), failed


def variant_similarities(
    method: Method, benchmark: Benchmark, device: str | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """An ``ausil`` method's similarities, one row per query and, with ``speeds_dir``, one per speed
    variant (``<query>@x<factor>``), before :func:`best_over_variants` keeps a candidate's best; and the
    ids that could not be scored, with why. As :meth:`AuSiL.prepare` then :func:`ausil_scores`: database
    videos repeated to at least 10 segments (after embedding, which acts per segment), queries shorter
    than 4 segments skipped."""
    model = load_model(method.model_dir, device)
    model.chamfer_rule = method.chamfer_rule or model.chamfer_rule
    store = FeatureStore(method.features_dir)
    stored = set(store.ids())
    failed = {v: "no descriptors in the store" for v in dict.fromkeys(benchmark.query_ids + benchmark.database_ids)
              if v not in stored}
    query_ids = [v for v in benchmark.query_ids if v in stored]
    loaders = [lambda v=v: store.load(v) for v in query_ids]
    if method.speeds_dir is not None:  # each query's variants join as queries of their own, maxed below
        speeds = FeatureStore(method.speeds_dir)
        wanted = set(query_ids)
        variant_ids = [s for s in speeds.ids() if base_id(s) in wanted]
        query_ids += variant_ids
        loaders += [lambda v=v: speeds.load(v) for v in variant_ids]
    queries = []
    for vid, embedded in zip(query_ids, embed_videos(model, (load() for load in loaders))):
        if len(embedded) < MIN_QUERY_SEGMENTS:
            if base_id(vid) != vid:
                continue  # a query played faster can fall under the minimum: its other variants still count
            failed[vid] = f"a query needs at least {MIN_QUERY_SEGMENTS} segments, this one has {len(embedded)}"
        else:
            queries.append((vid, embedded))
    if not queries:
        raise ValueError(f"{method.name}: no query of {benchmark.name} can be scored: {failed}")
    database_ids = [v for v in benchmark.database_ids if v in stored]
    embedded = embed_videos(model, (store.load(v) for v in database_ids))
    database = ((vid, repeat_short(e)) for vid, e in zip(database_ids, embedded))
    return ausil_scores(model, queries, database), failed


@torch.inference_mode()
def ausil_scores(
    model: AuSiL, queries: Sequence[tuple[str, torch.Tensor]], database: Iterable[tuple[str, torch.Tensor]]
) -> dict[str, dict[str, float]]:
    """:func:`ausil_lite.similarity.scoring.score_database` for an AuSiL model, with each chunk's
    candidates padded once and shared by every query: one batched product per query and chunk gives
    the similarity matrices (zero beyond each candidate's length, as the scorer's own padding), where
    the scorer makes one small product per pair."""
    similarities: dict[str, dict[str, float]] = {qid: {} for qid, _ in queries}
    for batch in chunked(database):
        padded, lengths = pad_sequences([c for _, c in batch])
        candidates = padded.transpose(1, 2)  # (B, dim, max Y)
        for qid, query in queries:
            scores, _ = model.compare_matrices(query @ candidates, torch.tensor([len(query)], device=query.device), lengths)
            similarities[qid].update(zip((vid for vid, _ in batch), map(float, scores.cpu().numpy())))
    return similarities


CHAMFER_ROWS = 20_000
"""Database segments per matrix product in :func:`chamfer_scores` (about 200 MB of float32 at 2528 dims)."""


def chamfer_scores(query: np.ndarray, database: Sequence[np.ndarray]) -> np.ndarray:
    """Chamfer similarity of one query with each database video, as ``ChamferBaseline.score`` gives it.

    ``query`` (X, D) and each database entry (Y_i, D) are unit-norm rows (the chamfer baseline's
    fingerprints). One matrix product per chunk of concatenated database segments, then the maximum
    over each video's columns and the mean over the query's rows, instead of one small product per
    pair: the same numbers, tens of times fewer calls.
    """
    scores: list[np.ndarray] = []
    start = 0
    while start < len(database):
        stop, rows = start, 0
        while stop < len(database) and (stop == start or rows + len(database[stop]) <= CHAMFER_ROWS):
            rows += len(database[stop])
            stop += 1
        chunk = database[start:stop]
        sims = query @ np.concatenate(chunk).T  # (X, sum of Y_i)
        offsets = np.cumsum([0] + [len(c) for c in chunk[:-1]])
        scores.append(np.maximum.reduceat(sims, offsets, axis=1).mean(axis=0))
        start = stop
    return np.concatenate(scores) if scores else np.empty(0)


def _score_descriptor_baseline(method: Method, benchmark: Benchmark) -> tuple[dict, dict[str, str]]:
    baseline = make_baseline(method.kind, dataclasses.asdict(store_extraction(method.features_dir)))
    store = FeatureStore(method.features_dir)
    stored = set(store.ids())
    ids = [v for v in dict.fromkeys(benchmark.query_ids + benchmark.database_ids) if v in stored]
    fingerprints = store_fingerprints(baseline, store, ids)
    failed = {v: "no descriptors in the store" for v in dict.fromkeys(benchmark.query_ids + benchmark.database_ids)
              if v not in stored}
    queries = {v: fingerprints[v] for v in benchmark.query_ids if v in fingerprints}
    database = {v: fingerprints[v] for v in benchmark.database_ids if v in fingerprints}
    if method.kind == "chamfer":
        names, candidates = list(database), list(database.values())
        return {q: dict(zip(names, map(float, chamfer_scores(x, candidates)))) for q, x in queries.items()}, failed
    return similarity_json(baseline, queries, database), failed


def fingerprint_parallel(
    baseline, videos: Sequence[tuple[str, Path]], cache: FingerprintCache, workers: int = 2, progress: bool = False
) -> tuple[dict[str, Any], dict[str, str]]:
    """Fingerprints of ``(id, path)`` pairs, computed in ``workers`` threads and cached; ids whose audio
    cannot be read are returned with the reason (any other error propagates).

    A cache entry is named by the id, the file's size and its modification time, so a video rendered
    again under the same id (a rebuilt benchmark) is fingerprinted again, never served stale.
    """
    keys = {vid: cache_name(vid, Path(path)) for vid, path in videos}
    todo = [(vid, path) for vid, path in videos if not cache.has(keys[vid])]
    failed: dict[str, str] = {}
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(baseline.fingerprint, Path(path)): vid for vid, path in todo}
            bar = tqdm(as_completed(futures), total=len(futures), desc=baseline.name, unit="video",
                       disable=not progress, file=sys.stderr)
            for future in bar:
                vid = futures[future]
                try:
                    cache.save(keys[vid], future.result())
                except AudioError as exc:
                    failed[vid] = str(exc)
    return {vid: cache.load(keys[vid]) for vid, _ in videos if vid not in failed}, failed


def cache_name(video_id: str, path: Path) -> str:
    """The fingerprint cache's name for one version of a media file: id, size (bytes), mtime (ns)."""
    stat = path.stat()
    return f"{video_id}_{stat.st_size}_{stat.st_mtime_ns}"


def _score_media_baseline(method: Method, benchmark: Benchmark, workers: int) -> tuple[dict, dict[str, str]]:
    baseline = make_baseline(method.kind)
    cache = FingerprintCache(method.cache_dir, baseline)
    everything = list(dict.fromkeys(benchmark.query_ids + benchmark.database_ids))
    fingerprints, failed = fingerprint_parallel(baseline, benchmark.videos(everything), cache, workers)
    failed |= {v: "no local media" for v in everything if v not in benchmark.paths}
    queries = {v: fingerprints[v] for v in benchmark.query_ids if v in fingerprints}
    database = {v: fingerprints[v] for v in benchmark.database_ids if v in fingerprints}
    return similarity_json(baseline, queries, database), failed


def _provenance_of(method: Method) -> dict[str, Any]:
    """Backbone, seed and training details of what a method ran on, for the results tables."""
    record: dict[str, Any] = {"backbone": method.backbone, "seed": None}
    if method.features_dir is not None:
        record["seed"] = store_extraction(method.features_dir).seed
    if method.model_dir is not None:
        trained = read_provenance(method.model_dir)
        record.update(seed=trained.get("seed"), epoch=trained.get("epoch"), model_commit=trained.get("git_commit"))
    return record


def score_method(
    method: Method,
    benchmark: Benchmark,
    output: str | Path,
    device: str | None = None,
    workers: int = 2,
    force: bool = False,
) -> ScoredMethod:
    """Similarities of ``method`` on ``benchmark`` in ``output`` (JSON) and ``output``'s ``.meta.json``.

    Reuses the files when their recorded input key matches (unless ``force``); otherwise computes,
    writes and returns them.
    """
    output = Path(output)
    meta_path = output.with_suffix(".meta.json")
    key = input_key(method, benchmark)
    if not force and output.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("key") == key:
            return ScoredMethod(method, read_similarities(output), meta, reused=True)
    started = time.perf_counter()
    if method.kind == "ausil":
        similarities, failed = _score_ausil(method, benchmark, device)
    elif method.kind in DESCRIPTOR_KINDS:
        similarities, failed = _score_descriptor_baseline(method, benchmark)
    else:
        similarities, failed = _score_media_baseline(method, benchmark, workers)
    meta = {
        "key": key,
        "method": dataclasses.asdict(method),
        "benchmark": benchmark.name,
        **_provenance_of(method),
        "queries": len(similarities),
        "database": len(next(iter(similarities.values()), {})),
        "failed": failed,
        "git_commit": git_commit(),
        "scored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    write_similarities(output, similarities)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return ScoredMethod(method, similarities, meta, reused=False)
