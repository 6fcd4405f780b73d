"""The released model on audio it never trained on: DAVR-unseen, every method, per family, and the targets.

    python benchmarks/released_model.py [--version ausil-lite-v1] [--ci-models DATA/models/ci] [--float32] [--write-card]
                                        [--compare ausil-lite-v0 ...]

Builds DAVR-unseen (profile ci: 100 queries, 1,200 videos from packages outside the training corpus) when it is
not built yet, extracts its descriptors with the released model and with the random backbone (and with the
study's ci self-supervised backbone when that run is on this machine, and with every other shipped version, so
the card shows what a version's larger corpus bought), plays every query at the 11 speeds of
``query --speeds 10``, scores every method of the results chapters (:mod:`ausil_lite.study.method_scores`), and prints

* one row per method: mAP (FIVR protocol, ``keep``), speed-changed mAP, and mAP per transformation family (the
  released model also by each chamfer rule other than its own, rows ``ausil-<version>-<rule>``);
* the targets: the released model with speed hypotheses at mAP >= 0.97, at least every baseline on every family,
  and >= 0.95 on speed-changed duplicates;
* where the non-duplicates that outrank the released model's duplicates come from: another moment of the query's
  own track, or another track (``card/outranking.csv``);
* the duplicates behind each family where it trails a baseline, with each method's rank for them
  (``card/missed.csv``);
* whether an identical copy is what the released model scores highest: each query's score against itself, beside
  its lowest-scored duplicate and its highest-scored other moment of its own track, and how steady the query's
  audio is (the mean cosine of its whitened segments with each other) (``card/self_similarity.csv``).

Everything it computes stays under the data root and is reused on a rerun (feature stores resume, similarity files
are kept until their inputs change). ``--write-card`` also writes the table into the released model's card folder
(``ausil_lite/models/<version>/card/evaluation.csv``), which the book's model card chapter reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ausil_lite.config import git_commit
from ausil_lite.datasets.davr_mini import BuildRequest, load_davr_mini
from ausil_lite.datasets.transforms import FAMILIES
from ausil_lite.descriptors.extraction import ExtractionConfig
from ausil_lite.descriptors.speeds import extract_speed_variants, model_variant_penalty, speed_grid
from ausil_lite.descriptors.store import FeatureStore, extract_videos
from ausil_lite.descriptors.workers import default_workers
from ausil_lite.evaluation.breakdown import breakdown_table, identity_margins, missed_duplicates, outranking_sources
from ausil_lite.evaluation.protocol import evaluate_benchmark
from ausil_lite.models.released import (CARD_DIR, EVALUATION_FILE, EVALUATION_TABLE, MISSED_TABLE, OUTRANKING_TABLE,
                                        RELEASED_VERSION, SELF_SIMILARITY_TABLE, TARGETS_TABLE, available_versions,
                                        load_released_scorer, version_dir, weights_stamp)
from ausil_lite.paths import data_root
from ausil_lite.similarity.chamfer import CHAMFER_RULES
from ausil_lite.similarity.model import MIN_QUERY_SEGMENTS, model_chamfer_rule
from ausil_lite.study.method_scores import SPEEDS_SUFFIX, Method, score_method
from ausil_lite.study.results_chapters import speed_changed_maps, target_checks

TARGETS = {"overall": 0.97, "speed": 0.95}
SPEEDS_PER_OCTAVE = 10


def extract(bench, folder: Path, extraction: ExtractionConfig, speeds: bool) -> tuple[Path, Path | None]:
    """The benchmark's descriptors (and its queries' speed variants) in ``folder``; resumable."""
    store = FeatureStore(folder)
    summary = extract_videos(bench.videos(), store, extraction, workers=default_workers(), retry_failed=True, progress=True)
    print(f"{folder.name}: {summary}", flush=True)
    if not speeds:
        return folder, None
    variants = folder.with_name(folder.name + SPEEDS_SUFFIX)
    extract_speed_variants(bench.videos(bench.query_ids), FeatureStore(variants), extraction,
                           speed_grid(SPEEDS_PER_OCTAVE), progress=True)
    return folder, variants


def ausil_methods(
    name: str, store: Path, variants: Path | None, model_dir: Path, backbone: str, rule: str | None = None,
    penalty: float | None = None,
) -> list[Method]:
    """The model's rows, with and without speed hypotheses; ``rule`` scores by that chamfer rule instead of the
    model's own (and names the rows ``ausil-<name>-<rule>``), ``penalty`` replaces the variant penalty the model
    folder records."""
    name = name if rule is None else f"{name}-{rule}"
    methods = [Method(f"ausil-{name}", "ausil", backbone, str(store), str(model_dir), chamfer_rule=rule)]
    if variants is not None:
        methods.append(Method(f"ausil-{name}{SPEEDS_SUFFIX}", "ausil", backbone, str(store), str(model_dir),
                              speeds_dir=str(variants), variant_penalty=model_variant_penalty(model_dir) if penalty is None
                              else penalty, chamfer_rule=rule))
    return methods


def built_benchmark(benchmark: str, profile: str, root: Path | None = None):
    """``benchmark`` (``davr-unseen`` or ``davr-dev``) of ``profile``, built first when ``root`` (default under the
    data root) holds none."""
    root = root or data_root() / benchmark / profile
    if not (root / "annotation.json").is_file():
        BuildRequest(profile=profile, benchmark=benchmark, output=str(root), workers=2).build(progress=True)
    return load_davr_mini(root, profile, benchmark=benchmark)


def unseen_benchmark(profile: str, root: Path | None = None):
    """DAVR-unseen of ``profile`` (built first when ``root``, default under the data root, holds none)."""
    return built_benchmark("davr-unseen", profile, root)


def score_methods(methods: list[Method], bench, profile: str) -> dict:
    """Each method's similarities on DAVR-unseen (similarity files under the data root are reused)."""
    output = data_root() / "results" / f"davr-unseen-{profile}"
    similarities = {}
    for method in methods:
        scored = score_method(method, bench, output / f"{method.name}.json", workers=2)
        similarities[method.name] = scored.similarities
        print(f"{method.name}: {'reused' if scored.reused else 'scored'}", flush=True)
    return similarities


