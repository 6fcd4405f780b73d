"""FIVR-200K-alpha: FIVR-200K's audio-duplicate (``DA``) annotations, read from the official files.

FIVR-200K (Kordopatis-Zilos et al., 2019) ships ``annotation.json`` ({query: {"ND"|"DS"|"CS"|"IS"|"DA":
[youtube ids]}}) and ``youtube_ids.txt`` (the 225,960 dataset ids). FIVR-200K-alpha (AuSiL, ICPR 2020)
evaluates the queries that have a ``DA`` list against the whole dataset. Queries without a ``DA`` key
are not part of the alpha subset (24 of 100 in the public file); a query whose ``DA`` list is present
but empty is an error, as are annotated ids missing from the id list.

Expected layout of ``root`` (default ``data_root()/fivr-200k``; see data_manifests/fivr200k_alpha.md)::

    annotation.json, youtube_ids.txt      the official files
    media/<youtube id>.<ext>              the videos this machine has (any container FFmpeg reads), or
    videos.txt                            "id path" lines pointing at them

Videos without local media stay in the benchmark and are listed by ``Benchmark.missing()``.
"""

from __future__ import annotations

from pathlib import Path

from ausil_lite.datasets.benchmark import (
    PRIMARY_LABEL,
    AnnotationError,
    Benchmark,
    expected_counts,
    local_media,
    read_annotation_json,
    read_id_list,
)
from ausil_lite.paths import REPO_ROOT, data_root

MANIFEST = REPO_ROOT / "data_manifests" / "fivr200k_alpha.json"



def load_fivr200k_alpha(
    root: str | Path | None = None,
    *,
    annotation: str | Path | None = None,
    ids: str | Path | None = None,
    media_dir: str | Path | None = None,
    video_list: str | Path | None = None,
    label: str = PRIMARY_LABEL,
) -> Benchmark:
    """FIVR-200K-alpha as a :class:`Benchmark`; file arguments override the ``root`` layout."""
    root = Path(root) if root is not None else data_root() / "fivr-200k"
    annotation = Path(annotation) if annotation is not None else root / "annotation.json"
    ids = Path(ids) if ids is not None else root / "youtube_ids.txt"
    annotations = read_annotation_json(annotation)
    database = read_id_list(ids)
    known = set(database)
    unknown_queries = sorted(set(annotations) - known)
    if unknown_queries:
        raise AnnotationError(f"{annotation}: queries not in {ids.name}: {unknown_queries[:5]} ({len(unknown_queries)})")
    queries = [q for q in annotations if label in annotations[q]]
    empty = [q for q in queries if not annotations[q][label]]
    if empty:
        raise AnnotationError(f"{annotation}: queries with an empty {label} list: {empty[:5]} ({len(empty)})")
    if video_list is None and (root / "videos.txt").is_file():
        video_list = root / "videos.txt"
    paths = local_media(video_list, Path(media_dir) if media_dir is not None else root / "media", known, "FIVR-200K-alpha")
    notes = [f"{len(annotations) - len(queries)} of {len(annotations)} annotated queries have no {label} label"]
    expected = expected_counts(MANIFEST) if MANIFEST.is_file() else {}
    try:
        return Benchmark(
            "FIVR-200K-alpha", annotations, queries, database, paths, expected=expected, primary_label=label, notes=notes
        )
    except AnnotationError as exc:
        raise AnnotationError(f"{annotation}: {exc}") from exc
