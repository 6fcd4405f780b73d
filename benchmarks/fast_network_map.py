"""The fast descriptor network against the full one on DAVR-unseen: may it become the CPU default?

    AUSIL_DATA=... python benchmarks/fast_network_map.py --benchmark-dir DIR --full-results DIR [--precision bfloat16]

Extracts DAVR-unseen (and its queries at the 11 speeds of ``query --speeds 10``) with the released model's
backbone at ``--precision``, scores it with the released network (with and without speed hypotheses), and
prints mAP, speed-changed mAP and mAP per transformation family beside the full network's, read from the
similarity files that ``benchmarks/released_model.py`` wrote (``--full-results``). The fast network may
become the CPU default only when its mAP with speed hypotheses is within ``--map-margin`` (0.005) of the full
network's and no family drops by more than ``--family-margin`` (0.02). It also scores the fast database with
the full network's queries and their speed variants (rows ``...-queries-float32``): what ``query`` does
against an index made by the fast network (:meth:`ausil_lite.search.query.Searcher.query_extractor`). Feature
stores resume and similarity files are reused, so an interrupted run goes on where it stopped. ``--write-card`` writes the table into the
released model's card folder (``card/fast_network.csv``), which the book's model card chapter reads.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd

from released_model import method_table, score_methods

from ausil_lite.datasets.davr_mini import load_davr_mini
from ausil_lite.descriptors.extraction import ExtractionConfig
from ausil_lite.descriptors.precision import PRECISIONS
from ausil_lite.descriptors.speeds import extract_speed_variants, model_variant_penalty, speed_grid
from ausil_lite.descriptors.store import FeatureStore, extract_videos
from ausil_lite.descriptors.workers import default_workers
from ausil_lite.evaluation.protocol import read_similarities
from ausil_lite.models.released import CARD_DIR, FAST_NETWORK_TABLE, RELEASED_VERSION, version_dir
from ausil_lite.paths import data_root
from ausil_lite.study.method_scores import SPEEDS_SUFFIX, Method

SPEEDS_PER_OCTAVE = 10


def queries_from(full: Path, fast: Path, query_ids: list[str], out: Path) -> Path:
    """A store at ``out`` whose queries are ``full``'s descriptors and whose other videos are ``fast``'s
    (links to their files; the index and config are ``fast``'s): the comparison ``query`` makes."""
    for store in (full, fast):
        missing = [v for v in query_ids if not FeatureStore(store).has(v)]
        if missing:
            raise SystemExit(f"{store}: no descriptors for {len(missing)} queries, e.g. {missing[0]} "
                             "(benchmarks/released_model.py makes the float32 store)")
    (out / "features").mkdir(parents=True, exist_ok=True)
    queries = set(query_ids)
    for source in (fast / "features").glob("*.npy"):
        link = out / "features" / source.name
        target = (full if source.stem in queries else fast) / "features" / source.name
        if not link.is_symlink():
            link.symlink_to(target.resolve())
    for record in ("index.csv", "config.json"):
        shutil.copyfile(fast / record, out / record)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=RELEASED_VERSION)
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--benchmark-dir", type=Path, required=True, help="a built DAVR-unseen")
    parser.add_argument("--full-results", type=Path, required=True,
                        help="folder of the full network's similarity files (benchmarks/released_model.py's results)")
    parser.add_argument("--precision", default="bfloat16", choices=[p for p in PRECISIONS if p != "float32"])
    parser.add_argument("--map-margin", type=float, default=0.005)
    parser.add_argument("--family-margin", type=float, default=0.02)
    parser.add_argument("--write-card", action="store_true",
                        help="write the table into the released model's card folder (card/fast_network.csv)")
    args = parser.parse_args(argv)

    bench = load_davr_mini(args.benchmark_dir, args.profile, benchmark="davr-unseen")
    model_dir = version_dir(args.version)
    config = ExtractionConfig(backbone="released", model_version=args.version, precision=args.precision)
    name = f"{args.version}-{args.precision}"
    store = data_root() / "features" / f"davr-unseen-{args.profile}" / name
    variants = store.with_name(store.name + SPEEDS_SUFFIX)
    print(f"{name}: {extract_videos(bench.videos(), FeatureStore(store), config, workers=default_workers(), retry_failed=True)}", flush=True)
    print(extract_speed_variants(bench.videos(bench.query_ids), FeatureStore(variants), config,
                                 speed_grid(SPEEDS_PER_OCTAVE), progress=True), flush=True)

    full_store = store.with_name(args.version)  # benchmarks/released_model.py's float32 store
    mixed = queries_from(full_store, store, bench.query_ids, store.with_name(f"{name}-queries-float32"))
    full_variants = full_store.with_name(full_store.name + SPEEDS_SUFFIX)

    penalty = model_variant_penalty(model_dir)
    methods = [Method(f"ausil-{name}", "ausil", "released", str(store), str(model_dir)),
               Method(f"ausil-{name}{SPEEDS_SUFFIX}", "ausil", "released", str(store), str(model_dir),
                      speeds_dir=str(variants), variant_penalty=penalty),
               Method(f"ausil-{mixed.name}", "ausil", "released", str(mixed), str(model_dir)),
               Method(f"ausil-{mixed.name}{SPEEDS_SUFFIX}", "ausil", "released", str(mixed), str(model_dir),
                      speeds_dir=str(full_variants), variant_penalty=penalty)]
    similarities = score_methods(methods, bench, args.profile)
    for suffix in ("", SPEEDS_SUFFIX):
        full = args.full_results / f"ausil-{args.version}{suffix}.json"
        if not full.is_file():
            raise SystemExit(f"{full}: the full network's similarities are missing (run benchmarks/released_model.py)")
        similarities[f"ausil-{args.version}{suffix}"] = read_similarities(full)

    table = method_table(similarities, bench)
    pd.set_option("display.width", 200)
    print(f"\nDAVR-unseen {args.profile}: {len(bench.query_ids)} queries, {len(bench.database_ids)} database videos")
    print(table.round(4).to_string())
    fast, full = table.loc[f"ausil-{name}{SPEEDS_SUFFIX}"], table.loc[f"ausil-{args.version}{SPEEDS_SUFFIX}"]
    drop = (full - fast).drop(["mAP", "speed-changed"])
    verdict = full["mAP"] - fast["mAP"] <= args.map_margin and drop.max() <= args.family_margin
    print(f"\nwith speed hypotheses: mAP {fast['mAP']:.4f} vs {full['mAP']:.4f} (drop {full['mAP'] - fast['mAP']:+.4f}, "
          f"allowed {args.map_margin}); largest family drop {drop.max():+.4f} ({drop.idxmax()}, allowed {args.family_margin})")
    print(f"{args.precision} {'qualifies' if verdict else 'does not qualify'} as the CPU default")
    mixed_row = table.loc[f"ausil-{mixed.name}{SPEEDS_SUFFIX}"]
    print(f"float32 queries against the {args.precision} database (query against a fast index), with speed "
          f"hypotheses: mAP {mixed_row['mAP']:.4f}, speed-changed {mixed_row['speed-changed']:.4f}; largest family drop "
          f"against the full network {(full - mixed_row).drop(['mAP', 'speed-changed']).max():+.4f}")
    table.round(4).to_csv(data_root() / "results" / f"davr-unseen-{args.profile}" / f"{name}-vs-full.csv")
    if args.write_card:
        table.round(4).to_csv(model_dir / CARD_DIR / FAST_NETWORK_TABLE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