def method_table(similarities: dict, bench) -> pd.DataFrame:
    """One row per method: mAP, speed-changed mAP and mAP per transformation family."""
    table = breakdown_table(similarities, bench, "family")
    table.insert(0, "speed-changed", speed_changed_maps(similarities, bench))
    table.insert(0, "mAP", pd.Series({n: evaluate_benchmark(s, bench).mean_ap for n, s in similarities.items()}))
    table.index.name = "method"
    return table


def float32_source(released: Path) -> tuple[ExtractionConfig, Path] | None:
    """The float32 weights the released (float16) folder was exported from, when they are on this machine: scoring
    both shows what storing float16 changes at the level of evaluation figures."""
    made_from = json.loads((released / "config.json").read_text(encoding="utf-8")).get("made_from", {})
    paths = [made_from.get(k, "").replace("$AUSIL_DATA", str(data_root())) for k in ("backbone_weights", "ausil_model")]
    if not all(paths) or not Path(paths[0]).is_file() or not (Path(paths[1]) / "config.json").is_file():
        return None
    return ExtractionConfig(backbone="selfsup", weights=paths[0]), Path(paths[1])


def ci_model(models: Path) -> tuple[ExtractionConfig, Path] | None:
    """The study's ci AuSiL model on its self-supervised backbone, when that run is on this machine."""
    model_dir = models / "ausil-selfsup"
    record = model_dir / "config.json"
    if not record.is_file():
        return None
    extraction = json.loads(record.read_text(encoding="utf-8")).get("data", {}).get("extraction", {})
    if not extraction.get("weights") or not Path(extraction["weights"]).is_file():
        return None
    return ExtractionConfig(backbone="selfsup", weights=extraction["weights"], seed=extraction.get("seed", 0)), model_dir


