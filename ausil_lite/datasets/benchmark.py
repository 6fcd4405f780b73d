"""One benchmark object for DAVR-mini, FIVR-200K-alpha and SVD-alpha.

A :class:`Benchmark` knows its query ids, its database ids (the videos ranked for every query), the
annotations in the FIVR shape ``{query: {label: [video ids]}}`` (the audio-duplicate label is ``DA``),
and where each video's media is on this machine. Videos without local media stay in the benchmark:
:meth:`Benchmark.missing` lists them and the evaluation counts their relevant ones as misses, as the
FIVR protocol does. Construction validates everything and raises :class:`AnnotationError` naming the
problem: nothing is silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ausil_lite.descriptors.video_list import read_video_list
from ausil_lite.errors import InputError

PRIMARY_LABEL = "DA"


class AnnotationError(InputError, ValueError):
    """Malformed or inconsistent benchmark files; the message names the file and the ids at fault."""


def _preview(ids: Iterable[str], n: int = 5) -> str:
    ids = sorted(ids)
    return ", ".join(ids[:n]) + (f" ... ({len(ids)} in all)" if len(ids) > n else "")


@dataclass
class Benchmark:
    """Queries, database, annotations and local media of one benchmark.

    ``query_ids``: the queries evaluated (those with a non-empty ``primary_label`` list).
    ``database_ids``: every video ranked, in a fixed order. ``paths``: local media by id (a subset).
    ``table``: per-item metadata when the benchmark has it (DAVR-mini: family, parameters, speed).
    ``expected``: counts the benchmark's publication reports, compared by :meth:`count_report`.
    """

    name: str
    annotations: dict[str, dict[str, list[str]]]
    query_ids: list[str]
    database_ids: list[str]
    paths: dict[str, Path] = field(default_factory=dict)
    table: pd.DataFrame | None = None
    expected: dict[str, int] = field(default_factory=dict)
    primary_label: str = PRIMARY_LABEL
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises :class:`AnnotationError` on duplicate ids, unknown ids, or queries with no positives."""
        if len(set(self.database_ids)) != len(self.database_ids):
            raise AnnotationError(f"{self.name}: database ids repeat")
        database = set(self.database_ids)
        unknown_queries = set(self.query_ids) - set(self.annotations)
        if unknown_queries:
            raise AnnotationError(f"{self.name}: queries without annotations: {_preview(unknown_queries)}")
        empty = [q for q in self.query_ids if not self.annotations[q].get(self.primary_label)]
        if empty:
            raise AnnotationError(f"{self.name}: queries with no {self.primary_label} positives: {_preview(empty)}")
        unknown = {v for q in self.query_ids for ids in self.annotations[q].values() for v in ids} - database
        if unknown:
            raise AnnotationError(f"{self.name}: annotated videos not in the database: {_preview(unknown)}")

    def queries(self) -> list[str]:
        return list(self.query_ids)

    def database(self) -> list[str]:
        return list(self.database_ids)

    def relevant(self, query: str, labels: Sequence[str] = (PRIMARY_LABEL,)) -> set[str]:
        """Database ids annotated for ``query`` under any of ``labels``."""
        if query not in self.annotations:
            raise KeyError(f"{self.name}: unknown query {query!r}")
        if isinstance(labels, str):
            labels = (labels,)
        return {v for label in labels for v in self.annotations[query].get(label, [])}

    def path(self, video_id: str) -> Path | None:
        """Local media of ``video_id``, or None when this machine does not have it."""
        return self.paths.get(video_id)

    def videos(self, ids: Iterable[str] | None = None) -> list[tuple[str, Path]]:
        """``(id, path)`` pairs with local media (queries then database by default): input of feature extraction."""
        if ids is None:
            ids = dict.fromkeys(self.query_ids + self.database_ids)
        return [(v, self.paths[v]) for v in ids if v in self.paths]

    def missing(self, ids: Iterable[str] | None = None, available: Iterable[str] | None = None) -> list[str]:
        """Ids (queries and database by default) with no local media, or not in ``available`` when given
        (e.g. the ids of a feature store)."""
        have = set(self.paths) if available is None else set(available)
        ids = list(dict.fromkeys(self.query_ids + self.database_ids)) if ids is None else list(ids)
        return [v for v in ids if v not in have]

    def n_pairs(self, labels: Sequence[str] = (PRIMARY_LABEL,)) -> int:
        """Number of annotated (query, video) pairs under ``labels`` over the evaluated queries."""
        return sum(len(self.relevant(q, labels)) for q in self.query_ids)

    def count_report(self) -> list[str]:
        """Differences between the counts here and ``expected`` (empty when they agree)."""
        actual = {"queries": len(self.query_ids), "pairs": self.n_pairs(), "database": len(self.database_ids)}
        return [
            f"{self.name}: {key} {actual[key]} here, {value} expected ({actual[key] - value:+d})"
            for key, value in self.expected.items()
            if key in actual and actual[key] != value
        ]

    def summary(self) -> dict[str, int]:
        missing = self.missing()
        relevant = {v for q in self.query_ids for v in self.relevant(q)}
        return {
            "queries": len(self.query_ids),
            "database": len(self.database_ids),
            "pairs": self.n_pairs(),
            "local_media": len(self.paths),
            "missing": len(missing),
            "missing_queries": len(set(missing) & set(self.query_ids)),
            "missing_relevant": len(set(missing) & relevant),
        }


