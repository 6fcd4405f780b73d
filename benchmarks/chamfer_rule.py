"""Choose a released model's chamfer rule on DAVR-dev, training audio, before it is measured on unseen audio.

    python benchmarks/chamfer_rule.py [--version ausil-lite-v3] [--write]

The AuSiL network is trained to score how much of the query a candidate holds (rule ``query``); a copy cut from
the query then scores low, since most of the query's segments find nothing. The ``symmetric`` rule averages that
with how much of the candidate the query holds (:data:`ausil_lite.similarity.chamfer.CHAMFER_RULES`). Which one a
model scores by is a setting, so it is chosen here on DAVR-dev (:mod:`ausil_lite.datasets.davr_mini`: the unseen
benchmark's sizes, cut from three packages of the training corpus), never on DAVR-unseen or the reserved packages.

Builds DAVR-dev when it is not built yet, extracts its descriptors and its queries' speed variants with the
released model (resumable), scores every rule with and without speed hypotheses, and prints mAP, speed-changed
mAP and mAP per family. The chosen rule is the one with the highest mAP with speed hypotheses (the figure the
targets hold the model to), then the highest speed-changed mAP; a tie keeps ``query``, the rule it was trained
with. The released model has heard DAVR-dev's packages and scores every rule near 1 there, so when the version's
card holds ``held_out_dev.csv`` (``benchmarks/held_out_dev.py``: the same recipe trained without those packages,
scored on DAVR-dev by every rule), the choice is made on that table instead: on audio the chooser never heard, as
DAVR-unseen is to the released model. ``--write`` records the choice and every rule's figures in the version's
``config.json`` (and renews its ``SHA256SUMS``) and writes the table to ``card/chamfer_rule.csv``; the card's evaluation is then stale until
``benchmarks/released_model.py --write-card`` measures the model again.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from released_model import SPEEDS_PER_OCTAVE, ausil_methods, built_benchmark, extract, method_table

from ausil_lite.descriptors.extraction import ExtractionConfig
from ausil_lite.models.export import record_chamfer_rule
from ausil_lite.models.released import CARD_DIR, CHAMFER_RULE_TABLE, HELD_OUT_TABLE, RELEASED_VERSION, version_dir
from ausil_lite.paths import data_root
from ausil_lite.similarity.chamfer import CHAMFER_RULES
from ausil_lite.study.method_scores import score_method
from ausil_lite.study.results_chapters import choose_chamfer_rule

BENCHMARK = "davr-dev"


def dev_benchmark(profile: str):
    """DAVR-dev of ``profile`` (built first when the data root holds none)."""
    return built_benchmark(BENCHMARK, profile)


def rule_table(bench, profile: str, name: str, extraction: ExtractionConfig, model_dir: Path, backbone: str,
               penalty: float | None = None) -> pd.DataFrame:
    """One model's mAP on DAVR-dev by every chamfer rule, with and without speed hypotheses (rows ``<rule>`` and
    ``<rule>-speeds``); its descriptors are extracted under ``name`` first (resumable), ``penalty`` as in
    :func:`released_model.ausil_methods`."""
    store, variants = extract(bench, data_root() / "features" / f"{BENCHMARK}-{profile}" / name, extraction, True)
    output = data_root() / "results" / f"{BENCHMARK}-{profile}"
    similarities = {}
    for rule in CHAMFER_RULES:
        for method in ausil_methods(name, store, variants, model_dir, backbone, rule=rule, penalty=penalty):
            scored = score_method(method, bench, output / f"{method.name}.json", workers=2)
            similarities[method.name.removeprefix(f"ausil-{name}-")] = scored.similarities
            print(f"{method.name}: {'reused' if scored.reused else 'scored'}", flush=True)
    table = method_table(similarities, bench)
    table.index.name = "rule"
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=RELEASED_VERSION, help="the released version (default: the package's)")
    parser.add_argument("--profile", default="ci", help="DAVR-dev size (default ci: 100 queries)")
    parser.add_argument("--write", action="store_true", help="record the chosen rule in the version's config.json")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    bench = dev_benchmark(args.profile)
    released = version_dir(args.version)
    table = rule_table(bench, args.profile, args.version, ExtractionConfig(backbone="released", model_version=args.version),
                       released, "released")
    pd.set_option("display.width", 200)
    print(f"\nDAVR-dev {args.profile} ({len(bench.query_ids)} queries, {len(bench.database_ids)} database videos), "
          f"{args.version}, {SPEEDS_PER_OCTAVE} speeds per octave:")
    print(table.round(4).to_string())
    held_out = released / CARD_DIR / HELD_OUT_TABLE
    chooser, chooser_table = args.version, table
    if held_out.is_file():
        chooser, chooser_table = "its recipe trained without DAVR-dev's packages", pd.read_csv(held_out, index_col="rule")
        print(f"\nchosen on {held_out} ({chooser}, which never heard DAVR-dev):")
        print(chooser_table.round(4).to_string())
    rule = choose_chamfer_rule(chooser_table)
    print(f"\nchosen: {rule}")
    if args.write:
        figures = {name: {"mAP": round(float(row["mAP"]), 4), "speed-changed": round(float(row["speed-changed"]), 4)}
                   for name, row in chooser_table.iterrows()}
        record_chamfer_rule(released, rule, {
            "benchmark": f"{BENCHMARK} {args.profile}", "by": "mAP with speed hypotheses, then speed-changed mAP",
            "scored_by": chooser, "figures": figures,
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
        (released / CARD_DIR).mkdir(exist_ok=True)
        table.round(4).to_csv(released / CARD_DIR / CHAMFER_RULE_TABLE)
        print(f"recorded {rule} in {released}; measure the card again (benchmarks/released_model.py --write-card)")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
