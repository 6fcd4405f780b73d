"""Training the released model: the self-supervised backbone and the AuSiL network on the whole training corpus.

``python -m ausil_lite.study.release`` (or ``make release``) builds the corpus (:mod:`ausil_lite.datasets.corpus`),
trains the backbone self-supervised on it, draws AuSiL's training triplets from it with that backbone, trains
whitening, attention and comparator, and exports the result into the package
(:func:`ausil_lite.models.export.export_released_model`, float16, the variant penalty calibrated on the training
triplets), with the learning curves in the version's ``card/`` folder for the model card. The steps are the study's training chapter's
(:mod:`ausil_lite.study.pipeline`) pointed at the corpus instead of DAVR-mini's training tracks, so both resume the
same way: kill it at any moment and rerun the command; a finished step is reused. Progress (steps, loss,
time left) shows in the terminal; learning curves go to CSV beside the checkpoints (``loss.csv``,
``learning_curve.csv`` under ``data_root()/models/release/<version>``). The export scores by the ``query`` chamfer
rule, as the network trained; ``benchmarks/chamfer_rule.py --write`` then chooses the rule on DAVR-dev and
``benchmarks/released_model.py --write-card`` measures the model as it will score.

A version may reuse an earlier shipped version's backbone (:data:`RELEASE_BACKBONE_OF`, ``--backbone-of``) and train
only a new AuSiL network on it, with the options of :data:`RELEASE_OPTIONS`.

The sizes (:data:`RELEASE_SIZES`) are what fits one working session on 2 CPU cores. The ``full`` profile's
self-supervised length (20 epochs of 200 steps of 32 pairs) costs about 4 s a step here, 4.5 hours; ``--epochs``
and ``--steps`` lengthen a run, and a rerun with more epochs continues the same one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ausil_lite.datasets.corpus import CORPUS_MANIFEST, build_corpus, corpus_tracks, manifest_digest, write_corpus_table
from ausil_lite.datasets.renders import RENDER_MANIFEST
from ausil_lite.descriptors.extraction import ExtractionConfig
from ausil_lite.descriptors.speeds import calibrate_variant_penalty
from ausil_lite.learning.triplets import CURVE_FILE, load_triplet_source
from ausil_lite.models.export import export_released_model
from ausil_lite.models.released import (
    BACKBONE_FILE,
    CARD_DIR,
    CARD_EVALUATION_FILES,
    CORPUS_TABLE,
    MODELS_ROOT,
    RELEASED_VERSION,
    card_is_current,
    verified_dir,
    version_dir,
)
from ausil_lite.paths import data_root
from ausil_lite.similarity.model import load_model
from ausil_lite.study.pipeline import PipelineConfig, extraction_config, train_backbone, train_model

RELEASE_SIZES = dict(
    selfsup_epochs=16, selfsup_steps=100, selfsup_batch_size=16, selfsup_clip_s=60.0,
    train_pairs=400, train_negatives=400, train_clip_s=20.0, speed_pairs=100,
    epochs=30, batch_size=16, learning_rate=0.001,
)
"""Four times the ``ci`` profile's self-supervised steps (the best length measured on DAVR-mini ci), over the
whole corpus instead of 20 tracks; the ``full`` profile's triplet counts, plus 100 speed-changed pairs. The
self-supervised clips are each track's middle 60 s: they are held in memory, and the 1,138 tracks of the
26.6-hour corpus take 8.3 GB at 60 s against 11.6 GB at the 120 s ``ausil-lite-v1`` used on 341 tracks."""

RELEASE_OPTIONS = dict(same_track_negatives=True, identity_weight=1.0)
"""How the AuSiL network trains beyond its sizes (``ausil-lite-v3`` on): each anchor also meets another moment of its
own track as a negative, and must outscore its negatives against itself (the identity term). Chosen on DAVR-dev with the
recipe trained without DAVR-dev's packages (``benchmarks/held_out_dev.py``'s model), by the ``either`` rule without
speed hypotheses: mAP 0.9939 against 0.9885 for neither option (0.9917 with same-track negatives alone, 0.9846 with
the identity term alone). Each query's score against itself moved too (at least 0.64 against 0.37), but that figure
varies as much between two seeds of the same recipe, so it chose nothing."""

RELEASE_BACKBONE_OF: str | None = "ausil-lite-v2"
"""The shipped version whose backbone the release reuses (None: train a self-supervised backbone first).
``ausil-lite-v3`` is ``ausil-lite-v2``'s backbone with a new AuSiL network: the backbone's 69 min of training do not
change what :data:`RELEASE_OPTIONS` changes, and the descriptors (so every store made with v2) stay the same numbers."""


@dataclass(frozen=True)
class ReleaseRun:
    """Where one release training lives and what it trains."""

    version: str
    corpus_dir: Path
    models_dir: Path
    pipeline: PipelineConfig
    backbone_of: str | None = None  # a shipped version whose backbone is reused; None: train one

    @classmethod
    def make(cls, version: str, seed: int = 0, device: str | None = None, backbone_of: str | None = RELEASE_BACKBONE_OF,
             **sizes) -> ReleaseRun:
        if backbone_of == version:
            raise ValueError(f"{version} cannot reuse its own backbone; name an earlier shipped version, or none")
        # one folder a version: a later version on a grown corpus must never resume an earlier one's checkpoints
        corpus, models = data_root() / "corpus", data_root() / "models" / "release" / version
        return cls(version, corpus, models, release_pipeline(corpus, models, seed, device, **sizes), backbone_of)


def release_pipeline(tracks_dir: Path, models_dir: Path, seed: int = 0, device: str | None = None,
                     **sizes) -> PipelineConfig:
    """The release's recipe (:data:`RELEASE_SIZES`, self-supervised backbone then AuSiL) on the training tracks
    listed in ``tracks_dir/train.csv``: the corpus for a release, DAVR-mini's four packages for the comparison of
    corpora (``benchmarks/corpus_ablation.py``), so the two differ in their training audio only."""
    return PipelineConfig.from_dict({
        **RELEASE_SIZES, **RELEASE_OPTIONS, **sizes, "profile": "release", "seed": seed, "device": device, "backbones": "selfsup",
        "benchmark_dir": str(tracks_dir), "models_dir": str(models_dir), "workers": 0,
    })


@dataclass(frozen=True)
class RecipeResult:
    """What :func:`train_recipe` trained: the backbone's weights, the AuSiL network's folder, learning curve and the
    description of its triplets, and the seconds each part took in that call (a reused part takes seconds: the
    training's own length is in a first run's report; a shipped backbone takes none)."""

    weights: Path
    model_dir: Path
    curve: pd.DataFrame
    triplets: dict
    selfsup_s: float
    ausil_s: float


def train_recipe(pipeline: PipelineConfig, log=print, backbone_of: str | None = None) -> RecipeResult:
    """Backbone, then the AuSiL network on triplets drawn with it; each step is resumed, or reused when done.
    ``backbone_of``: no backbone is trained; the network learns on the descriptors of that shipped version's."""
    started = time.perf_counter()
    if backbone_of is None:
        weights = train_backbone(pipeline, log)
        extraction = extraction_config(pipeline, "selfsup", weights)
    else:
        weights = verified_dir(backbone_of) / BACKBONE_FILE
        extraction = ExtractionConfig(backbone="released", model_version=backbone_of, device=pipeline.device)
    trained = time.perf_counter()
    _, curve, triplets = train_model(pipeline, extraction, log, on_shipped_backbone=backbone_of is not None)
    return RecipeResult(weights, pipeline.model_dir(extraction.backbone), curve, triplets, round(trained - started, 1),
                        round(time.perf_counter() - trained, 1))


