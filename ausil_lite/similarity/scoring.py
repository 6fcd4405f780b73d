"""Score every query against every database video with a scorer (AuSiL-lite or plain chamfer).

A scorer answers ``prepare(descriptors, role) -> prepared`` (``role`` "query" or "database") and
``score_many(prepared_query, [prepared candidates]) -> np.ndarray``. Queries are prepared once and
held; database videos stream past in chunks, each chunk scored against every query in one padded
batch, so memory holds the queries plus one chunk, however large the database.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from tqdm import tqdm

CHUNK = 64  # database videos per padded batch: the CPU's fastest batch size for 60 x 60 maps

Item = TypeVar("Item")


def chunked(items: Iterable[Item], size: int = CHUNK) -> Iterator[list[Item]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily: a database streams past a chunk at a time."""
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_database(
    scorer, queries: Sequence[tuple[str, object]], database: Iterable[tuple[str, object]], chunk: int = CHUNK
) -> dict[str, dict[str, float]]:
    """``{query: {video: similarity}}`` for prepared queries and a stream of prepared database videos."""
    if not queries:
        raise ValueError("no queries to score")
    similarities: dict[str, dict[str, float]] = {qid: {} for qid, _ in queries}
    for batch in chunked(database, chunk):
        ids, candidates = [vid for vid, _ in batch], [c for _, c in batch]
        for qid, query in queries:
            similarities[qid].update(zip(ids, map(float, scorer.score_many(query, candidates))))
    return similarities


def similarities_from_store(
    scorer, store, query_ids: Iterable[str], database_ids: Iterable[str], progress: bool = True
) -> dict[str, dict[str, float]]:
    """Similarities of ``query_ids`` to ``database_ids`` from a :class:`ausil_lite.descriptors.store.FeatureStore`.

    Every id must be in the store (check with ``benchmark.missing(available=store.ids())`` first and
    pass only what is there: the evaluation counts the rest as misses or removes them, by convention).
    """
    queries = [(vid, scorer.prepare(store.load(vid), "query")) for vid in query_ids]
    ids = list(database_ids)
    stream = ((vid, scorer.prepare(store.load(vid), "database")) for vid in ids)
    bar = tqdm(stream, total=len(ids), desc=f"similarity ({scorer.name})", unit="video", disable=not progress, file=sys.stderr)
    return score_database(scorer, queries, bar)
