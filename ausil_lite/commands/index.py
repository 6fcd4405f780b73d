"""``ausil-lite index``: build or update a search index of a collection of media files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ausil_lite.commands.model_choice import (
    DEFAULT_HELP, add_backbone_options, add_workers_option, extraction_choice, require_model, scoring_model,
)
from ausil_lite.descriptors.store import FeatureStore
from ausil_lite.errors import InputError
from ausil_lite.search.index import current_version, run_lock
from ausil_lite.search.index_collection import index_collection
from ausil_lite.search.update import store_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="index media files for search (adds new ones, skips unchanged ones)",
        description="Extract descriptors of every media file under PATHS (folders are walked; files are keyed "
        "by path, size and modification time, so unchanged files are skipped and edited ones re-indexed), "
        "then write a new version of the search index in DIR. A crash leaves the previous version in use. "
        "Files that cannot be decoded are listed with their reason (exit code 1 when there were any), damaged files "
        "indexed only in part with what decoded (exit code 3 when there were some and no failures). "
        + DEFAULT_HELP,
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATHS", help="media files or folders")
    p.add_argument("--index", required=True, type=Path, help="index folder (created when missing)")
    p.add_argument("--store", type=Path, default=None, help="feature store folder (default: DIR/features)")
    p.add_argument("--model", type=Path, default=None,
                   help="trained model folder: its whitening for the index, the network for reranking (default: the "
                   "released model with released descriptors; with another --backbone, whitening fitted on the indexed "
                   "videos and chamfer reranking; an existing index keeps its own)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler (e.g. tcp://host:8786): extract on its workers instead of here")
    add_backbone_options(p, "the store's when it exists, else released")
    add_workers_option(p)
    p.add_argument("--retry-failed", action="store_true", help="try again the files that failed before")
    p.add_argument("--rebuild", action="store_true", help="rebuild the whole index (refits the whitening)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.index.exists() and not args.index.is_dir():
        raise InputError(f"{args.index}: an existing file, not an index folder")
    with run_lock(args.index, lambda text: print(text, file=sys.stderr, flush=True)):
        return index_paths(args)


def index_paths(args: argparse.Namespace) -> int:
    """The work of one run, under the index's run lock (a concurrent run waits, then skips what this one did)."""
    store = FeatureStore(args.store or args.index / "features")
    given = args.backbone is not None or args.weights is not None
    config = extraction_choice(args, None if given or not store.config_path.is_file() else store_config(store))
    require_model(config)
    model_dir = args.model
    if model_dir is None and config.backbone == "released" and (args.rebuild or not current_version(args.index)):
        model_dir = scoring_model(args, config)  # a new index: the released network whitens and reranks
    run = index_collection(args.paths, args.index, store, config, model_dir, args.scheduler, args.workers,
                           args.retry_failed, args.rebuild)
    print("\n".join(run.report()))
    return run.exit_code
