"""mAP per transformation family and per speed or tempo factor, from one similarity file.

DAVR-mini records, for every positive (audio duplicate, label ``DA``), the transformation that made
it: its family (``items.csv`` column ``family``) and, for speed and tempo changes, the overall factor
(columns ``speed`` and ``tempo``, combinations included). The whole-benchmark mAP mixes all of them;
this module asks how well a method finds one kind of duplicate at a time.

Protocol, for a group G of positives (one family, or one speed factor):

- per query, the relevant set is the query's positives that belong to G;
- the query's other positives are removed from its ranking, so they neither help nor hurt (a
  method that ranks an easy re-encoded copy first is not penalised in the "speed 1.3" column for
  it, nor rewarded);
- hard negatives and distractors stay in the ranking; the query itself and ids outside the
  benchmark are dropped, as in :func:`ausil_lite.evaluation.protocol.evaluate`;
- AP is :func:`ausil_lite.evaluation.protocol.average_precision` of that ranking (relevant videos missing
  from the ranking count as misses: the ``keep`` convention); queries with no positive in G are
  skipped; the group's mAP is the mean over the queries evaluated.

Speed and tempo factors are binned to the grid the builder draws from
(:data:`ausil_lite.datasets.transforms.SPEED_FACTORS`, 0.7-1.4); a factor farther than
:data:`FACTOR_TOLERANCE` from every grid value raises rather than landing in a wrong bin. The factor
1.0 stands for the positives with neither a speed nor a tempo change (every other family): the level
the other factors are compared with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ausil_lite.datasets.benchmark import Benchmark
from ausil_lite.datasets.transforms import FAMILIES, SPEED_FACTORS
from ausil_lite.evaluation.protocol import Similarities, average_precision

FACTOR_TOLERANCE = 0.02
"""Largest distance (in factor units) between a recorded factor and the grid value it is binned to."""
UNCHANGED = 1.0
"""The factor bin of positives with no speed and no tempo change."""
GROUPINGS = ("family", "speed", "tempo")

Positives = dict[str, set[str]]
"""``{query id: {positive ids}}``: the relevant set of each query for one group."""


@dataclass(frozen=True)
class SubsetScore:
    """mAP of one group of positives; ``mean_ap`` is NaN when no query has a positive in the group."""

    mean_ap: float
    average_precisions: dict[str, float]  # query -> AP, for the queries evaluated
    positives: int  # relevant videos over the evaluated queries
    skipped: dict[str, str] = field(default_factory=dict)  # query -> why it has no AP here

    @property
    def queries(self) -> int:
        return len(self.average_precisions)


def bin_factor(value: float, grid: tuple[float, ...] = SPEED_FACTORS, tolerance: float = FACTOR_TOLERANCE) -> float:
    """The grid value nearest to ``value``; ValueError when none is within ``tolerance``."""
    nearest = min(grid, key=lambda g: abs(g - value))
    if abs(nearest - value) > tolerance:
        raise ValueError(f"factor {value} is not within {tolerance} of any grid value {grid}")
    return nearest


def _positive_rows(benchmark: Benchmark, table: pd.DataFrame | None) -> pd.DataFrame:
    """One table row per (query, positive) pair of the benchmark's evaluated queries."""
    table = benchmark.table if table is None else table
    if table is None:
        raise ValueError(f"{benchmark.name}: no item table (items.csv) to break the results down by")
    missing = {"id", "family", "speed", "tempo"} - set(table.columns)
    if missing:
        raise ValueError(f"{benchmark.name}: item table lacks columns {sorted(missing)}")
    rows = table.set_index("id")
    pairs = [(q, v) for q in benchmark.query_ids for v in sorted(benchmark.relevant(q, (benchmark.primary_label,)))]
    unknown = sorted({v for _, v in pairs} - set(rows.index))
    if unknown:
        raise ValueError(f"{benchmark.name}: positives missing from the item table: {unknown[:5]} ({len(unknown)})")
    out = rows.loc[[v for _, v in pairs], ["family", "speed", "tempo"]].reset_index()
    out.insert(0, "query", [q for q, _ in pairs])
    for column in ("speed", "tempo"):
        out[column] = pd.to_numeric(out[column].replace("", np.nan))
    return out


