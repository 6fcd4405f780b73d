"""``ausil-lite similarity``: similarities of query videos to database videos, in the original's JSON.

Each list line is ``id path``; the path is a media file (descriptors are extracted on the fly) or a
stored ``.npy`` feature file. By default the released model extracts and scores; ``--model`` scores
with another trained AuSiL-lite model, and another ``--backbone`` without ``--model`` with plain
chamfer similarity of the descriptors (see :mod:`ausil_lite.commands.model_choice`). ``--speeds``
adds each query played at other speeds, as ``query --speeds`` does. A bad item is reported with its
reason and skipped; the exit code is 1 when any was.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ausil_lite.audio import load_audio
from ausil_lite.commands.model_choice import DEFAULT_HELP, add_backbone_options, extraction_choice, scoring_model
from ausil_lite.descriptor_files import DescriptorFileError, read_descriptor_file
from ausil_lite.errors import InputError
from ausil_lite.evaluation import write_similarities
from ausil_lite.features import ExtractionConfig, FeatureExtractor, describe_extraction
from ausil_lite.similarity import ChamferScorer, load_model
from ausil_lite.similarity.model import MIN_QUERY_SEGMENTS, read_provenance
from ausil_lite.similarity.scoring import score_database
from ausil_lite.speeds import VARIANT_PENALTY, best_over_variants, grid_label, model_variant_penalty, played_at, speed_grid, variant_id
from ausil_lite.video_list import read_video_list


def read_descriptors(path: Path, extract: Callable[[Path], np.ndarray]) -> np.ndarray:
    """Descriptors from a stored ``.npy`` file (checked: :mod:`ausil_lite.descriptor_files`), or ``extract(path)``
    for a media file."""
    return read_descriptor_file(path) if path.suffix.lower() == ".npy" else extract(path)


def extraction_config(args: argparse.Namespace) -> ExtractionConfig:
    """The backbone for media paths: as given, else as recorded with ``--model``, else the released one."""
    recorded = None
    if args.model is not None and args.backbone is None:
        recorded = read_provenance(args.model).get("data", {}).get("extraction")
    return extraction_choice(args, recorded, args.device)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "similarity",
        help="similarities of query videos to database videos (JSON, as the original)",
        description="Score every query against every database video and write {query: {video: similarity}} "
        "JSON. Lists hold 'id path' lines; a path is a media file or a stored .npy feature file. Bad items "
        "are reported and skipped (exit code 1). " + DEFAULT_HELP + " Without --model, another backbone's "
        "descriptors are scored by chamfer similarity.",
    )
    p.add_argument("--queries", required=True, type=Path, help="'id path' list of query videos")
    p.add_argument("--database", required=True, type=Path, help="'id path' list of database videos")
    p.add_argument("--output", required=True, type=Path, help="similarity JSON to write")
    p.add_argument("--model", type=Path, default=None,
                   help="trained model folder (default: the released model; with --backbone other than released: "
                   "chamfer of descriptors)")
    add_backbone_options(p, "the one --model records, else released; used for media paths")
    p.add_argument("--speeds", type=int, default=0, metavar="N",
                   help="also score each query played at 0.7x-1.4x, N steps per octave (10: 11 speeds), keeping each "
                   "video's best; finds sped-up or slowed-down copies; a match at another speed scores the model's "
                   f"calibrated penalty lower ({VARIANT_PENALTY} for chamfer and models that record none); queries "
                   "must be media files (default: 0, off)")
    p.add_argument("--device", default=None, help="torch device (default: CUDA when available)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    queries, database = read_video_list(args.queries), read_video_list(args.database)
    if args.speeds:
        stored = [vid for vid, path in queries if path.suffix.lower() == ".npy"]
        if stored:
            raise InputError(f"{args.queries}: --speeds plays each query's audio at other speeds; "
                             f"give media files, not stored features (e.g. {stored[0]})")
    extraction = extraction_config(args)
    model_dir = scoring_model(args, extraction)
    scorer = load_model(model_dir, args.device) if model_dir is not None else ChamferScorer(args.device)
    penalty = model_variant_penalty(model_dir)
    extractor: list[FeatureExtractor] = []  # built on the first media path only

    def features() -> FeatureExtractor:
        if not extractor:
            extractor.append(FeatureExtractor(extraction))
        return extractor[0]

    failed: dict[tuple[str, str], str] = {}  # (role, id) -> reason

    def skip(role: str, video_id: str, exc: Exception) -> None:
        failed[role, video_id] = str(exc)
        print(f"SKIPPED {role} {video_id}: {exc}", file=sys.stderr)

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
    # every item must have the width the model takes, or (chamfer) the width most queries have
    widths = Counter(x.shape[1] for _, _, x in loaded if x is not None)
    if model_dir is not None:
        width, whose = scorer.whitening.mean.shape[-1], "the model takes"
    else:
        width, whose = (widths.most_common(1)[0][0] if widths else 0), "most queries have"
    prepared = []
    for vid, path, descriptors in loaded:
        if (query := prepare(vid, path, descriptors, "query")) is not None:
            prepared.append((vid, query))
            prepared += speed_variants(vid, path, speed_grid(args.speeds), features, scorer) if args.speeds else []
    if not prepared:
        raise InputError(f"{args.queries}: no usable query among {len(queries)}")
    items = ((vid, prepare(vid, path, read(vid, path, "database"), "database"))
             for vid, path in tqdm(database, desc=f"similarity ({scorer.name})", unit="video", file=sys.stderr))
    similarities = score_database(scorer, prepared, ((vid, c) for vid, c in items if c is not None))
    if args.speeds:
        similarities = best_over_variants(similarities, penalty)
    write_similarities(args.output, similarities)
    scored = len(database) - sum(role == "database" for role, _ in failed)
    model = describe_extraction(asdict(extraction)) if model_dir is None or extraction.backbone == "released" else str(model_dir)
    speeds = f", {grid_label(speed_grid(args.speeds))} (variant penalty {penalty:g})" if args.speeds else ""
    print(f"{len(similarities)} queries x {scored} database videos scored with {scorer.name} ({model}{speeds}); "
          f"{len(failed)} items skipped; wrote {args.output}")
    return 1 if failed else 0


def speed_variants(video_id: str, path: Path, factors, features: Callable[[], FeatureExtractor], scorer) -> list:
    """``(variant id, prepared)`` of a query played at each factor other than 1.0 (:mod:`ausil_lite.speeds`).

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
