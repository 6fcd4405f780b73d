"""Which model a command runs: the released one unless told otherwise, the same way in every command.

- nothing given: the released model (:data:`~ausil_lite.models.released.RELEASED_VERSION`), its
  backbone for descriptors and its trained network for scoring;
- ``--model DIR``: that trained AuSiL-lite model scores, on the backbone it records (its training data's);
- ``--backbone random|kumar2018|selfsup`` (with ``--weights FILE``, ``--seed``): that backbone; without
  ``--model`` plain chamfer similarity scores, since the released network was trained on other descriptors;
- ``--weights FILE`` alone: a backbone state dict, as ``--backbone selfsup``;
- ``--fast`` / ``--full``: any of these at bfloat16 or float32 (:mod:`ausil_lite.descriptors.precision`); told
  neither, :func:`~ausil_lite.descriptors.precision.default_precision` decides (bfloat16 for the released model
  on a CPU with native bfloat16). A store or index keeps the precision it was made with.

A copy of the package without the released model's folder says so when the default is used; it does
not fall back to the random backbone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ausil_lite.descriptors.extraction import BACKBONES, ExtractionConfig, recorded_extraction
from ausil_lite.descriptors.precision import default_precision
from ausil_lite.descriptors.workers import MAX_DEFAULT_WORKERS, default_workers
from ausil_lite.models.released import RELEASED_VERSION, available_versions, version_dir

DEFAULT_HELP = (
    f"Default model: the released model {RELEASED_VERSION}, its backbone and its trained network"
    + ("" if RELEASED_VERSION in available_versions() else " (not in this copy of the package)")
    + "; --backbone random, --model DIR or --weights FILE choose another. On a CPU with native bfloat16 "
    "(AVX-512 BF16 or AMX) the released backbone runs as the fast network (--fast, the default there; --full: float32)."
)


FAST_HELP = (
    "make descriptors with the fast network: the backbone in bfloat16, compiled for the CPU; on CPUs with AVX-512 "
    "BF16 or AMX the backbone runs about 4x faster (end to end about 1.8x) after a start-up of 30 s to 2 min a "
    "process; its descriptors differ from the full network's by at most 0.05 per component (cosine above 0.9999) "
    "and the released model's evaluation mAP by under 0.001 (model card). Default for the released model on such "
    "a CPU with a C++ compiler"
)

FULL_HELP = (
    "make descriptors with the full float32 network: no compile start-up, so quicker for a few minutes of audio; "
    "the default on CUDA, for other backbones, and on CPUs without native bfloat16. A store or index keeps the "
    "precision it was made with"
)


def add_backbone_options(parser: argparse.ArgumentParser, default: str = "released") -> None:
    """``--backbone``, ``--weights``, ``--seed`` and ``--fast``/``--full``, all None unless given (resolved by
    :func:`extraction_choice`); ``default`` says in the help what an omitted ``--backbone`` means."""
    parser.add_argument("--backbone", choices=BACKBONES, default=None,
                        help=f"descriptor network: released, random, kumar2018 or selfsup (default: {default})")
    parser.add_argument("--weights", default=None,
                        help="backbone state-dict file for kumar2018 or selfsup (alone: as --backbone selfsup)")
    parser.add_argument("--seed", type=int, default=None, help="initialisation seed of the random backbone (default 0)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fast", action="store_true", default=None, help=FAST_HELP)
    precision.add_argument("--full", action="store_true", default=None, help=FULL_HELP)


def add_workers_option(parser: argparse.ArgumentParser) -> None:
    """``--workers``: the extraction processes (:mod:`ausil_lite.descriptors.workers`), one a core by default."""
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="extraction processes: on a CPU each extracts whole files, on a GPU they decode ahead of it "
                        f"(default: one a usable core, at most {MAX_DEFAULT_WORKERS}: here %(default)s; 0: all in this process)")


def extraction_choice(
    args: argparse.Namespace, recorded: dict | None = None, device: str | None = None, keep_precision: bool = True
) -> ExtractionConfig:
    """The backbone asked for: as given, else as ``recorded`` (a model's or a store's), else the released one;
    at the precision asked for, else the recorded one when ``keep_precision`` (a store's or an index's:
    descriptors never mix; a model's training precision does not bind), else :func:`default_precision`
    (bfloat16 for the released model on a CPU that runs it natively)."""
    given = {k: v for k, v in (("backbone", args.backbone), ("weights", args.weights), ("seed", args.seed)) if v is not None}
    if args.fast or args.full:
        given["precision"] = "bfloat16" if args.fast else "float32"
    if "weights" in given and "backbone" not in given:
        given["backbone"] = "selfsup"
    if "backbone" in given or not recorded:
        chosen = {"backbone": "released"} | given
    else:  # a record from before precisions existed was float32 (recorded_extraction says so)
        chosen = recorded_extraction(recorded) | given
        if not keep_precision and "precision" not in given:
            del chosen["precision"]
    chosen.setdefault("precision", default_precision(chosen["backbone"], device))
    return ExtractionConfig(**chosen, device=device)


def scoring_model(args: argparse.Namespace, extraction: ExtractionConfig) -> Path | None:
    """The trained model that scores: ``--model``, else the released network on released descriptors,
    else None (chamfer similarity of another backbone's descriptors)."""
    if args.model is not None:
        return args.model
    if extraction.backbone == "released":
        return version_dir(extraction.model_version)
    return None


def require_model(extraction: ExtractionConfig) -> None:
    """Raise now, before a store or an index is touched, when the released model asked for is not here."""
    if extraction.backbone == "released":
        version_dir(extraction.model_version)