def _collect(rows: pd.DataFrame, keys: pd.Series) -> dict[object, Positives]:
    groups: dict[object, Positives] = {}
    for (query, video), key in zip(zip(rows["query"], rows["id"]), keys):
        if key is not None:
            groups.setdefault(key, {}).setdefault(query, set()).add(video)
    return groups


def positive_groups(benchmark: Benchmark, by: str = "family", table: pd.DataFrame | None = None) -> dict[object, Positives]:
    """Each query's positives grouped by ``by``: ``{group: {query: {positive ids}}}``.

    ``family``: groups named by family, in :data:`FAMILIES` order. ``speed`` or ``tempo``: groups keyed
    by the binned factor (float), ascending, 1.0 holding positives with neither change.
    """
    if by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}; choose one of {GROUPINGS}")
    rows = _positive_rows(benchmark, table)
    if by == "family":
        groups = _collect(rows, rows["family"])
        order = [f for f in FAMILIES if f in groups] + sorted(set(groups) - set(FAMILIES))
        return {f: groups[f] for f in order}
    unchanged = rows["speed"].isna() & rows["tempo"].isna()
    keys = [UNCHANGED if plain else (None if math.isnan(f) else bin_factor(f))
            for plain, f in zip(unchanged, rows[by])]
    groups = _collect(rows, pd.Series(keys, dtype=object))
    return {k: groups[k] for k in sorted(groups)}


def changed_positives(benchmark: Benchmark, column: str = "speed", table: pd.DataFrame | None = None) -> Positives:
    """Positives with any ``column`` (speed or tempo) factor, combinations included: ``{query: {ids}}``."""
    if column not in ("speed", "tempo"):
        raise ValueError(f"column must be 'speed' or 'tempo', got {column!r}")
    rows = _positive_rows(benchmark, table)
    changed: Positives = {}
    for query, video, factor in zip(rows["query"], rows["id"], rows[column]):
        if not math.isnan(factor):
            changed.setdefault(query, set()).add(video)
    return changed


def subset_map(similarities: Similarities, benchmark: Benchmark, relevant: Mapping[str, set[str]]) -> SubsetScore:
    """mAP of ``similarities`` when each query's relevant set is ``relevant[query]`` (module protocol).

    Queries absent from ``relevant`` or with an empty set are not evaluated; a query absent from the
    similarities is skipped with its reason, as :func:`ausil_lite.evaluation.protocol.evaluate` does.
    """
    dataset = set(benchmark.query_ids) | set(benchmark.database_ids)
    aps: dict[str, float] = {}
    skipped: dict[str, str] = {}
    positives = 0
    for query in benchmark.query_ids:
        wanted = set(relevant.get(query, ()))
        if not wanted:
            continue
        if query not in similarities:
            skipped[query] = "missing from the similarities"
            continue
        all_positives = benchmark.relevant(query, (benchmark.primary_label,))
        if not wanted <= all_positives:
            raise ValueError(f"query {query!r}: {sorted(wanted - all_positives)[:3]} are not its positives")
        removed = all_positives - wanted
        results = similarities[query]
        for video, sim in results.items():
            if not isinstance(sim, (int, float)) or math.isnan(sim):
                raise ValueError(f"similarity of query {query!r} to {video!r} is not a number: {sim!r}")
        ranking = [
            video for video, _ in sorted(results.items(), key=lambda item: item[1], reverse=True)
            if video != query and video in dataset and video not in removed
        ]
        aps[query] = average_precision(ranking, wanted)
        positives += len(wanted)
    mean = float(np.mean(list(aps.values()))) if aps else float("nan")
    return SubsetScore(mean, aps, positives, skipped)


