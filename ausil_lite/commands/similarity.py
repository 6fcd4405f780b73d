"""``ausil-lite similarity``: similarities of query videos to database videos, in the original's JSON.

Each list line is ``id path``; the path is a media file (descriptors are extracted on the fly) or a
stored ``.npy`` feature file. With ``--model`` the trained AuSiL-lite model scores the pairs;
without, plain chamfer similarity of the descriptors. A bad item is reported with its reason and
skipped; the exit code is 1 when any was.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ausil_lite.descriptor_files import DescriptorFileError, read_descriptor_file
from ausil_lite.errors import InputError
from ausil_lite.evaluation import write_similarities
from ausil_lite.features import BACKBONES, ExtractionConfig, FeatureExtractor
from ausil_lite.similarity import ChamferScorer, load_model
from ausil_lite.similarity.model import read_provenance
from ausil_lite.similarity.scoring import score_database
from ausil_lite.video_list import read_video_list


def read_descriptors(path: Path, extract: Callable[[Path], np.ndarray]) -> np.ndarray:
    """Descriptors from a stored ``.npy`` file (checked: :mod:`ausil_lite.descriptor_files`), or ``extract(path)``
    for a media file."""
    return read_descriptor_file(path) if path.suffix.lower() == ".npy" else extract(path)


def extraction_config(args: argparse.Namespace) -> ExtractionConfig:
    """The backbone for media paths: as given, else as recorded with the model, else random (seed 0)."""
    recorded = {}
    if args.model is not None and args.backbone is None:
        recorded = dict(read_provenance(args.model).get("data", {}).get("extraction", {}))
    given = {k: v for k, v in (("backbone", args.backbone), ("weights", args.weights), ("seed", args.seed)) if v is not None}
    values = {k: v for k, v in recorded.items() if k in ("backbone", "weights", "seed")} | given
    return ExtractionConfig(**values, device=args.device)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "similarity",
        help="similarities of query videos to database videos (JSON, as the original)",
        description="Score every query against every database video and write {query: {video: similarity}} "
        "JSON. Lists hold 'id path' lines; a path is a media file or a stored .npy feature file. Bad items "
        "are reported and skipped (exit code 1).",
    )
    p.add_argument("--queries", required=True, type=Path, help="'id path' list of query videos")
    p.add_argument("--database", required=True, type=Path, help="'id path' list of database videos")
    p.add_argument("--output", required=True, type=Path, help="similarity JSON to write")
    p.add_argument("--model", type=Path, default=None, help="trained model folder (default: chamfer of descriptors)")
    p.add_argument("--backbone", choices=BACKBONES, default=None,
                   help="for media paths: descriptor network (default: the one the model was trained on, else random)")
    p.add_argument("--weights", default=None, help="for media paths: backbone state dict (kumar2018, selfsup)")
    p.add_argument("--seed", type=int, default=None, help="for media paths: seed of the random backbone (default 0)")
    p.add_argument("--device", default=None, help="torch device (default: CUDA when available)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    queries, database = read_video_list(args.queries), read_video_list(args.database)
    scorer = load_model(args.model, args.device) if args.model else ChamferScorer(args.device)
    extractor: list[FeatureExtractor] = []  # built on the first media path only

    def extract(path: Path) -> np.ndarray:
        if not extractor:
            extractor.append(FeatureExtractor(extraction_config(args)))
        return extractor[0].from_file(path)

    failed: dict[tuple[str, str], str] = {}  # (role, id) -> reason

    def skip(role: str, video_id: str, exc: Exception) -> None:
        failed[role, video_id] = str(exc)
        print(f"SKIPPED {role} {video_id}: {exc}", file=sys.stderr)

    def read(video_id: str, path: Path, role: str) -> np.ndarray | None:
        try:
            return read_descriptors(path, extract)
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
    if args.model:
        width, whose = scorer.whitening.mean.shape[-1], "the model takes"
    else:
        width, whose = (widths.most_common(1)[0][0] if widths else 0), "most queries have"
    prepared = [(vid, prepare(vid, path, x, "query")) for vid, path, x in loaded]
    prepared = [(vid, q) for vid, q in prepared if q is not None]
    if not prepared:
        raise InputError(f"{args.queries}: no usable query among {len(queries)}")
    items = ((vid, prepare(vid, path, read(vid, path, "database"), "database"))
             for vid, path in tqdm(database, desc=f"similarity ({scorer.name})", unit="video", file=sys.stderr))
    similarities = score_database(scorer, prepared, ((vid, c) for vid, c in items if c is not None))
    write_similarities(args.output, similarities)
    scored = len(database) - sum(role == "database" for role, _ in failed)
    print(f"{len(prepared)} queries x {scored} database videos scored with {scorer.name}; "
          f"{len(failed)} items skipped; wrote {args.output}")
    return 1 if failed else 0
