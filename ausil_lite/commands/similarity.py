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
from dataclasses import asdict
from pathlib import Path

from ausil_lite.commands.model_choice import DEFAULT_HELP, add_backbone_options, extraction_choice, scoring_model
from ausil_lite.descriptors.extraction import ExtractionConfig, describe_extraction
from ausil_lite.descriptors.speeds import VARIANT_PENALTY, grid_label, model_variant_penalty, speed_grid
from ausil_lite.descriptors.video_list import read_video_list
from ausil_lite.errors import InputError
from ausil_lite.evaluation.protocol import write_similarities
from ausil_lite.similarity import ChamferScorer, load_model
from ausil_lite.similarity.model import read_provenance
from ausil_lite.similarity.video_lists import score_video_lists


def extraction_config(args: argparse.Namespace) -> ExtractionConfig:
    """The backbone for media paths: as given, else as recorded with ``--model`` (at the default precision:
    descriptors are made afresh, not added to a store), else the released one."""
    recorded = None
    if args.model is not None and args.backbone is None:
        recorded = read_provenance(args.model).get("data", {}).get("extraction")
    return extraction_choice(args, recorded, args.device, keep_precision=False)


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
    width = scorer.whitening.mean.shape[-1] if model_dir is not None else None
    try:
        scores = score_video_lists(queries, database, scorer, extraction, width, args.speeds, penalty,
                                   lambda role, vid, exc: print(f"SKIPPED {role} {vid}: {exc}", file=sys.stderr))
    except InputError as exc:
        raise InputError(f"{args.queries}: {exc}") from None
    write_similarities(args.output, scores.similarities)
    model = describe_extraction(asdict(extraction)) if model_dir is None or extraction.backbone == "released" else str(model_dir)
    speeds = f", {grid_label(speed_grid(args.speeds))} (variant penalty {penalty:g})" if args.speeds else ""
    print(f"{len(scores.similarities)} queries x {scores.database_scored} database videos scored with {scorer.name} "
          f"({model}{speeds}); {skipped_summary(scores.failed)}; wrote {args.output}")
    return 1 if scores.failed else 0


def skipped_summary(failed: dict[tuple[str, str], str], named: int = 5) -> str:
    """Which videos were skipped, named again at the end (their messages scroll by among the progress bars); the
    first ``named`` only, so a list whose drive is missing gives one readable line, not thousands of ids."""
    if not failed:
        return "nothing skipped"
    names = [f"{role} {vid}" for role, vid in failed]
    more = f", +{len(names) - named} more" if len(names) > named else ""
    return f"{len(names)} skipped ({', '.join(names[:named])}{more})"
