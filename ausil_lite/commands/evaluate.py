"""``ausil-lite evaluate``: mAP of a similarity file by the FIVR protocol, per-query APs to CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ausil_lite.datasets.benchmark import read_annotation_json, read_id_list
from ausil_lite.evaluation.protocol import CONVENTIONS, check_similarities, evaluate, read_similarities


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="mAP and per-query AP of a similarity file (FIVR protocol)",
        description="Rank the dataset for each annotated query, query excluded, and compute AP with relevant "
        "videos missing from the ranking counted as misses; print mAP, write per-query APs (CSV). "
        "Conventions for unobtainable videos: "
        + "; ".join(f"{k}: {v}" for k, v in CONVENTIONS.items()),
    )
    p.add_argument("--similarities", required=True, type=Path, help="JSON {query: {video: similarity}}")
    p.add_argument("--annotations", required=True, type=Path, help="JSON {query: {label: [video ids]}}")
    p.add_argument("--dataset-ids", required=True, type=Path, help="text file, one dataset id per line")
    p.add_argument("--relevant-labels", default="DA", help="comma-separated labels counted relevant (default: DA)")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), default="keep", help="unobtainable videos (default: keep)")
    p.add_argument("--available", type=Path, default=None,
                   help="with --convention remove: ids that were obtained (default: every id in the similarities)")
    p.add_argument("--per-query", type=Path, default=None,
                   help="CSV of per-query APs (default: <similarities>.ap.csv next to the similarity file)")
    p.add_argument("--pr-curve", type=Path, default=None, help="also write the 21-point PR curve to this CSV")
    p.add_argument("--allow-missing-queries", action="store_true",
                   help="exit 0 even when annotated queries are missing from the similarities (default: exit 1, "
                   "as the mAP is then over fewer queries)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    labels = [label for label in args.relevant_labels.split(",") if label]
    similarities = read_similarities(args.similarities)
    check_similarities(similarities, str(args.similarities))
    result = evaluate(
        similarities,
        read_annotation_json(args.annotations),
        labels,
        read_id_list(args.dataset_ids),
        convention=args.convention,
        available=None if args.available is None else read_id_list(args.available),
    )
    for query, reason in result.skipped.items():
        print(f"WARNING: query {query} skipped: {reason}", file=sys.stderr)
    if result.unknown_relevant:
        count = sum(map(len, result.unknown_relevant.values()))
        query, ids = next(iter(result.unknown_relevant.items()))
        print(f"WARNING: {count} relevant id(s) of {len(result.unknown_relevant)} queries are not in {args.dataset_ids} "
              f"and count neither as hits nor as misses (e.g. query {query}: {', '.join(ids[:5])})", file=sys.stderr)
    per_query = args.per_query or args.similarities.with_suffix(".ap.csv")
    per_query.parent.mkdir(parents=True, exist_ok=True)
    result.per_query().to_csv(per_query, index=False)
    if args.pr_curve is not None:
        args.pr_curve.parent.mkdir(parents=True, exist_ok=True)
        result.pr_curve().to_csv(args.pr_curve, index=False)
    print(f"labels {','.join(labels)}, convention {result.convention}: {len(result.average_precisions)} queries "
          f"({len(result.skipped)} skipped)")
    print(f"mAP={result.mean_ap:.4f}")
    print(f"per-query APs: {per_query}")
    missing = result.missing_queries
    if missing and not args.allow_missing_queries:
        print(f"ausil-lite evaluate: error: {len(missing)} of {len(result.skipped) + len(result.average_precisions)} "
              f"annotated queries are missing from {args.similarities} (e.g. {', '.join(missing[:5])}), so the mAP "
              "is over fewer queries; pass --allow-missing-queries to accept that", file=sys.stderr)
        return 1
    return 0
