"""``ausil-lite build-benchmark``: build DAVR-mini, DAVR-unseen or DAVR-dev from real recordings, deterministically from a seed."""

from __future__ import annotations

import argparse
import json

import os
import sys

from ausil_lite.datasets.davr_mini import BENCHMARKS, BuildRequest, load_davr_mini


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build-benchmark",
        help="build DAVR-mini or DAVR-unseen (real recordings, audio-duplicate positives, hard negatives)",
        description="Cut queries from the benchmark's source pool (its Debian music and speech packages, plus any "
        "--source-dir), make positives by recorded transformations, add hard negatives and distractors, and "
        "mux every item into a video under OUTPUT (default: <data root>/<benchmark>/<profile>). The same seed "
        "gives byte-identical manifests; a rerun keeps finished media. DAVR-unseen is made of packages no "
        "training code reads (Nexuiz and Planet Blupi music, Russian Asterisk prompts), for evaluating a model "
        "on audio it never heard.",
    )
    p.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="davr-mini",
                   help="davr-mini (default; split into training and evaluation tracks), davr-unseen (evaluation only) or "
                   "davr-dev (cut from the released model's training audio, for choosing scoring settings)")
    profiles = sorted({name for recipe in BENCHMARKS.values() for name in recipe.profiles})
    p.add_argument("--profile", choices=profiles, default="ci",
                   help="size: davr-mini tiny, ci (15 queries, 300 videos) or full (100, 3000); "
                   "davr-unseen and davr-dev tiny or ci (100 queries, 1200 videos)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--source-dir", action="append", default=[], help="folder of audio/video files to add to the pool (repeatable)")
    p.add_argument("--no-default-sources", action="store_true", help="use only --source-dir folders, not the Debian packages")
    p.add_argument("--rescan-sources", action="store_true", help="rescan installed packages instead of checking them against data_manifests/")
    p.add_argument("--output", default=None, help="benchmark folder (default: <data root>/<benchmark>/<profile>)")
    p.add_argument("--workers", type=int, default=2, help="rendering processes (1: in this process)")
    p.add_argument("--overwrite", action="store_true", help="replace a folder built with another seed, profile or pool")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.no_default_sources and not args.source_dir:
        print("ausil-lite build-benchmark: error: --no-default-sources needs at least one --source-dir", file=sys.stderr)
        return 2
    if args.profile not in BENCHMARKS[args.benchmark].profiles:
        print(f"ausil-lite build-benchmark: error: {args.benchmark} has no profile {args.profile!r}; choose one of "
              f"{sorted(BENCHMARKS[args.benchmark].profiles)}", file=sys.stderr)
        return 2
    request = BuildRequest(
        profile=args.profile, seed=args.seed, source_dirs=os.pathsep.join(args.source_dir),
        include_default=not args.no_default_sources, output=args.output, workers=args.workers,
        benchmark=args.benchmark,
    )
    summary = request.build(overwrite=args.overwrite, rescan_sources=args.rescan_sources, progress=True)
    bench = load_davr_mini(summary.root, benchmark=args.benchmark)
    report = {
        "benchmark": args.benchmark, "root": str(summary.root), "wall_s": summary.wall_s, "rendered": summary.rendered,
        "audio_hours": summary.audio_hours, "train_tracks": summary.train_tracks, **bench.summary(),
        "families": bench.table[bench.table["role"] == "positive"]["family"].value_counts().sort_index().to_dict(),
    }
    print(json.dumps(report, indent=2))
    return 0 if not bench.missing() else 1