def breakdown(
    similarities: Similarities, benchmark: Benchmark, by: str = "family", table: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per group: ``group``, ``mAP``, ``queries`` (evaluated), ``positives``."""
    rows = []
    for group, relevant in positive_groups(benchmark, by, table).items():
        score = subset_map(similarities, benchmark, relevant)
        rows.append({"group": group, "mAP": score.mean_ap, "queries": score.queries, "positives": score.positives})
    return pd.DataFrame(rows, columns=["group", "mAP", "queries", "positives"])


def breakdown_table(
    methods: Mapping[str, Similarities], benchmark: Benchmark, by: str = "family", table: pd.DataFrame | None = None
) -> pd.DataFrame:
    """mAP of every method (rows) in every group (columns) of ``by``."""
    groups = positive_groups(benchmark, by, table)
    data = {
        name: {g: subset_map(sims, benchmark, relevant).mean_ap for g, relevant in groups.items()}
        for name, sims in methods.items()
    }
    frame = pd.DataFrame.from_dict(data, orient="index", columns=list(groups))
    frame.columns.name = by
    return frame


def group_sizes(benchmark: Benchmark, by: str = "family", table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Queries and positives in each group of ``by`` (what a column of :func:`breakdown_table` averages)."""
    groups = positive_groups(benchmark, by, table)
    return pd.DataFrame(
        {"queries": [len(r) for r in groups.values()], "positives": [sum(map(len, r.values())) for r in groups.values()]},
        index=pd.Index(list(groups), name=by),
    )


def duplicate_ranks(similarities: Similarities, benchmark: Benchmark, table: pd.DataFrame | None = None) -> pd.Series:
    """Each positive's place among what is not a duplicate of its query, under one method.

    1 + the number of non-duplicates (videos of the benchmark other than the query and its positives)
    scoring at least as high: 1 means the copy outranks every non-duplicate, the condition for AP 1 in
    every column of :func:`breakdown_table`. Ties count against the copy (the order of equal scores is
    arbitrary). Missing (``pd.NA``) where the method did not score the pair. Index: (query, id).
    """
    rows = _positive_rows(benchmark, table)
    dataset = set(benchmark.query_ids) | set(benchmark.database_ids)
    ranks = []
    for query, video in zip(rows["query"], rows["id"]):
        results = similarities.get(query, {})
        if video not in results:
            ranks.append(None)
            continue
        positives = benchmark.relevant(query, (benchmark.primary_label,))
        score = results[video]
        ahead = sum(1 for other, sim in results.items()
                    if sim >= score and other != query and other in dataset and other not in positives)
        ranks.append(1 + ahead)
    return pd.Series(ranks, dtype="Int64", index=pd.MultiIndex.from_arrays([rows["query"], rows["id"]], names=["query", "id"]),
                     name="rank")


def missed_duplicates(
    methods: Mapping[str, Similarities], benchmark: Benchmark, focus: str, table: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The duplicates ``focus`` ranks below some non-duplicate, with every method's rank for each.

    Columns: ``query``, ``id``, ``family``, ``transformation`` (the item table's ``params`` where it has
    them), then one rank column per method, ``focus`` first (:func:`duplicate_ranks`). Sorted by
    family and by ``focus``'s rank, worst last (unscored pairs after them): the rows behind a family column
    below 1.
    """
    if focus not in methods:
        raise ValueError(f"{focus!r} is not among the methods {sorted(methods)}")
    table = benchmark.table if table is None else table
    ranks = pd.DataFrame({name: duplicate_ranks(methods[name], benchmark, table)
                          for name in [focus, *(m for m in methods if m != focus)]})
    missed = ranks[(ranks[focus].isna() | (ranks[focus] > 1)).astype(bool)].reset_index()
    items = table.set_index("id")
    missed.insert(2, "family", items.loc[missed["id"], "family"].to_numpy())
    params = items["params"] if "params" in items.columns else pd.Series("", index=items.index)
    missed.insert(3, "transformation", params.loc[missed["id"]].fillna("").to_numpy())
    order = [FAMILIES.index(f) if f in FAMILIES else len(FAMILIES) for f in missed["family"]]
    missed = missed.assign(_order=order).sort_values(["_order", focus], kind="stable").drop(columns="_order")
    return missed.reset_index(drop=True)


OWN_TRACK, OTHER_TRACKS = "the query's own track", "other tracks"


def outranking_sources(similarities: Similarities, benchmark: Benchmark, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Where the non-duplicates that outrank a duplicate were cut from: the query's own source track (another
    moment of the same recording: the builder's hard negatives, and other queries' copies of that track) or
    another track, beside how common each source is among all non-duplicates.

    Rows :data:`OWN_TRACK` and :data:`OTHER_TRACKS`; columns ``non-duplicates`` (summed over the queries),
    ``outranking`` ((duplicate, non-duplicate) pairs in which the non-duplicate scores at least as high: what
    :func:`duplicate_ranks` counts) and ``duplicates outranked`` (duplicates that at least one non-duplicate from
    that source outranks). Needs the item table's ``track`` column.
    """
    table = benchmark.table if table is None else table
    if table is None or "track" not in table.columns:
        raise ValueError(f"{benchmark.name}: no item table with a 'track' column to tell where non-duplicates come from")
    track = table.set_index("id")["track"].to_dict()
    dataset = set(benchmark.query_ids) | set(benchmark.database_ids)
    counts = {source: {"non-duplicates": 0, "outranking": 0, "duplicates outranked": 0}
              for source in (OWN_TRACK, OTHER_TRACKS)}
    for query in benchmark.query_ids:
        positives = benchmark.relevant(query, (benchmark.primary_label,))
        results = similarities.get(query, {})
        negatives = {other: OWN_TRACK if track.get(other) == track.get(query) else OTHER_TRACKS
                     for other in dataset if other != query and other not in positives}
        for source in negatives.values():
            counts[source]["non-duplicates"] += 1
        for video in positives:
            if video not in results:
                continue
            ahead = [negatives[other] for other, sim in results.items() if other in negatives and sim >= results[video]]
            for source in (OWN_TRACK, OTHER_TRACKS):
                counts[source]["outranking"] += ahead.count(source)
                counts[source]["duplicates outranked"] += source in ahead
    frame = pd.DataFrame.from_dict(counts, orient="index")
    frame.index.name = "source"
    return frame


def identity_margins(
    similarities: Similarities, self_scores: Mapping[str, float], benchmark: Benchmark, table: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per query: the method's score of the query against itself beside its lowest-scored duplicate and its
    highest-scored other moment of its own track (:data:`OWN_TRACK` non-duplicates).

    An identical copy is the most a query can meet, so a method whose score of another moment of the query's
    recording tops the query's own self-score ranks by what the audio is like (a steady texture, a repeating
    loop) rather than by whether it is the same audio. Index ``query``; columns ``self`` (from ``self_scores``,
    NaN where absent), ``lowest duplicate``, ``highest own-track`` (NaN where the benchmark holds no other
    moment of the query's track), ``duplicate below own-track`` (the lowest duplicate scores at most the
    highest own-track moment: that query's AP is below 1 in some family column) and ``own-track above self``
    (another moment of the query's track scores above the query itself). Needs the item table's ``track`` column.
    """
    table = benchmark.table if table is None else table
    if table is None or "track" not in table.columns:
        raise ValueError(f"{benchmark.name}: no item table with a 'track' column to tell the query's own track")
    track = table.set_index("id")["track"].to_dict()
    dataset = set(benchmark.query_ids) | set(benchmark.database_ids)
    rows = {}
    for query in benchmark.query_ids:
        positives = benchmark.relevant(query, (benchmark.primary_label,))
        results = similarities.get(query, {})
        duplicates = [results[v] for v in positives if v in results]
        own = [sim for other, sim in results.items() if other != query and other in dataset
               and other not in positives and track.get(other) == track.get(query)]
        rows[query] = {"self": self_scores.get(query, np.nan),
                       "lowest duplicate": min(duplicates, default=np.nan),
                       "highest own-track": max(own, default=np.nan)}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame["duplicate below own-track"] = frame["lowest duplicate"] <= frame["highest own-track"]
    frame["own-track above self"] = frame["highest own-track"] > frame["self"]
    frame.index.name = "query"
    return frame
