"""Write a released model version folder (:mod:`ausil_lite.models.released`) from a training run's files.

Float16 halves the files (the backbone's ~5M parameters: ~10 MB) and moves scores by about 1e-3
(the models' tests state the tolerance); the whitening keeps only its first components, as wide as
asked. The folder's ``config.json`` records what the model card needs: the version, what it was made
from, the training data summary and calibration the caller passes, and the variant penalty.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from ausil_lite import __version__
from ausil_lite.config import git_commit
from ausil_lite.descriptors.backbone import KumarCNN, load_weights
from ausil_lite.descriptors.speeds import PENALTY_KEY, calibrate_variant_penalty
from ausil_lite.descriptors.whitening import PCAWhitening
from ausil_lite.digests import verify_sha256sums, write_sha256sums
from ausil_lite.learning.triplets import TripletSource
from ausil_lite.models.released import BACKBONE_FILE, MODEL_FILES
from ausil_lite.paths import REPO_ROOT, data_root
from ausil_lite.similarity.chamfer import check_chamfer_rule
from ausil_lite.similarity.model import (CHAMFER_RULE_KEY, WEIGHTS_FILE, WHITENING_FILE, AuSiL, load_model, read_provenance,
                                         write_provenance)

MAX_BYTES = 40 * 2**20
"""A released version folder may not exceed this (bytes): it lives in the repository."""


def _half(state: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """Floating tensors as float16 (counters stay integers); a value float16 cannot hold raises."""
    out = {}
    for key, value in state.items():
        if value.is_floating_point():
            half = value.detach().cpu().to(torch.float16)
            if not torch.isfinite(half).all():
                raise ValueError(f"{name}: {key} overflows float16 (largest |value| {value.abs().max().item():.4g})")
            value = half
        out[key] = value
    return out


def _truncated(model: AuSiL, dims: int | None, source: Path) -> tuple[PCAWhitening, dict[str, torch.Tensor]]:
    """The whitening's first ``dims`` components and the attention context vector cut alike."""
    width = model.whitening.projection.shape[1]
    dims = width if dims is None else dims
    if not 1 <= dims <= width:
        raise ValueError(f"{source}: whitening_dims must be in [1, {width}] (the model's width), got {dims}")
    whitening = PCAWhitening(model.whitening.mean.cpu(), model.whitening.projection[:, :dims].cpu())
    attention = {k: v[..., :dims] for k, v in model.attention.state_dict().items()}
    return whitening, attention