def recipe_penalty(trained: RecipeResult) -> float:
    """The variant penalty of the AuSiL network :func:`train_recipe` trained, calibrated on its own training triplets
    as an export calibrates a release's (never on an evaluation)."""
    triplets = load_triplet_source(trained.model_dir / f"triplets-{trained.triplets['key']}.npz")
    return calibrate_variant_penalty(load_model(trained.model_dir, "cpu"), triplets)


def train_release(run: ReleaseRun, log=print) -> dict:
    """Corpus, backbone, AuSiL network; returns what the model card reports (sizes, hours, timings)."""
    started = time.perf_counter()
    summary = build_corpus(run.corpus_dir, log=log)
    log(f"corpus: {summary.tracks} tracks, {summary.hours} h ({summary.hours_by_kind})")
    built = time.perf_counter()
    trained = train_recipe(run.pipeline, log, run.backbone_of)
    report = {
        "version": run.version,
        "machine": f"{torch.get_num_threads()} CPU threads ({platform.processor() or platform.machine()})"
        if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "corpus": {"manifest": CORPUS_MANIFEST.name, "manifest_sha1": manifest_digest(),
                   "renders": RENDER_MANIFEST.name, "renders_sha1": manifest_digest(RENDER_MANIFEST),
                   "tracks": summary.tracks, "hours": summary.hours, "hours_by_kind": summary.hours_by_kind,
                   "hours_by_package": summary.hours_by_package, "hours_by_licence": summary.hours_by_licence},
        "sizes": {k: v for k, v in dataclasses.asdict(run.pipeline).items() if k in RELEASE_SIZES},
        "options": {k: v for k, v in dataclasses.asdict(run.pipeline).items() if k in RELEASE_OPTIONS},
        "seed": run.pipeline.seed,
        "triplets": trained.triplets,
        "backbone_of": run.backbone_of,
        "backbone_weights": str(trained.weights),
        "ausil_dir": str(trained.model_dir),
        "final_epoch": trained.curve.iloc[-1].to_dict(),
        "seconds": {"corpus": round(built - started, 1), "selfsup": trained.selfsup_s, "ausil": trained.ausil_s},
    }
    path = run.models_dir / "release.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    log(f"trained in {time.perf_counter() - started:.0f} s; report {path}")
    return report


