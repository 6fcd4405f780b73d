"""Which model a command runs: the released one unless told otherwise, the same way in every command.

- nothing given: the released model (:data:`~ausil_lite.models.released.RELEASED_VERSION`), its
  backbone for descriptors and its trained network for scoring;
- ``--model DIR``: that trained AuSiL-lite model scores, on the backbone it records (its training data's);
- ``--backbone random|kumar2018|selfsup`` (with ``--weights FILE``, ``--seed``): that backbone; without
  ``--model`` plain chamfer similarity scores, since the released network was trained on other descriptors;
- ``--weights FILE`` alone: a backbone state dict, as ``--backbone selfsup``;
- ``--fast``: any of these at bfloat16 (:mod:`ausil_lite.descriptors.precision`); a store or index made that way keeps it.

A copy of the package without the released model's folder says so when the default is used; it does
not fall back to the random backbone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ausil_lite.descriptors.extraction import BACKBONES, ExtractionConfig
from ausil_lite.models.released import RELEASED_VERSION, available_versions, version_dir

DEFAULT_HELP = (
    f"Default model: the released model {RELEASED_VERSION}, its backbone and its trained network"
    + ("" if RELEASED_VERSION in available_versions() else " (not in this copy of the package)")
    + "; --backbone random, --model DIR or --weights FILE choose another."
)


FAST_HELP = (
    "make descriptors with the fast network: the backbone in bfloat16, compiled for the CPU (about 4x faster "
    "with AVX-512/AMX bfloat16, after a start-up of 1-2 minutes a process, so it pays off from tens of minutes of "
    "audio on); its descriptors "
    "differ from the full network's by at most 0.05 per component (cosine above 0.9999), and a store or index keeps the precision it "
    "was made with (default: the full float32 network, or the precision the store/index records)"
)


def add_backbone_options(parser: argparse.ArgumentParser, default: str = "released") -> None:
    """``--backbone``, ``--weights``, ``--seed`` and ``--fast``, all None unless given (resolved by :func:`extraction_choice`);
    ``default`` says in the help what an omitted ``--backbone`` means."""
    parser.add_argument("--backbone", choices=BACKBONES, default=None,
                        help=f"descriptor network: released, random, kumar2018 or selfsup (default: {default})")
    parser.add_argument("--weights", default=None,
                        help="backbone state-dict file for kumar2018 or selfsup (alone: as --backbone selfsup)")
    parser.add_argument("--seed", type=int, default=None, help="initialisation seed of the random backbone (default 0)")
    parser.add_argument("--fast", action="store_true", default=None, help=FAST_HELP)


def extraction_choice(args: argparse.Namespace, recorded: dict | None = None, device: str | None = None) -> ExtractionConfig:
    """The backbone asked for: as given, else as ``recorded`` (a model's or a store's), else the released one."""
    given = {k: v for k, v in (("backbone", args.backbone), ("weights", args.weights), ("seed", args.seed)) if v is not None}
    if args.fast:
        given["precision"] = "bfloat16"
    if "weights" in given and "backbone" not in given:
        given["backbone"] = "selfsup"
    if "backbone" in given:
        return ExtractionConfig(**given, device=device)
    keys = ("backbone", "weights", "seed", "model_version", "precision")
    values = {k: v for k, v in (recorded or {}).items() if k in keys} or {"backbone": "released"}
    return ExtractionConfig(**(values | given), device=device)


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
