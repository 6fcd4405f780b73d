"""``ausil-lite build-benchmark``: build DAVR-mini from real recordings, deterministically from a seed."""

from __future__ import annotations

import argparse
import json

import os
import sys

from ausil_lite.datasets.davr_mini import PROFILES, BuildRequest, load_davr_mini


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build-benchmark",
        help="build the DAVR-mini benchmark (real recordings, audio-duplicate positives, hard negatives)",
        description="Cut queries from the source pool (the Debian music and speech packages, plus any "
        "--source-dir), make positives by recorded transformations, add hard negatives and distractors, and "
        "mux every item into a video under OUTPUT (default: <data root>/davr-mini/<profile>). The same seed "
        "gives byte-identical manifests; a rerun keeps finished media.",
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="ci", help="size: tiny, ci (15 queries, 300 videos) or full (100, 3000)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--source-dir", action="append", default=[], help="folder of audio/video files to add to the pool (repeatable)")
    p.add_argument("--no-default-sources", action="store_true", help="use only --source-dir folders, not the Debian packages")
    p.add_argument("--rescan-sources", action="store_true", help="rescan installed packages instead of checking them against data_manifests/")
    p.add_argument("--output", default=None, help="benchmark folder (default: <data root>/davr-mini/<profile>)")
    p.add_argument("--workers", type=int, default=2, help="rendering processes (1: in this process)")
    p.add_argument("--overwrite", action="store_true", help="replace a folder built with another seed, profile or pool")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.no_default_sources and not args.source_dir:
        print("ausil-lite build-benchmark: error: --no-default-sources needs at least one --source-dir", file=sys.stderr)
        return 2
    request = BuildRequest(
        profile=args.profile, seed=args.seed, source_dirs=os.pathsep.join(args.source_dir),
        include_default=not args.no_default_sources, output=args.output, workers=args.workers,
    )
    summary = request.build(overwrite=args.overwrite, rescan_sources=args.rescan_sources, progress=True)
    bench = load_davr_mini(summary.root)
    report = {
        "root": str(summary.root), "wall_s": summary.wall_s, "rendered": summary.rendered,
        "audio_hours": summary.audio_hours, "train_tracks": summary.train_tracks, **bench.summary(),
        "families": bench.table[bench.table["role"] == "positive"]["family"].value_counts().sort_index().to_dict(),
    }
    print(json.dumps(report, indent=2))
    return 0 if not bench.missing() else 1