def self_similarity(similarities: dict, bench, store: Path, version: str) -> pd.DataFrame:
    """:func:`~ausil_lite.evaluation.breakdown.identity_margins` of ``similarities`` with the version's score of each
    query against itself (its own descriptors, as played: what any copy of it can at best reach), and ``steadiness``:
    the mean cosine between the query's whitened segments, high for a steady texture or a repeating loop."""
    model, descriptors = load_released_scorer(version, "cpu"), FeatureStore(store)
    own, steadiness = {}, {}
    for query in bench.query_ids:
        x = descriptors.load(query)
        if len(x) >= MIN_QUERY_SEGMENTS:
            own[query] = model.similarity(x, x)
        whitened = model.whitening.transform(x)
        cosines = whitened @ whitened.T
        steadiness[query] = float(cosines[~np.eye(len(x), dtype=bool)].mean()) if len(x) > 1 else np.nan
    table = identity_margins(similarities, own, bench)
    table.insert(1, "steadiness", pd.Series(steadiness))
    return table


def trailing_misses(similarities: dict, table: pd.DataFrame, best: str, baselines: list[str], bench) -> pd.DataFrame:
    """:func:`~ausil_lite.evaluation.breakdown.missed_duplicates` of ``best`` (ranked beside the baselines), kept to
    the families in which ``best`` scores below some baseline: the copies the per-family target still misses."""
    trailing = [f for f in FAMILIES if f in table.columns and table.loc[best, f] < table.loc[baselines, f].max()]
    missed = missed_duplicates({best: similarities[best], **{b: similarities[b] for b in baselines}}, bench, best)
    return missed[missed["family"].isin(trailing)].reset_index(drop=True)