# --- the original file formats --------------------------------------------------------------------------------


def expected_counts(manifest: str | Path) -> dict[str, int]:
    """The counts a paper reports for a benchmark (queries, pairs, database), from its manifest's ``expected``."""
    return {k: int(v) for k, v in json.loads(Path(manifest).read_text(encoding="utf-8"))["expected"].items()}


def read_annotation_json(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """FIVR-style annotations ``{query: {label: [ids]}}``, validated for shape."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected an object {{query: {{label: [ids]}}}}, got {type(data).__name__}")
    for query, labels in data.items():
        if not isinstance(labels, dict):
            raise AnnotationError(f"{path}: query {query!r}: expected {{label: [ids]}}, got {type(labels).__name__}")
        for label, ids in labels.items():
            if not isinstance(ids, list) or not all(isinstance(v, str) for v in ids):
                raise AnnotationError(f"{path}: query {query!r} label {label!r}: expected a list of id strings")
            if len(set(ids)) != len(ids):
                raise AnnotationError(f"{path}: query {query!r} label {label!r}: ids repeat")
    return data


def write_annotation_json(path: str | Path, annotations: Mapping[str, Mapping[str, Sequence[str]]]) -> Path:
    """Deterministic JSON (sorted keys and ids, two-space indent, trailing newline)."""
    path = Path(path)
    data = {q: {label: sorted(ids) for label, ids in sorted(labels.items())} for q, labels in sorted(annotations.items())}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_id_list(path: str | Path) -> list[str]:
    """One id per line (``youtube_ids.txt``, ``dataset_ids.txt``); blank lines skipped; repeats are an error."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: id list not found")
    ids, seen = [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if len(line.split()) != 1:
            raise AnnotationError(f"{path}:{number}: expected one id per line, got {line!r}")
        if line in seen:
            raise AnnotationError(f"{path}:{number}: id {line!r} already on line {seen[line]}")
        seen[line] = number
        ids.append(line)
    return ids


def write_id_list(path: str | Path, ids: Iterable[str]) -> Path:
    path = Path(path)
    path.write_text("".join(f"{v}\n" for v in ids), encoding="utf-8")
    return path


def find_media(media_dir: str | Path, ids: Iterable[str]) -> dict[str, Path]:
    """Local files named ``<id>.<ext>`` in ``media_dir`` (one level), for the ids given."""
    media_dir = Path(media_dir)
    if not media_dir.is_dir():
        return {}
    wanted = set(ids)
    found: dict[str, Path] = {}
    for p in sorted(media_dir.iterdir()):
        if p.is_file() and p.stem in wanted:
            if p.stem in found:
                raise AnnotationError(f"{media_dir}: two files for id {p.stem!r}: {found[p.stem].name}, {p.name}")
            found[p.stem] = p
    return found


def local_media(video_list: str | Path | None, media_dir: str | Path, ids: Iterable[str], benchmark: str) -> dict[str, Path]:
    """Where a benchmark's videos are on this machine: the files ``video_list`` names (``id path`` lines, the
    original's format) when there is a list, else the files named ``<id>.<ext>`` in ``media_dir``.

    A list that names an id the benchmark does not have raises, naming the list: it was made for another
    benchmark or another version of it. Listed files that are not on disk are left out (``Benchmark.missing``)."""
    if video_list is None:
        return find_media(media_dir, ids)
    listed = read_video_list(video_list)
    stray = {v for v, _ in listed} - set(ids)
    if stray:
        raise AnnotationError(f"{video_list}: names ids that are not in {benchmark}: {_preview(stray)}")
    return {v: p for v, p in listed if p.is_file()}
