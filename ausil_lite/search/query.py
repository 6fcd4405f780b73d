"""Answer a query: stage-1 candidates, stage-2 scores, and the aligned span of each match."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np
import torch

from ausil_lite.config import config_from_dict
from ausil_lite.descriptors.audio import load_audio
from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor
from ausil_lite.descriptors.npy_files import read_descriptor_file
from ausil_lite.descriptors.speeds import model_variant_penalty, played_at
from ausil_lite.errors import InputError
from ausil_lite.search.align import STEP_S, SEGMENT_S, Span, aligned_span
from ausil_lite.search.index import SearchIndex
from ausil_lite.search.rerank import ChamferReranker, ModelReranker
from ausil_lite.search.stage1 import candidate_videos, compact
from ausil_lite.similarity import load_model


MIN_VARIANT_SEGMENTS = 4
"""A speed variant shorter than this (a short query played fast) is left out: too little to vote or rerank."""


@dataclass(frozen=True)
class QueryConfig:
    """How a query is answered (nothing here changes the index)."""

    top: int = 20  # matches listed
    candidates: int = 100  # videos stage 1 passes to stage 2
    neighbours: int = 64  # nearest indexed segments fetched per query segment
    # inverted lists scanned per segment (IVF only). At 100k videos (benchmarks/search_scale.py: DAVR-mini's queries
    # among synthetic videos) stage-1 recall is 0.983 from 16 lists to 256, the ceiling of the compressed codes (an
    # exact scan: 0.992), while stage-1 time grows with the lists: 37 ms at 16, 72 at 32, 290 at 128 (the default
    # from November 2026, when an earlier model's index gained 0.983 -> 0.992 from it). 32 keeps a margin.
    nprobe: int = 32
    threshold: float | None = None  # list only matches scoring at least this (duplicates)
    # a speed variant's score counts this much lower; None: the reranking model's calibrated penalty
    # (ausil_lite.descriptors.speeds.model_variant_penalty), VARIANT_PENALTY for chamfer and for models that record none
    variant_penalty: float | None = None

    def __post_init__(self) -> None:
        for name in ("top", "candidates", "neighbours", "nprobe"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class Match:
    rank: int
    id: str
    source: str
    score: float  # stage-2 similarity
    votes: float  # stage-1 segment votes
    query_span: tuple[float, float] | None  # seconds in the query, None when no segments align
    match_span: tuple[float, float] | None  # seconds in the matched video
    speed: float = 1.0  # the query speed that matched best (1.0 unless searched with speed variants)


@dataclass
class QueryResult:
    matches: list[Match]
    query_duration: float  # seconds
    reranker: str
    candidates: int  # videos scored in stage 2
    timings_ms: dict[str, float] = field(default_factory=dict)
    candidate_ids: list[str] = field(default_factory=list)  # stage 1's candidates, best votes first

    def to_dict(self) -> dict:
        return {
            "query_duration": self.query_duration,
            "reranker": self.reranker,
            "candidates": self.candidates,
            "timings_ms": self.timings_ms,
            "matches": [asdict(m) for m in self.matches],
        }

    def table(self) -> str:
        def span(s: tuple[float, float] | None) -> str:
            return "-" if s is None else f"{s[0]:7.1f}-{s[1]:<7.1f}"

        lines = [f"{'rank':>4}  {'score':>7}  {'query span (s)':<15}  {'match span (s)':<15}  video"]
        for m in self.matches:
            lines.append(f"{m.rank:>4}  {m.score:7.4f}  {span(m.query_span):<15}  {span(m.match_span):<15}  {m.id}  {m.source}")
        if not self.matches:
            lines.append("  (no match)")
        return "\n".join(lines)


@contextlib.contextmanager
def single_threaded():
    """Run searches with one torch and one FAISS thread, restoring the counts afterwards.

    A query's work is many small operations (a few thousand vectors, matrices of ~60 x 60); spread
    over threads they mostly wait on each other, and on a busy machine a query measured 20-40 ms on
    one thread and 0.7-3 s on two. Run concurrent queries from several threads instead.
    """
    torch_threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        faiss.omp_set_num_threads(faiss_threads)


class Searcher:
    """Queries one opened index; safe to share between threads (no state changes while searching)."""

    def __init__(self, index: SearchIndex, model_dir: str | Path | None = None):
        self.index = index
        model_dir = model_dir if model_dir is not None else index.manifest["model"]
        if model_dir is None:
            self.reranker = ChamferReranker()
        else:
            model = load_model(model_dir, "cpu")
            if not np.allclose(model.whitening.mean.numpy(), index.whitening.mean.numpy()) or (
                model.whitening.projection.shape != index.whitening.projection.shape
            ):
                raise InputError(f"{model_dir}: the index {index.root} was not built with this model's whitening; "
                                 "rebuild it with --model")
            self.reranker = ModelReranker(model)
        self.variant_penalty = model_variant_penalty(model_dir)  # a speed variant's loss unless QueryConfig says another
        self._extractor: FeatureExtractor | None = None

    def descriptors(self, path: str | Path) -> np.ndarray:
        """A query's raw descriptors: a stored ``.npy`` file, or extracted by the index's network (:meth:`query_extractor`)."""
        path = Path(path)
        if path.suffix.lower() == ".npy":
            return read_descriptor_file(path, width=self.index.whitening.mean.shape[-1])
        return self.query_extractor().from_file(path)

    def query_extractor(self) -> FeatureExtractor:
        """The network the index's videos were extracted with, at float32 (built on first use).

        An index made by the fast (bfloat16) network is queried with the full one: a query is seconds of
        audio, for which the fast network's compile start-up (30 s or more a process) costs far more than
        it saves, and the full network's descriptors are what the fast ones approximate. On DAVR-unseen with
        speed hypotheses, float32 queries against a bfloat16 database stay within the fast network's gate
        (``card/fast_network.csv``, rows ``-queries-float32``: mAP 0.9720 against 0.9721 with the full network
        on both sides, speed-changed 0.953 against 0.959).
        """
        if self._extractor is None:
            stored = dict(self.index.manifest["extraction"], device="cpu", precision="float32")
            self._extractor = FeatureExtractor(config_from_dict(ExtractionConfig, stored))
        return self._extractor

    def speed_variants(self, path: str | Path, factors: Sequence[float]) -> dict[float, np.ndarray]:
        """Raw descriptors of the query file played at each factor other than 1.0 (:mod:`ausil_lite.descriptors.speeds`)."""
        samples, extractor, variants = load_audio(path), self.query_extractor(), {}
        for factor in factors:
            if factor != 1.0:
                variants[factor] = extractor.from_waveform(played_at(samples, factor, path))
        return variants

    def search(
        self, descriptors: np.ndarray, config: QueryConfig = QueryConfig(), variants: Mapping[float, np.ndarray] = {}
    ) -> QueryResult:
        """Ranked matches for a query's raw (segments, 2528) descriptors.

        ``variants``: the query played at other speeds (factor -> raw descriptors, see
        :meth:`speed_variants`). The query as played gives ``candidates`` videos as without variants,
        and each variant adds its best tenth of that (a copy at the variant's speed votes near the top
        of its list, while letting every variant fill the whole list pushed weak copies of the query as
        played out of it: measured on DAVR-mini with 10k videos). Stage 2 scores each candidate with
        the query and with the variant that voted best for it, less ``config.variant_penalty`` (by
        default the model's own, :attr:`variant_penalty`), and keeps the higher score. Spans are given in the query's own time.
        """
        clock = time.perf_counter()
        penalty = self.variant_penalty if config.variant_penalty is None else config.variant_penalty
        whitened = self.index.whitening.transform(np.asarray(descriptors, dtype=np.float32))
        duration = (len(whitened) - 1) * STEP_S + SEGMENT_S
        speeds = {1.0: whitened} | {f: self.index.whitening.transform(np.asarray(x, dtype=np.float32))
                                    for f, x in variants.items() if f != 1.0 and len(x) >= MIN_VARIANT_SEGMENTS}
        best_votes: dict[int, tuple[float, float]] = {}  # row -> (vote, factor)
        extra = max(1, config.candidates // 10)
        for factor, x in speeds.items():
            found, votes = candidate_videos(
                self.index.stage1, compact(x, self.index.manifest["dims"]["stage1"]), self.index.offsets,
                config.neighbours, config.candidates if factor == 1.0 else extra, config.nprobe,
            )
            for row, vote in zip(found.tolist(), votes.tolist()):
                if row not in best_votes or vote > best_votes[row][0]:
                    best_votes[row] = (vote, factor)
        ranked = sorted(best_votes, key=lambda r: -best_votes[r][0])
        rows = np.array(ranked, dtype=np.int64)
        votes = np.array([best_votes[r][0] for r in ranked], dtype=np.float32)
        timings = {"stage1": (time.perf_counter() - clock) * 1e3}
        clock = time.perf_counter()
        prepared = {1.0: self.reranker.query(whitened)}
        candidates = [self.index.embeddings(int(r)) for r in rows]
        ready = [self.reranker.candidate(c) for c in candidates]
        scores = self.reranker.scores(prepared[1.0], ready) if len(rows) else np.empty(0)
        factor_of = np.ones(len(rows))
        for factor in {best_votes[r][1] for r in ranked} - {1.0}:
            prepared[factor] = self.reranker.query(speeds[factor])
            picks = [k for k, r in enumerate(ranked) if best_votes[r][1] == factor]
            other = self.reranker.scores(prepared[factor], [ready[k] for k in picks])
            for k, value in zip(picks, other - penalty):
                if value > scores[k]:
                    scores[k], factor_of[k] = value, factor
        order = np.argsort(-scores, kind="stable")
        if config.threshold is not None:
            order = order[scores[order] >= config.threshold]
        order = order[: config.top]
        timings["stage2"] = (time.perf_counter() - clock) * 1e3
        clock = time.perf_counter()
        matches = []
        for rank, k in enumerate(order, start=1):
            video = self.index.videos.iloc[int(rows[k])]
            factor = float(factor_of[k])
            played = (len(speeds[factor]) - 1) * STEP_S + SEGMENT_S
            span: Span | None = aligned_span(self.reranker.matrix(prepared[factor], candidates[k]), played,
                                             float(video["duration"]))
            query_span = None if span is None else (  # a variant's seconds, back in the query's own time
                round(min(span.query[0] * factor, duration), 2), round(min(span.query[1] * factor, duration), 2))
            matches.append(Match(
                rank, str(video["id"]), str(video["source"]), float(scores[k]), float(votes[k]),
                query_span, span.match if span else None, factor,
            ))
        timings["align"] = (time.perf_counter() - clock) * 1e3
        ids = self.index.videos["id"].to_numpy()[rows].tolist()
        return QueryResult(matches, duration, self.reranker.name, len(rows), timings, ids)
