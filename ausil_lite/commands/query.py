"""``ausil-lite query``: the indexed videos that share a query's audio, and where."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ausil_lite.commands.argument_types import positive_int
from ausil_lite.descriptors.speeds import VARIANT_PENALTY, speed_grid
from ausil_lite.errors import InputError
from ausil_lite.models.released import RELEASED_VERSION
from ausil_lite.search.index import SearchIndex
from ausil_lite.search.query import QueryConfig, Searcher, single_threaded


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "query",
        help="find the indexed videos that share a query's audio, with the aligned time spans",
        description="Extract the query's descriptors (as the index's videos were), fetch candidate videos from the "
        "stage-1 index by segment votes, rerank them (the index's model, or chamfer similarity), and print the "
        "ranked matches with their score and the aligned span (seconds) in the query and in the match. The query is "
        "extracted and scored with the model the index was built with (by default the released model "
        f"{RELEASED_VERSION}).",
    )
    p.add_argument("video", type=Path, metavar="VIDEO", help="query media file (or a stored .npy of descriptors)")
    p.add_argument("--index", required=True, type=Path, help="index folder written by `ausil-lite index`")
    p.add_argument("--top", type=positive_int, default=20, help="matches listed (default: 20)")
    p.add_argument("--threshold", type=float, default=None, help="list only matches scoring at least this")
    p.add_argument("--candidates", type=positive_int, default=100, help="videos stage 1 passes to reranking (default: 100)")
    p.add_argument("--nprobe", type=positive_int, default=QueryConfig.nprobe,
                   help="inverted lists scanned per segment (large indexes; more: slower, fewer misses)")
    p.add_argument("--model", type=Path, default=None,
                   help="rerank with this model (default: the index's own: the released model unless the index was built "
                   "with another)")
    p.add_argument("--speeds", type=int, default=0, metavar="N",
                   help="also search with the query played at 0.7x-1.4x, N steps per octave (10: 11 speeds); finds "
                   "sped-up or slowed-down copies at the cost of extracting the query N+1 times; a match found at another "
                   "speed scores the reranking model's calibrated penalty lower "
                   f"({VARIANT_PENALTY} for chamfer and models that record none) (default: 0, off)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = QueryConfig(top=args.top, candidates=args.candidates, nprobe=args.nprobe, threshold=args.threshold)
    searcher = Searcher(SearchIndex.open(args.index), args.model)
    if args.speeds and args.video.suffix.lower() == ".npy":
        raise InputError(f"{args.video}: --speeds plays the query's audio at other speeds; give the media file")
    clock = time.perf_counter()
    descriptors = searcher.descriptors(args.video)
    variants = searcher.speed_variants(args.video, speed_grid(args.speeds)) if args.speeds else {}
    extract_ms = (time.perf_counter() - clock) * 1e3  # the first query of a process also builds the network
    with single_threaded():
        result = searcher.search(descriptors, config, variants)
    result.timings_ms = {"extract": extract_ms, **result.timings_ms}
    if args.json:
        print(json.dumps({"query": str(args.video), "index": str(args.index), "version": searcher.index.version,
                          **result.to_dict()}, indent=2))
    else:
        stages = ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items())
        print(f"{args.video} ({result.query_duration:.0f} s) against {len(searcher.index.videos)} videos; "
              f"{result.candidates} candidates reranked with {result.reranker} ({stages})")
        print(result.table())
    return 0
