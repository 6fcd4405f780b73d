"""Where a match is: the aligned time span in the query and in the matched video.

From a segment similarity matrix S (query rows x candidate columns; segment i starts at i seconds
and lasts 2 s), each query row votes for its best column when that similarity stands out of the
matrix: at least ``ratio`` of the matrix's maximum (a fixed level would not suit both the whitened
cosines of chamfer reranking and the attention-weighted ones of the model). The span is the best-scoring chain of such votes
that moves forward in both videos, at a pace between half and double speed with short gaps allowed,
so a speed-changed or partly covered copy still gives one span, and isolated chance matches do not
stretch it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEGMENT_S = 2.0  # a segment covers 2 s of audio
STEP_S = 1.0  # consecutive segments start 1 s apart


@dataclass(frozen=True)
class Span:
    """Aligned spans in seconds: ``query`` and ``match`` are (start, end); ``pairs`` the matched segments."""

    query: tuple[float, float]
    match: tuple[float, float]
    pairs: int


def _chain(rows: np.ndarray, cols: np.ndarray, sims: np.ndarray, max_gap: int) -> np.ndarray:
    """Indices of the highest-sum chain with rows increasing, columns non-decreasing, 0 <= dcol <= 2 drow + 1."""
    n = len(rows)
    best = sims.astype(np.float64).copy()
    prev = np.full(n, -1)
    for k in range(n):
        for m in range(k - 1, -1, -1):
            d_row = rows[k] - rows[m]
            if d_row > max_gap:
                break
            d_col = cols[k] - cols[m]
            if d_row > 0 and 0 <= d_col <= 2 * d_row + 1 and best[m] + sims[k] > best[k]:
                best[k], prev[k] = best[m] + sims[k], m
    chain = [int(np.argmax(best))]
    while prev[chain[-1]] >= 0:
        chain.append(int(prev[chain[-1]]))
    return np.array(chain[::-1])


def aligned_span(
    sim: np.ndarray,
    query_duration: float | None = None,
    match_duration: float | None = None,
    ratio: float = 0.6,
    max_gap: int = 4,
    min_pairs: int = 2,
) -> Span | None:
    """The aligned span of a (X, Y) segment similarity matrix, or None when no row stands out.

    ``query_duration``/``match_duration`` (seconds) clip the spans' ends to the audio's length.
    ``max_gap``: most query segments skipped between two links of the chain; a chain of fewer than
    ``min_pairs`` links is not a span.
    """
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or 0 in sim.shape:
        raise ValueError(f"expected a non-empty (X, Y) similarity matrix, got shape {sim.shape}")
    threshold = ratio * sim.max()
    cols = sim.argmax(axis=1)
    best = sim[np.arange(len(sim)), cols]
    rows = np.flatnonzero((best >= threshold) & (best > 0))
    if len(rows) == 0:
        return None
    chain = _chain(rows, cols[rows], best[rows], max_gap)
    if len(chain) < min_pairs:
        return None
    q0, q1 = rows[chain[0]], rows[chain[-1]]
    m0, m1 = cols[rows[chain[0]]], cols[rows[chain[-1]]]

    def seconds(first: int, last: int, duration: float | None) -> tuple[float, float]:
        end = last * STEP_S + SEGMENT_S
        return float(first * STEP_S), float(end if duration is None else min(end, max(duration, first * STEP_S)))

    return Span(seconds(q0, q1, query_duration), seconds(m0, m1, match_duration), len(chain))
