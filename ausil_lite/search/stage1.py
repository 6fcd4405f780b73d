"""Stage 1: approximate nearest-neighbour search over compact segment descriptors (FAISS).

Each indexed segment is reduced to its first ``dim`` whitened components (the whitening orders
components by variance), L2-normalised and compressed. A query's segments each fetch their
``neighbours`` nearest indexed segments; every video found scores, per query segment, its best
similarity, summed over the query's segments (a partial chamfer similarity), and the best-scoring
videos are the candidates for stage 2.

Compression by size: below ``ivf_min_segments`` an exhaustive scan of 8-bit scalar-quantised codes
(``sq8``: ``dim`` bytes a segment, exact up to quantisation, trains on any number of segments);
above it an inverted file with product quantisation (``ivf-pq``: ``pq_bytes`` a segment plus an
8-byte id, scanning ``nprobe`` of ``nlist`` lists). The index's defaults (``IndexConfig``: 128 dims,
64-byte codes) were measured on 100k videos (DAVR-mini ci's 300 plus synthetic ones, selfsup descriptors,
120 duplicate pairs, the query as played): an exact scan of 64 dims finds 0.983 of the duplicates, of 128
dims 0.992 (the copy embedded in other audio and band-limited to a telephone's band comes in); 32-byte
codes on 64 dims keep 0.983 (8-byte ones lose 3 %: 0.958), on 128 dims lose a speed-changed copy (0.983),
64-byte codes on 128 dims keep 0.992, at 0.25 MB per hour of audio. The table of codes on 10k videos that
``benchmarks/search_scale.py`` records under ``"compression"`` cannot tell these apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import faiss
import numpy as np

KINDS = ("auto", "flat", "sq8", "pq", "ivf-pq", "ivf-sq8")


@dataclass(frozen=True)
class Stage1Config:
    """How stage 1 is built (fixed when an index is built; recorded in its manifest)."""

    dim: int = 64  # whitened components kept per segment
    kind: str = "auto"  # "auto": sq8 below ivf_min_segments segments, else ivf-pq
    pq_bytes: int = 32  # bytes per segment of the PQ codes (pq, ivf-pq); must divide dim
    ivf_min_segments: int = 200_000  # ~55 h of audio: below it an exhaustive scan of 8-bit codes is fast enough
    train_per_list: int = 40  # training segments per inverted list (faiss warns below 39)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown stage-1 kind {self.kind!r}; choose one of {KINDS}")
        if self.dim < 1 or self.dim % self.pq_bytes:
            raise ValueError(f"dim ({self.dim}) must be positive and divisible by pq_bytes ({self.pq_bytes})")

    def resolved_kind(self, n_segments: int) -> str:
        if self.kind != "auto":
            return self.kind
        return "sq8" if n_segments < self.ivf_min_segments else "ivf-pq"


def compact(whitened: np.ndarray, dim: int) -> np.ndarray:
    """Stage-1 vectors: the first ``dim`` whitened components, L2-normalised, float32 (N, dim)."""
    x = np.ascontiguousarray(np.asarray(whitened, dtype=np.float32)[:, :dim])
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def n_lists(n_segments: int) -> int:
    """Inverted lists for ``n_segments``: the power of two nearest sqrt(n), at least 64.

    Fewer lists than the usual 4 sqrt(n) keep training (k-means on ``train_per_list`` segments per
    list) within a minute on two cores at 6M segments; queries scan more codes per list instead.
    """
    return max(64, 2 ** round(math.log2(math.sqrt(max(n_segments, 1)))))


def factory(kind: str, dim: int, n_segments: int, config: Stage1Config) -> str:
    """The FAISS index factory string of ``kind`` for ``n_segments`` segments."""
    return {
        "flat": "Flat",
        "sq8": "SQ8",
        "pq": f"PQ{config.pq_bytes}",
        "ivf-pq": f"IVF{n_lists(n_segments)},PQ{config.pq_bytes}",
        "ivf-sq8": f"IVF{n_lists(n_segments)},SQ8",
    }[kind]


def build_stage1(
    training: np.ndarray, chunks: Iterable[np.ndarray], n_segments: int, config: Stage1Config, seed: int = 0
) -> tuple[faiss.Index, str]:
    """Train on a sample of ``training`` vectors, then add ``chunks`` in order (ids = positions).

    ``n_segments``: the total that will be added (sizes the inverted file). Returns the index and
    its factory string.
    """
    kind = config.resolved_kind(n_segments)
    description = factory(kind, config.dim, n_segments, config)
    index = faiss.index_factory(config.dim, description, faiss.METRIC_INNER_PRODUCT)
    inner = faiss.downcast_index(faiss.try_extract_index_ivf(index) or index)
    if hasattr(inner, "do_polysemous_training"):
        inner.do_polysemous_training = False  # a fixed ~12 s of CPU for Hamming filtering, which search does not use
    if kind.startswith("ivf"):
        wanted = n_lists(n_segments) * config.train_per_list
        if len(training) > wanted:
            pick = np.random.default_rng(seed).choice(len(training), wanted, replace=False)
            training = training[np.sort(pick)]
    if kind in ("pq", "ivf-pq") and len(training) < 256:
        raise ValueError(f"{description} needs at least 256 training segments, got {len(training)}")
    index.train(np.ascontiguousarray(training, dtype=np.float32))
    for chunk in chunks:
        index.add(np.ascontiguousarray(chunk, dtype=np.float32))
    return index, description


def search_params(index: faiss.Index, nprobe: int) -> faiss.SearchParameters | None:
    """Per-call parameters (thread-safe, unlike setting ``index.nprobe``)."""
    return faiss.SearchParametersIVF(nprobe=nprobe) if isinstance(faiss.try_extract_index_ivf(index), faiss.IndexIVF) else None


def candidate_videos(
    index: faiss.Index,
    queries: np.ndarray,
    offsets: np.ndarray,
    neighbours: int = 64,
    candidates: int = 100,
    nprobe: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate video rows by segment votes, best first, and their votes.

    ``queries`` (X, dim) stage-1 vectors; ``offsets`` (V + 1,) the first segment id of each video
    row and the total. A video's vote is the sum over query segments of its best similarity among
    that segment's ``neighbours`` nearest indexed segments.
    """
    n_videos = len(offsets) - 1
    k = min(neighbours, index.ntotal)
    if k == 0 or len(queries) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    sims, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=search_params(index, nprobe))
    found = ids >= 0
    rows = np.searchsorted(offsets, ids[found], side="right") - 1
    segment = np.nonzero(found)[0]
    # best similarity per (query segment, video): order by key, then similarity descending; keep the first
    key = segment.astype(np.int64) * n_videos + rows
    order = np.lexsort((-sims[found], key))
    first = np.ones(len(order), bool)
    first[1:] = key[order][1:] != key[order][:-1]
    votes = np.bincount(rows[order][first], weights=sims[found][order][first], minlength=n_videos)
    votes[np.bincount(rows, minlength=n_videos) == 0] = -np.inf  # videos no query segment reached
    top = min(candidates, int(np.isfinite(votes).sum()))
    best = np.argpartition(-votes, top - 1)[:top] if top else np.empty(0, np.int64)
    best = best[np.argsort(-votes[best], kind="stable")]
    return best.astype(np.int64), votes[best].astype(np.float32)
