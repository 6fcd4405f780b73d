"""Settings chosen on audio the chooser never heard: the release's recipe trained without DAVR-dev's packages.

    python benchmarks/held_out_dev.py [--version ausil-lite-v3] [--write-card]

A released model's settings (its chamfer rule) are chosen on DAVR-dev, never on DAVR-unseen. But DAVR-dev is cut
from three packages of the corpus, so the released model has heard it and scores it near 1 (``ausil-lite-v2``:
0.998 mAP with speed hypotheses, every family at 0.99 or more), while it loses most on DAVR-unseen where it meets new
audio (embed 0.89, crop 0.92): a choice made on audio the model learnt says little about audio it never heard.

This trains the release's recipe (:data:`ausil_lite.study.release.RELEASE_SIZES`, seed 0) on the corpus without
DAVR-dev's packages and the other codecs of its prompts (:data:`ausil_lite.datasets.corpus.DEV_HELD_OUT`), into
``data_root()/models/dev-held-out`` (resumable, reused once done: about an hour on 2 CPU cores). That model meets
DAVR-dev as the released model meets DAVR-unseen. It is scored there by every chamfer rule, with and without
the speed hypotheses of ``query --speeds 10`` (its variant penalty calibrated on its own training triplets, as an
export does), and the table is printed; ``--write-card`` writes it to the version's ``card/held_out_dev.csv``
(with ``card/held_out_dev.json``), which ``benchmarks/chamfer_rule.py`` then chooses by. ``--profile severe`` scores
DAVR-dev's severe profile instead (every copy from the hard end of its family's range) into
``card/held_out_dev_severe.csv``, which chooses nothing: it tells whether the copies the release misses on DAVR-unseen
are hard transformations or particular audio.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import pandas as pd

from chamfer_rule import BENCHMARK, dev_benchmark, rule_table
from released_model import write_record

from ausil_lite.datasets.corpus import DEV_HELD_OUT, build_corpus, write_held_out_tracks
from ausil_lite.models.released import CARD_DIR, RELEASED_VERSION, held_out_files, version_dir
from ausil_lite.paths import data_root
from ausil_lite.study.pipeline import extraction_config
from ausil_lite.study.release import RELEASE_SIZES, recipe_penalty, release_pipeline, train_recipe

NAME = "dev-held-out"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=RELEASED_VERSION, help="the version whose card receives the table")
    parser.add_argument("--profile", default="ci",
                        help="DAVR-dev profile (default ci: 100 queries; severe: 60 queries, hard copies only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-card", action="store_true", help="write the table into the version's card folder")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    corpus = data_root() / "corpus"
    if not (corpus / "train.csv").is_file():
        build_corpus(corpus)
    tracks_dir = data_root() / "corpus-without-dev"
    kept, held = write_held_out_tracks(corpus, tracks_dir)
    print(f"{NAME}: trains on {kept} corpus tracks, {held} held out ({', '.join(DEV_HELD_OUT)})", flush=True)
    pipeline = release_pipeline(tracks_dir, data_root() / "models" / NAME, seed=args.seed)
    trained = train_recipe(pipeline)
    model_dir = trained.model_dir
    penalty = recipe_penalty(trained)
    print(f"{NAME}: variant penalty {penalty:.4f} (calibrated on its training triplets)", flush=True)

    bench = dev_benchmark(args.profile)
    table = rule_table(bench, args.profile, NAME, extraction_config(pipeline, "selfsup", trained.weights), model_dir,
                       "selfsup", penalty)
    pd.set_option("display.width", 200)
    print(f"\nDAVR-dev {args.profile} ({len(bench.query_ids)} queries, {len(bench.database_ids)} database videos), "
          f"{NAME} (never heard it):")
    print(table.round(4).to_string())
    if args.write_card:
        card = version_dir(args.version) / CARD_DIR
        table_file, record_file = held_out_files(args.profile)
        table.round(4).to_csv(card / table_file)
        write_record(card / record_file, {
            "training": f"the corpus without {', '.join(DEV_HELD_OUT)}", "tracks": kept, "held_out_tracks": held,
            "sizes": {k: v for k, v in dataclasses.asdict(pipeline).items() if k in RELEASE_SIZES}, "seed": args.seed,
            "triplets": trained.triplets, "variant_penalty": penalty, "benchmark": f"{BENCHMARK} {args.profile}",
        })
        print(f"wrote {card / table_file}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
