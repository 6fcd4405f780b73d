"""From a media file or a waveform to per-segment MAC descriptors: the feature pipeline in one place.

audio (decode, 44.1 kHz, peak-normalise) -> log-mel -> 2-s segments -> backbone -> MAC (N, 2528).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ausil_lite.audio import SAMPLE_RATE, load_audio
from ausil_lite.backbone import fold_batchnorm, load_backbone, mac_descriptors
from ausil_lite.errors import BackboneWeightsError
from ausil_lite.models.released import RELEASED_VERSION, load_released_backbone
from ausil_lite.spectrogram import log_mel_spectrogram, segment_spectrogram

BACKBONES = ("released", "random", "kumar2018", "selfsup")


@dataclass(frozen=True)
class ExtractionConfig:
    """How descriptors are made. Stored with every feature store, so stores never mix backbones or
    released model versions.

    The dataclass default stays the seeded random backbone, which needs no file: the study and the
    tests build on it. The commands default to the released model (``backbone="released"``).
    """

    # "released" (shipped in the package), "random" (seeded init), "kumar2018" (AudioSet file), "selfsup" (trained here)
    backbone: str = "random"
    weights: str | None = None  # state-dict file; required for kumar2018 and selfsup
    seed: int = 0  # initialisation seed of the random backbone
    device: str | None = None  # None: CUDA when available, else CPU
    batch_size: int = 64  # segments per forward pass; 64 x (174 x 128) fits any GPU and ~1 GB of CPU memory
    model_version: str | None = None  # backbone "released": its version (None there: the current RELEASED_VERSION)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {BACKBONES}")
        if self.backbone == "released":
            if self.weights is not None:
                raise ValueError("the released backbone ships its own weights; pass weights only with 'kumar2018' or 'selfsup'")
            if self.model_version is None:  # resolved now, so stores record the version they were made with
                object.__setattr__(self, "model_version", RELEASED_VERSION)
        elif self.model_version is not None:
            raise ValueError(f"model_version names a released model; backbone {self.backbone!r} has none")
        if self.backbone == "random" and self.weights is not None:
            raise ValueError("the random backbone takes no weights file; use backbone='kumar2018' or 'selfsup'")
        if self.backbone in ("kumar2018", "selfsup") and self.weights is None:
            hint = (
                "the original AudioSet file mx-h64-1024_0d3-1.17.pkl (see the book's 'Reproduce with the original data')"
                if self.backbone == "kumar2018"
                else "the backbone.pt written by self-supervised training (ausil_lite.selfsup)"
            )
            raise BackboneWeightsError(f"backbone {self.backbone!r} needs weights=: {hint}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")

def describe_extraction(config: Mapping[str, Any]) -> str:
    """What made a store's descriptors, in words, from its recorded config (an ``ExtractionConfig`` as a
    dict, perhaps from before released models): how error messages name both sides of a mismatch."""
    backbone = config.get("backbone")
    if backbone == "released":
        return f"the released model {config.get('model_version')}"
    if backbone == "random":
        return f"the random backbone (seed {config.get('seed')})"
    return f"the {backbone} backbone ({config.get('weights')})"


class FeatureExtractor:
    """Holds the backbone on its device and turns audio into (N, 2528) float32 descriptors."""

    def __init__(self, config: ExtractionConfig = ExtractionConfig()):
        self.config = config
        if config.backbone == "released":
            backbone = load_released_backbone(config.model_version, device=config.device)
        else:
            backbone = load_backbone(config.weights, seed=config.seed, device=config.device)
        self.model = fold_batchnorm(backbone)
        self.device = next(self.model.parameters()).device

    @torch.inference_mode()
    def from_waveform(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Descriptors of a mono waveform already at ``sample_rate`` (44.1 kHz) and peak-normalised."""
        wave = torch.as_tensor(np.asarray(samples, dtype=np.float32), device=self.device)
        segments = segment_spectrogram(log_mel_spectrogram(wave, sample_rate))
        return mac_descriptors(self.model, segments, self.config.batch_size).float().cpu().numpy()

    def from_file(self, path: str | Path) -> np.ndarray:
        """Descriptors of the audio track of ``path``; bad input raises an ``AudioError`` naming it."""
        return self.from_waveform(load_audio(path))
