"""SVD-alpha: audio-duplicate annotations over SVD (Jiang et al., ICCV 2019), read from SVD-shaped files.

The SVD-alpha annotation file (167 queries, 1,492 audio-duplicate pairs, from the AuSiL authors) is not
available to this project, so the reader follows the format of SVD's own release, as its baseline code
(github.com/svdbase/SVD-baselines, ``utils/util.py``) reads it; this is an assumption about SVD-alpha,
stated in data_manifests/svd_alpha.md:

``metadata/test_groundtruth``
    one labelled pair a line: ``query_id candidate_id label``, whitespace-separated; label ``1`` marks a
    duplicate (here: an audio duplicate, ``DA``), ``0`` a labelled negative (kept under ``negative``).
``metadata/unlabeled-data-id``
    the distractors, one id a line.

The database is every labelled candidate plus every unlabeled id (SVD's protocol ranks each query's
labelled candidates and all unlabeled videos; a shared database also ranks other queries' candidates,
which the notes say). An ``annotation.json`` in FIVR's shape with a ``DA`` label is read instead when
given. Media: ``videos/<id>.<ext>`` (SVD-baselines' layout) or a ``videos.txt`` of ``id path`` lines.
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

MANIFEST = REPO_ROOT / "data_manifests" / "svd_alpha.json"
NEGATIVE_LABEL = "negative"


def read_groundtruth(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """``{query: {"DA": [...], "negative": [...]}}`` from SVD's ``query candidate label`` lines."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: ground-truth file not found")
    labels: dict[str, dict[str, int]] = {}
    where: dict[tuple[str, str], int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or fields[2] not in ("0", "1"):
            raise AnnotationError(f"{path}:{number}: expected 'query candidate 0|1', got {line.strip()!r}")
        query, candidate, label = fields
        if query == candidate:
            raise AnnotationError(f"{path}:{number}: query {query!r} is labelled against itself")
        if (query, candidate) in where:
            raise AnnotationError(
                f"{path}:{number}: pair ({query}, {candidate}) already labelled on line {where[query, candidate]}"
            )
        where[query, candidate] = number
        labels.setdefault(query, {})[candidate] = int(label)
    if not labels:
        raise AnnotationError(f"{path}: no labelled pairs")
    return {
        q: {PRIMARY_LABEL: sorted(c for c, v in cands.items() if v), NEGATIVE_LABEL: sorted(c for c, v in cands.items() if not v)}
        for q, cands in labels.items()
    }



def load_svd_alpha(
    root: str | Path | None = None,
    *,
    groundtruth: str | Path | None = None,
    unlabeled: str | Path | None = None,
    annotation: str | Path | None = None,
    media_dir: str | Path | None = None,
    video_list: str | Path | None = None,
) -> Benchmark:
    """SVD-alpha as a :class:`Benchmark` (default root ``data_root()/svd``); file arguments override the layout."""
    root = Path(root) if root is not None else data_root() / "svd"
    unlabeled = Path(unlabeled) if unlabeled is not None else root / "metadata" / "unlabeled-data-id"
    if annotation is not None or (groundtruth is None and (root / "annotation.json").is_file()):
        source = Path(annotation) if annotation is not None else root / "annotation.json"
        annotations = read_annotation_json(source)
    else:
        source = Path(groundtruth) if groundtruth is not None else root / "metadata" / "test_groundtruth"
        annotations = read_groundtruth(source)
    distractors = read_id_list(unlabeled) if unlabeled.is_file() else []
    labelled = sorted({v for labels in annotations.values() for ids in labels.values() for v in ids})
    clash = sorted(set(labelled) & set(annotations))
    if clash:
        raise AnnotationError(f"{source}: ids that are both queries and candidates: {clash[:5]} ({len(clash)})")
    database = labelled + sorted(set(distractors) - set(labelled))
    queries = sorted(q for q in annotations if PRIMARY_LABEL in annotations[q])
    everything = set(database) | set(queries)
    if video_list is None and (root / "videos.txt").is_file():
        video_list = root / "videos.txt"
    paths = local_media(video_list, Path(media_dir) if media_dir is not None else root / "videos", everything, "SVD-alpha")
    notes = [
        f"database: {len(labelled)} labelled candidates + {len(database) - len(labelled)} unlabeled videos",
        "one shared database: each query also ranks other queries' labelled candidates (SVD ranks its own only)",
    ]
    if not unlabeled.is_file():
        notes.append(f"{unlabeled} not found: no unlabeled distractors")
    expected = expected_counts(MANIFEST) if MANIFEST.is_file() else {}
    try:
        return Benchmark("SVD-alpha", annotations, queries, database, paths, expected=expected, notes=notes)
    except AnnotationError as exc:
        raise AnnotationError(f"{source}: {exc}") from exc
