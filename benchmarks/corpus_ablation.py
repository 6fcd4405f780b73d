"""What the release's corpus buys: its recipe trained on the study's four packages instead, scored on DAVR-unseen.

    python benchmarks/corpus_ablation.py [--version ausil-lite-v3] [--write-card]

The model card compares the study's ci model (DAVR-mini's four packages, ci sizes) with the released versions
(larger corpora, the release's sizes), so corpus and training length change together. This run keeps the length
and changes the audio: it trains the release's recipe (:data:`ausil_lite.study.release.RELEASE_SIZES`, seed 0,
the self-supervised backbone and then the AuSiL network) on DAVR-mini's training tracks, the share of the four
packages the study trains on (the split does not depend on the profile: ci's tracks are full's), into
``data_root()/models/four-packages``. Training resumes after a kill and is reused once done (about an hour on 2
CPU cores).

It then scores the model as ``benchmarks/released_model.py`` scores the release: the same DAVR-unseen, queries
also played at the 11 speeds of ``query --speeds 10``, the variant penalty calibrated on the model's own training
triplets (as the export does), and the version's chamfer rule. It prints its rows beside the card's;
``--write-card`` writes them into the version's card (``card/four_packages.csv`` and its record
``card/four_packages.json``), which the model card chapter shows beside the card's rows.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time

import pandas as pd

from released_model import ausil_methods, extract, method_table, score_methods, unseen_benchmark, write_record

from ausil_lite.datasets.davr_mini import BuildRequest
from ausil_lite.models.released import (CARD_DIR, EVALUATION_TABLE, FOUR_PACKAGES_FILE, FOUR_PACKAGES_TABLE,
                                        RELEASED_VERSION, version_dir)
from ausil_lite.paths import data_root
from ausil_lite.similarity.model import model_chamfer_rule
from ausil_lite.study.pipeline import extraction_config
from ausil_lite.study.release import RELEASE_OPTIONS, RELEASE_SIZES, recipe_penalty, release_pipeline, train_recipe

NAME = "four-packages"


def training_hours(tracks_dir) -> tuple[int, float]:
    """How many training tracks ``tracks_dir/train.csv`` lists, and their hours."""
    with open(tracks_dir / "train.csv", newline="", encoding="utf-8") as fh:
        durations = [float(row["duration_s"]) for row in csv.DictReader(fh)]
    return len(durations), round(sum(durations) / 3600, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=RELEASED_VERSION, help="the version whose chamfer rule and card to use")
    parser.add_argument("--profile", default="ci", help="DAVR-unseen size (default ci: 100 queries)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-card", action="store_true", help="write the rows into the version's card folder")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    mini = data_root() / "davr-mini" / "ci"
    if not (mini / "train.csv").is_file():
        BuildRequest(profile="ci", benchmark="davr-mini", output=str(mini), workers=2).build(progress=True)
    pipeline = release_pipeline(mini, data_root() / "models" / NAME, seed=args.seed)
    trained = train_recipe(pipeline)
    model_dir = trained.model_dir
    penalty = recipe_penalty(trained)
    rule = model_chamfer_rule(version_dir(args.version))
    print(f"{NAME}: variant penalty {penalty:.4f} (calibrated on its training triplets), chamfer rule {rule}", flush=True)

    bench = unseen_benchmark(args.profile)
    features = data_root() / "features" / f"davr-unseen-{args.profile}"
    store, variants = extract(bench, features / NAME, extraction_config(pipeline, "selfsup", trained.weights), True)
    methods = ausil_methods(NAME, store, variants, model_dir, "selfsup", rule=rule, penalty=penalty)
    table = method_table(score_methods(methods, bench, args.profile), bench)

    card = version_dir(args.version) / CARD_DIR
    pd.set_option("display.width", 200)
    if (card / EVALUATION_TABLE).is_file():
        print(pd.concat([pd.read_csv(card / EVALUATION_TABLE, index_col="method"), table]).round(3).to_string())
    else:
        print(table.round(3).to_string())
    if args.write_card:
        tracks, hours = training_hours(mini)
        table.round(4).to_csv(card / FOUR_PACKAGES_TABLE)
        write_record(card / FOUR_PACKAGES_FILE, {
            "training": "DAVR-mini's training tracks", "tracks": tracks, "hours": hours,
            "sizes": {k: v for k, v in dataclasses.asdict(pipeline).items() if k in RELEASE_SIZES}, "seed": args.seed,
            "options": {k: getattr(pipeline, k) for k in RELEASE_OPTIONS},
            "triplets": trained.triplets,
            "variant_penalty": penalty, "chamfer_rule": rule, "benchmark": f"davr-unseen {args.profile}",
        })
        print(f"wrote {card / FOUR_PACKAGES_TABLE}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
