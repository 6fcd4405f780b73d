"""Similarities of a list of query videos to a list of database videos: what ``ausil-lite similarity`` does.

Each item is a media file (descriptors extracted on the fly, with one extractor made on the first media
path) or a stored ``.npy`` descriptor file. A bad item is reported through ``skipped`` and left out, so
one damaged file never costs the rest of the lists. With speed hypotheses each query is also played at
other speeds and every database video keeps its best variant, less the model's variant penalty.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ausil_lite.descriptors.audio import load_audio
from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor
from ausil_lite.descriptors.npy_files import DescriptorFileError, read_descriptor_file
from ausil_lite.descriptors.speeds import VARIANT_PENALTY, best_over_variants, played_at, speed_grid, variant_id
from ausil_lite.errors import InputError
from ausil_lite.similarity.model import MIN_QUERY_SEGMENTS
from ausil_lite.similarity.scoring import score_database

VideoList = Sequence[tuple[str, Path]]


def read_descriptors(path: Path, extract: Callable[[Path], np.ndarray]) -> np.ndarray:
    """Descriptors from a stored ``.npy`` file (checked: :mod:`ausil_lite.descriptors.npy_files`), or ``extract(path)``
    for a media file."""
    return read_descriptor_file(path) if path.suffix.lower() == ".npy" else extract(path)


@dataclass
class ListScores:
    similarities: dict[str, dict[str, float]]  # query -> database video -> similarity
    failed: dict[tuple[str, str], str]  # (role, id) -> reason
    database_scored: int


def score_video_lists(
    queries: VideoList,
    database: VideoList,
    scorer,
    extraction: ExtractionConfig,
    width: int | None = None,
    speeds: int = 0,
    penalty: float = VARIANT_PENALTY,
    skipped: Callable[[str, str, Exception], None] = lambda role, video_id, exc: None,
) -> ListScores:
    """Score every usable query against every usable database video with ``scorer``.

    ``width`` is the descriptor width the scorer takes (a model's whitening input); None takes the width
    most queries have (chamfer compares any width, but not two widths). ``speeds`` steps per octave of
    speed hypotheses (0: none). Raises :class:`InputError` when no query is usable, before reading the database.
    """
    extractor: list[FeatureExtractor] = []  # built on the first media path only

    def features() -> FeatureExtractor:
        if not extractor:
            extractor.append(FeatureExtractor(extraction))
        return extractor[0]

    failed: dict[tuple[str, str], str] = {}

    def skip(role: str, video_id: str, exc: Exception) -> None:
        failed[role, video_id] = str(exc)
        skipped(role, video_id, exc)

    def read(video_id: str, path: Path, role: str) -> np.ndarray | None:
        try:
            return read_descriptors(path, lambda p: features().from_file(p))
        except InputError as exc:
            return skip(role, video_id, exc)

    def prepare(video_id: str, path: Path, descriptors: np.ndarray | None, role: str):
        if descriptors is None:
            return None
        try:
            if descriptors.shape[1] != width:
                raise DescriptorFileError(f"{path}: descriptors of width {descriptors.shape[1]}, {whose} {width} "
                                          "(made with another backbone?)")
            return scorer.prepare(descriptors, role)
        except (InputError, ValueError) as exc:  # bad file, or a video the scorer cannot use (too short)
            return skip(role, video_id, exc)

    loaded = [(vid, path, read(vid, path, "query")) for vid, path in tqdm(queries, desc="queries", unit="video", file=sys.stderr)]
    whose = "the model takes"
    if width is None:
        widths = Counter(x.shape[1] for _, _, x in loaded if x is not None)
        width, whose = (widths.most_common(1)[0][0] if widths else 0), "most queries have"
    prepared = []
    for vid, path, descriptors in loaded:
        if (query := prepare(vid, path, descriptors, "query")) is not None:
            prepared.append((vid, query))
            prepared += speed_variants(vid, path, speed_grid(speeds), features, scorer) if speeds else []
    if not prepared:
        raise InputError(f"no usable query among {len(queries)}")
    items = ((vid, prepare(vid, path, read(vid, path, "database"), "database"))
             for vid, path in tqdm(database, desc=f"similarity ({scorer.name})", unit="video", file=sys.stderr))
    similarities = score_database(scorer, prepared, ((vid, c) for vid, c in items if c is not None))
    if speeds:
        similarities = best_over_variants(similarities, penalty)
    return ListScores(similarities, failed, len(database) - sum(role == "database" for role, _ in failed))


def speed_variants(video_id: str, path: Path, factors, features: Callable[[], FeatureExtractor], scorer) -> list:
    """``(variant id, prepared)`` of a query played at each factor other than 1.0 (:mod:`ausil_lite.descriptors.speeds`).

    A variant too short for the scorer (a short query played fast) is left out: the query's other
    speeds still count, as in the study's speed methods.
    """
    samples, out = load_audio(path), []
    for factor in factors:
        if factor == 1.0:
            continue
        descriptors = features().from_waveform(played_at(samples, factor, path))
        if len(descriptors) >= MIN_QUERY_SEGMENTS:
            out.append((variant_id(video_id, factor), scorer.prepare(descriptors, "query")))
    return out
