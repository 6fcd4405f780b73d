"""The released models that ship inside the package: which versions exist, where, and how they load.

Each version is a folder ``ausil_lite/models/<version>/`` written by
:func:`ausil_lite.models.export.export_released_model`::

    backbone.pt     the KumarCNN state dict, float16 (loaded as float32)
    model.pt        attention context vector + comparator state dicts, float16
    whitening.npz   whitening mean and projection, float16, only its first components
    config.json     version, provenance, training data summary, calibration (the variant penalty), the
                    chamfer rule chosen on DAVR-dev (absent: ``query``)
    SHA256SUMS      ``<sha256>  <name>`` of each file above

The folder is also a model directory as :func:`ausil_lite.similarity.load_model` reads it, and that
loader checks ``SHA256SUMS`` too, so ``--model <this folder>`` is verified the same way. Every load
checks every file's SHA-256 first: a damaged or edited weight file raises, naming the file.

The model card's evaluation (``card/evaluation.json`` and its tables, written by
``benchmarks/released_model.py --write-card``) is stamped with :func:`weights_stamp`, so a card that
describes other weights (a retrained version not measured yet) is refused rather than shown.

The commands use :data:`RELEASED_VERSION` unless told otherwise. A copy of the package without its
folder (the weights not committed yet, or stripped) says so when asked for it; it never falls back
to a random backbone in its place.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ausil_lite.descriptors.backbone import KumarCNN, load_backbone
from ausil_lite.digests import SUMS_FILE, read_sha256sums, verify_sha256sums
from ausil_lite.errors import InputError
from ausil_lite.similarity.model import CHAMFER_RULE_KEY, CONFIG_FILE, WEIGHTS_FILE, WHITENING_FILE, AuSiL, load_model

RELEASED_VERSION = "ausil-lite-v3"
"""The version every command uses by default."""

MODELS_ROOT = Path(__file__).resolve().parent
"""Where version folders live: this package folder (tests point it at a tiny exported model)."""

BACKBONE_FILE = "backbone.pt"
MODEL_FILES = (BACKBONE_FILE, WEIGHTS_FILE, WHITENING_FILE, CONFIG_FILE)
"""The files of a version folder, each listed in its ``SHA256SUMS``."""

CARD_DIR = "card"
EVALUATION_FILE = "evaluation.json"
"""In ``card/``: the evaluation's record (benchmark, sizes, when) with the stamp of the weights it measured."""
EVALUATION_TABLE = "evaluation.csv"
"""In ``card/``: one row per method, mAP overall, on speed-changed copies and per transformation family."""
TARGETS_TABLE = "targets.csv"
"""In ``card/``: the released model's targets, each with its measured value and whether it is met."""
OUTRANKING_TABLE = "outranking.csv"
"""In ``card/``: where the non-duplicates that outrank the released model's duplicates come from (the query's own
track or another), beside how common each source is (:func:`ausil_lite.evaluation.breakdown.outranking_sources`)."""
SELF_SIMILARITY_TABLE = "self_similarity.csv"
"""In ``card/``: per query, the released model's score of the query against itself beside its lowest-scored duplicate
and its highest-scored other moment of its own track, and how steady its audio is
(:func:`ausil_lite.evaluation.breakdown.identity_margins`)."""
MISSED_TABLE = "missed.csv"
"""In ``card/``: the duplicates behind each family where the released model trails a baseline, with every method's
rank for each (:func:`ausil_lite.evaluation.breakdown.missed_duplicates`): which copies the bar still misses."""
CARD_EVALUATION_FILES = (EVALUATION_FILE, EVALUATION_TABLE, TARGETS_TABLE, OUTRANKING_TABLE, SELF_SIMILARITY_TABLE,
                         MISSED_TABLE)
"""The card files an evaluation writes (the learning curves are the training's, written on export)."""
CORPUS_TABLE = "corpus.csv"
"""In ``card/``: the training corpus (package, kind, licence, tracks, hours), written when a version is exported."""
CHAMFER_RULE_TABLE = "chamfer_rule.csv"
"""In ``card/``: every chamfer rule's mAP on DAVR-dev, where the version's rule was chosen (``benchmarks/chamfer_rule.py``)."""
FAST_NETWORK_TABLE = "fast_network.csv"
"""In ``card/``: the fast (bfloat16) network's mAP beside the full network's, and whether it may be the CPU default."""
FOUR_PACKAGES_TABLE = "four_packages.csv"
"""In ``card/``: the version's recipe trained on DAVR-mini's four packages instead of the corpus, scored like the
version on DAVR-unseen (``benchmarks/corpus_ablation.py``): what the corpus buys at equal training sizes."""
FOUR_PACKAGES_FILE = "four_packages.json"
"""In ``card/``: that run's record (training tracks and hours, sizes, seconds, variant penalty, when)."""
HELD_OUT_TABLE = "held_out_dev.csv"
"""In ``card/``: every chamfer rule's mAP on DAVR-dev for the version's recipe trained without DAVR-dev's packages
(``benchmarks/held_out_dev.py``): the rule chosen on audio the chooser never heard."""
HELD_OUT_FILE = "held_out_dev.json"
"""In ``card/``: that run's record (training tracks, sizes, variant penalty, when)."""
HELD_OUT_SEVERE_TABLE = "held_out_dev_severe.csv"
"""In ``card/``: the same model by every rule on DAVR-dev's ``severe`` profile, every copy from the hard end of its
family's range: whether what the release misses on DAVR-unseen is the severity of a transformation or the audio."""