def write_record(path: Path, record: dict) -> None:
    """A card's JSON record of a measurement, stamped with the commit and time it was made at."""
    stamp = {"git_commit": git_commit(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path.write_text(json.dumps({**record, **stamp}, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=RELEASED_VERSION)
    parser.add_argument("--profile", default="ci", help="DAVR-unseen size (default ci: 100 queries)")
    parser.add_argument("--benchmark-dir", type=Path, default=None, help="a built DAVR-unseen (default: data root)")
    parser.add_argument("--ci-models", type=Path, default=data_root() / "models" / "ci",
                        help="the study's ci models, scored beside the released one when present")
    parser.add_argument("--media-baselines", default="landmark,chromaprint")
    parser.add_argument("--float32", action="store_true",
                        help="also score the float32 weights the release was exported from (when on this machine)")
    parser.add_argument("--write-card", action="store_true", help="write the table into the model's card folder")
    parser.add_argument("--compare", nargs="*", default=None, metavar="VERSION",
                        help="other shipped versions scored beside it (default: every other one in the package)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    bench = unseen_benchmark(args.profile, args.benchmark_dir)
    features = data_root() / "features" / f"davr-unseen-{args.profile}"
    released = version_dir(args.version)

    methods: list[Method] = []
    store, variants = extract(bench, features / args.version, ExtractionConfig(backbone="released", model_version=args.version), True)
    methods += ausil_methods(args.version, store, variants, released, "released")
    own_rule = model_chamfer_rule(released)
    for rule in CHAMFER_RULES:  # what the rule chosen on DAVR-dev changes here, against each other rule
        if rule != own_rule:
            methods += ausil_methods(args.version, store, variants, released, "released", rule=rule)
    methods.append(Method(f"chamfer-{args.version}", "chamfer", "released", str(store)))
    if args.float32 and (source := float32_source(released)) is not None:
        store32, variants32 = extract(bench, features / f"{args.version}-float32", source[0], True)
        methods += [dataclasses.replace(m, variant_penalty=model_variant_penalty(released))  # the shipped penalty
                    for m in ausil_methods(f"{args.version}-float32", store32, variants32, source[1], "selfsup")]
    elif args.float32:
        print(f"--float32: the weights {args.version} was exported from are not on this machine", flush=True)
    others = [v for v in available_versions() if v != args.version] if args.compare is None else args.compare
    for other in others:  # an earlier version on the same benchmark: what the later one's training bought
        store, variants = extract(bench, features / other, ExtractionConfig(backbone="released", model_version=other), True)
        methods += ausil_methods(other, store, variants, version_dir(other), "released")
    if (ci := ci_model(args.ci_models)) is not None:
        store, variants = extract(bench, features / "ci-selfsup", ci[0], True)
        methods += ausil_methods("ci", store, variants, ci[1], "selfsup")
    else:
        print(f"no ci study model under {args.ci_models}: scoring the released model without it", flush=True)
    store, _ = extract(bench, features / "random", ExtractionConfig(backbone="random", seed=0), False)
    methods += [Method("chamfer-random", "chamfer", "random", str(store)), Method("pooled-random", "pooled", "random", str(store))]
    methods += [Method(kind, kind, cache_dir=str(data_root() / "cache" / kind))
                for kind in args.media_baselines.split(",") if kind]

    similarities = score_methods(methods, bench, args.profile)
    table = method_table(similarities, bench)
    best = f"ausil-{args.version}{SPEEDS_SUFFIX}"
    baselines = {n: s for n, s in similarities.items() if not n.startswith(("ausil-", "chamfer-ausil"))
                 and not n.endswith(args.version)}
    _, targets = target_checks({best: similarities[best], **baselines}, bench, **TARGETS)
    pd.set_option("display.width", 200)
    print(f"\nDAVR-unseen {args.profile}: {len(bench.query_ids)} queries, {len(bench.database_ids)} database videos")
    print(table.round(3).to_string())
    print(f"\ntargets for {best} (baselines: {', '.join(baselines)}):")
    print(targets.to_string())
    outranking = outranking_sources(similarities[best], bench)
    print(f"\nwhere the non-duplicates that outrank {best}'s duplicates come from:")
    print(outranking.to_string())
    missed = trailing_misses(similarities, table, best, list(baselines), bench)
    print(f"\nthe duplicates {best} ranks below a non-duplicate in the families where it trails a baseline "
          "(rank 1: above every non-duplicate):")
    print(missed.to_string() if len(missed) else "none")
    selfs = self_similarity(similarities[best], bench, features / args.version, args.version)
    below = selfs["duplicate below own-track"]
    print(f"\n{best} against itself: median {selfs['self'].median():.3f}, correlation with steadiness "
          f"{selfs['self'].corr(selfs['steadiness']):.2f}; {int(below.sum())} queries have a duplicate scored at most an "
          f"own-track moment (median self {selfs.loc[below, 'self'].median():.3f}, the others "
          f"{selfs.loc[~below, 'self'].median():.3f}); {int(selfs['own-track above self'].sum())} "
          "score another moment of their own track above themselves")
    if args.write_card:
        card = released / CARD_DIR
        card.mkdir(exist_ok=True)
        table.round(4).to_csv(card / EVALUATION_TABLE)
        targets.to_csv(card / TARGETS_TABLE)
        outranking.to_csv(card / OUTRANKING_TABLE)
        selfs.round(4).to_csv(card / SELF_SIMILARITY_TABLE)
        missed.to_csv(card / MISSED_TABLE, index=False)
        write_record(card / EVALUATION_FILE, {
            "benchmark": f"davr-unseen {args.profile}", "queries": len(bench.query_ids),
            "database": len(bench.database_ids), "duplicate_pairs": sum(len(bench.relevant(q)) for q in bench.query_ids),
            "variant_penalty": model_variant_penalty(released), "measured_weights": weights_stamp(released),
        })
        print(f"wrote {card}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