def portable_paths(value):
    """``value`` (plain JSON) with every path under the data root written ``$AUSIL_DATA/...`` and every
    path in the repository written relative to it: a shipped config names where its inputs were made
    without naming the machine that made them."""
    if isinstance(value, dict):
        return {key: portable_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [portable_paths(item) for item in value]
    if isinstance(value, str) and value.startswith("/"):
        path = Path(value)
        for root, name in ((data_root(), "$AUSIL_DATA"), (REPO_ROOT, ".")):
            if path.is_relative_to(root):
                return str(Path(name) / path.relative_to(root))
    return value


def export_released_model(
    backbone_weights: Path,
    ausil_model_dir: Path,
    out_dir: Path,
    version: str,
    whitening_dims: int | None,
    extra: dict,
    *,
    calibration: TripletSource | None = None,
) -> Path:
    """Write version ``version`` of the released model into ``out_dir`` (replacing it) and return it.

    ``backbone_weights``: the backbone's state dict (a ``selfsup`` backbone.pt); ``ausil_model_dir``:
    the AuSiL model trained on its descriptors (``ausil_lite.learning.triplets.train``'s folder).
    ``whitening_dims``: components kept (None: all the model has); fewer than the model was trained
    with changes its scores, so evaluate the folder written. ``extra``: plain JSON values stored
    under ``config.json["extra"]`` (training data summary, evaluation, ...). ``calibration``: training
    data to calibrate the variant penalty on, with the exported (float16) weights; without it the
    source model's recorded penalty is kept, if any (models without one use 0.3).

    Usually ``out_dir`` is ``ausil_lite/models/<version>`` (``released.MODELS_ROOT / version``).
    """
    backbone_weights, ausil_model_dir, out_dir = Path(backbone_weights), Path(ausil_model_dir), Path(out_dir)
    if out_dir.name != version:
        raise ValueError(f"{out_dir}: a version folder must be named after its version {version!r}")
    json.dumps(extra)  # plain JSON values only: fail before anything is written
    backbone = load_weights(KumarCNN(), backbone_weights)
    model = load_model(ausil_model_dir, "cpu")
    source_record = read_provenance(ausil_model_dir)
    whitening, attention = _truncated(model, whitening_dims, ausil_model_dir)

    tmp = out_dir.with_name(f".tmp-{out_dir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(_half(backbone.state_dict(), str(backbone_weights)), tmp / BACKBONE_FILE)
    torch.save({"attention": _half(attention, str(ausil_model_dir)),
                "comparator": _half(model.comparator.state_dict(), str(ausil_model_dir))}, tmp / WEIGHTS_FILE)
    np.savez(tmp / WHITENING_FILE, mean=whitening.mean.numpy().astype(np.float16),
             projection=whitening.projection.numpy().astype(np.float16))
    extraction = {"backbone": "released", "weights": None, "seed": 0, "model_version": version}
    record = {
        "version": version,
        "format": 1,
        "dtype": "float16",
        "whitening_dims": int(whitening.projection.shape[1]),
        "trained_whitening_dims": int(model.whitening.projection.shape[1]),
        "data": {"extraction": extraction},  # what `similarity --model <folder>` runs on media files
        "made_from": portable_paths({"backbone_weights": str(backbone_weights), "ausil_model": str(ausil_model_dir),
                                     "ausil_provenance": source_record}),
        "export": {"git_commit": git_commit(), "package_version": __version__},
        "extra": portable_paths(extra),
    }
    for key in (PENALTY_KEY, CHAMFER_RULE_KEY):
        if source_record.get(key) is not None:
            record[key] = source_record[key]
    write_provenance(tmp, record)
    if calibration is not None:  # measured on the weights as shipped, float16 and cut whitening included
        record[PENALTY_KEY] = calibrate_variant_penalty(load_model(tmp, "cpu"), calibration)
        record["calibration"] = {"variant_penalty": record[PENALTY_KEY], "pairs": len(calibration.pairs),
                                 "negatives": len(calibration.negatives)}
        write_provenance(tmp, record)
    write_sha256sums(tmp, list(MODEL_FILES))
    size = sum(p.stat().st_size for p in tmp.iterdir())
    if size > MAX_BYTES:
        shutil.rmtree(tmp)
        raise ValueError(f"{out_dir}: {size / 2**20:.1f} MB, over the {MAX_BYTES / 2**20:.0f} MB a release may take")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def record_chamfer_rule(folder: str | Path, rule: str, chosen_on: dict) -> Path:
    """Record ``rule`` (a key of :data:`ausil_lite.similarity.chamfer.CHAMFER_RULES`) in a version folder's
    ``config.json``, with what it was chosen on (``chosen_on``: plain JSON, e.g. the development benchmark and the
    figures of every rule), and renew ``SHA256SUMS``. The card's stamp then no longer matches: the evaluation
    must be measured again with the rule the model now scores by."""
    check_chamfer_rule(rule)
    folder = Path(folder)
    verify_sha256sums(folder, list(MODEL_FILES))
    record = read_provenance(folder)
    record[CHAMFER_RULE_KEY] = rule
    record["chamfer_rule_choice"] = json.loads(json.dumps(chosen_on))
    write_provenance(folder, record)
    write_sha256sums(folder, list(MODEL_FILES))
    return folder
