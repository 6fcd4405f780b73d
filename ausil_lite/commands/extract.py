"""``ausil-lite extract``: descriptors for every video of an ``id path`` list into a feature store."""

from __future__ import annotations

import argparse
import dataclasses

from ausil_lite.commands.model_choice import DEFAULT_HELP, add_backbone_options, add_workers_option, extraction_choice, require_model
from ausil_lite.descriptors.store import FeatureStore, extract_videos
from ausil_lite.descriptors.video_list import read_video_list


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extract",
        help="extract AuSiL audio descriptors for a list of videos (resumable)",
        description="Decode each video's audio track, compute 2-s segment MAC descriptors and store them "
        "under OUTPUT (features/<id>.npy + index.csv). A rerun skips finished ids; bad files are recorded "
        "with their reason and the batch goes on; damaged files of which only a part decoded are stored and listed "
        "as PARTIAL. Exit code 0 when every video is stored whole, 1 when some failed, 3 when none failed but some "
        "were stored in part. "
        + DEFAULT_HELP,
    )
    p.add_argument("--videos", required=True, help="text file of 'id path' lines (the original's format)")
    p.add_argument("--output", required=True, help="feature store folder")
    add_backbone_options(p)
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: CUDA when available)")
    p.add_argument("--batch-size", type=int, default=64, help="segments per forward pass")
    add_workers_option(p)
    p.add_argument("--retry-failed", action="store_true", help="try again the videos that failed before")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = dataclasses.replace(extraction_choice(args, device=args.device), batch_size=args.batch_size)
    videos = read_video_list(args.videos)
    require_model(config)
    summary = extract_videos(videos, FeatureStore(args.output), config, workers=args.workers, retry_failed=args.retry_failed)
    print(summary)
    return 1 if summary.failed else 3 if summary.partial else 0