def export_release(run: ReleaseRun, report: dict, out_dir: Path | None = None) -> Path:
    """Write the trained model into the package (``MODELS_ROOT/<version>``) with its learning curves in ``card/``
    and the corpus it learnt from (``card/corpus.csv``: tracks and hours per package, kind and licence).

    The variant penalty is calibrated on the AuSiL network's own training triplets (never on an evaluation).
    Refuses when the corpus manifests changed since training: the card would describe another corpus.
    """
    corpus = report["corpus"]
    if (manifest_digest(), manifest_digest(RENDER_MANIFEST)) != (corpus["manifest_sha1"], corpus.get("renders_sha1")):
        raise RuntimeError(f"{CORPUS_MANIFEST.name} or {RENDER_MANIFEST.name} changed since the model was trained; "
                           "train again (python -m ausil_lite.study.release) before exporting")
    out = out_dir or MODELS_ROOT / run.version
    ausil_dir = Path(report["ausil_dir"])
    triplets = load_triplet_source(ausil_dir / f"triplets-{report['triplets']['key']}.npz")
    card = out / CARD_DIR
    kept = {p.name: p.read_bytes() for p in card.glob("*")} if card.is_dir() else {}
    export_released_model(Path(report["backbone_weights"]), ausil_dir, out, run.version, None, report,
                          calibration=triplets)
    card.mkdir(exist_ok=True)
    for name, data in kept.items():
        (card / name).write_bytes(data)
    if kept and not card_is_current(out):  # other weights now: their figures would describe a model that is gone
        for name in CARD_EVALUATION_FILES:
            (card / name).unlink(missing_ok=True)
        print(f"{card}: the evaluation described other weights and was removed; "
              f"measure these with benchmarks/released_model.py --version {run.version} --write-card")
    write_corpus_table(corpus_tracks(), card / CORPUS_TABLE)
    selfsup_loss = run.pipeline.selfsup_dir / "loss.csv" if run.backbone_of is None \
        else version_dir(run.backbone_of) / CARD_DIR / "selfsup_loss.csv"  # the reused backbone's own curve
    shutil.copyfile(selfsup_loss, card / "selfsup_loss.csv")
    shutil.copyfile(ausil_dir / CURVE_FILE, card / CURVE_FILE)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ausil_lite.study.release", description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=RELEASED_VERSION,
                        help=f"name of the exported model (default {RELEASED_VERSION}, the version the package ships)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="torch device (default: CUDA when available)")
    parser.add_argument("--epochs", type=int, default=RELEASE_SIZES["selfsup_epochs"], help="self-supervised epochs")
    parser.add_argument("--steps", type=int, default=RELEASE_SIZES["selfsup_steps"], help="self-supervised steps per epoch")
    parser.add_argument("--backbone-of", default=RELEASE_BACKBONE_OF or "none",
                        help=f"reuse this shipped version's backbone (default {RELEASE_BACKBONE_OF}); 'none' trains one "
                             "(--epochs and --steps apply then)")
    args = parser.parse_args(argv)
    backbone_of = None if args.backbone_of == "none" else args.backbone_of
    run = ReleaseRun.make(args.version, args.seed, args.device, backbone_of, selfsup_epochs=args.epochs,
                          selfsup_steps=args.steps)
    out = export_release(run, train_release(run))
    print(f"exported {run.version} to {out}; measure it with benchmarks/released_model.py --write-card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