def held_out_files(profile: str) -> tuple[str, str]:
    """The card's table and record of ``benchmarks/held_out_dev.py`` on DAVR-dev's ``profile`` (ci: the rule's chooser,
    :data:`HELD_OUT_TABLE`; severe: :data:`HELD_OUT_SEVERE_TABLE`; another profile: named after it)."""
    if profile == "ci":
        return HELD_OUT_TABLE, HELD_OUT_FILE
    return f"held_out_dev_{profile}.csv", f"held_out_dev_{profile}.json"


class ReleasedModelError(InputError):
    """A released model version that is not in this copy of the package, or an unusable version name."""


class StaleCardError(InputError):
    """A model card whose evaluation was measured on other weights than the folder holds."""


def version_dir(version: str = RELEASED_VERSION) -> Path:
    """The folder of ``version``; raises :class:`ReleasedModelError` saying what to do when it is absent."""
    if not version or "/" in version or "\\" in version or version.startswith("."):
        raise ReleasedModelError(f"{version!r} cannot name a released model version")
    folder = MODELS_ROOT / version
    if not (folder / SUMS_FILE).is_file():
        shipped = ", ".join(available_versions()) or "none"
        raise ReleasedModelError(
            f"the released model {version} is not in this copy of ausil-lite ({folder} holds no {SUMS_FILE}; "
            f"versions here: {shipped}). Install a release that ships it, or choose another model: "
            "--backbone random (a seeded random backbone, chamfer similarity), --model DIR or --weights FILE"
        )
    return folder


def available_versions() -> list[str]:
    """Names of the version folders present in this copy, sorted."""
    if not MODELS_ROOT.is_dir():
        return []
    return sorted(p.name for p in MODELS_ROOT.iterdir() if (p / SUMS_FILE).is_file())


def verified_dir(version: str = RELEASED_VERSION) -> Path:
    """The folder of ``version`` after checking every file against its ``SHA256SUMS``."""
    folder = version_dir(version)
    verify_sha256sums(folder, MODEL_FILES)
    return folder


def read_release(version: str = RELEASED_VERSION) -> dict:
    """The version's ``config.json`` (version, provenance, training data, calibration), verified."""
    return json.loads((verified_dir(version) / CONFIG_FILE).read_text(encoding="utf-8"))


def load_released_backbone(version: str = RELEASED_VERSION, device: str | torch.device | None = None) -> KumarCNN:
    """The version's backbone in eval mode on ``device``, as float32 (stored float16), after the checksums."""
    return load_backbone(verified_dir(version) / BACKBONE_FILE, device=device)


def load_released_scorer(version: str = RELEASED_VERSION, device: str | torch.device | None = None) -> AuSiL:
    """The version's AuSiL network (whitening, attention, comparator) in eval mode, after the checksums."""
    return load_model(version_dir(version), device)


def weights_stamp(folder: Path) -> dict:
    """What an evaluation of the model in ``folder`` depends on: the SHA-256 of each weight file (from
    ``SHA256SUMS``), the variant penalty and the chamfer rule. ``config.json`` itself is left out, so mending its
    provenance text does not make a measured card stale."""
    sums = read_sha256sums(folder)
    record = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    stamp = {"weights": {name: sums[name] for name in MODEL_FILES if name != CONFIG_FILE},
             "variant_penalty": record.get("variant_penalty")}
    if CHAMFER_RULE_KEY in record:  # a version that records none scores by "query" and keeps its earlier stamp
        stamp[CHAMFER_RULE_KEY] = record[CHAMFER_RULE_KEY]
    return stamp


def card_is_current(folder: Path) -> bool:
    """Whether ``folder``'s ``card/evaluation.json`` measured the weights the folder holds now."""
    path = folder / CARD_DIR / EVALUATION_FILE
    if not path.is_file():
        return False
    return json.loads(path.read_text(encoding="utf-8")).get("measured_weights") == weights_stamp(folder)


def read_card_evaluation(version: str = RELEASED_VERSION) -> dict:
    """The version's ``card/evaluation.json``, verified against the weights it describes.

    Raises :class:`StaleCardError` when the card is missing or was measured on other weights (the
    model was retrained or re-exported since): the figures would describe a model that is not there.
    """
    folder = verified_dir(version)
    if not card_is_current(folder):
        raise StaleCardError(
            f"{folder / CARD_DIR / EVALUATION_FILE}: no evaluation of the weights this folder holds "
            f"(missing, or measured on other weights); run benchmarks/released_model.py --version {version} --write-card"
        )
    return json.loads((folder / CARD_DIR / EVALUATION_FILE).read_text(encoding="utf-8"))
