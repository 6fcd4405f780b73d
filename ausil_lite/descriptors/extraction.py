"""From a media file or a waveform to per-segment MAC descriptors: the feature pipeline in one place.

audio (decode, 44.1 kHz, peak-normalise) -> log-mel -> 2-s segments -> backbone -> MAC (N, 2528).

Every stage streams: audio arrives in chunks of ~20 s and the backbone reads a batch of segments at a
time, so memory does not grow with a recording's length. Two numbers depend on the whole signal, the
peak that normalisation divides by and the loudest mel cell the 80 dB floor hangs from, so a long file
is read twice: :func:`scan_audio` finds them, then the second read makes the descriptors. A short file
(most videos) keeps the first read's mel power frames, so it is decoded, resampled and transformed once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ausil_lite.descriptors.audio import CHUNK_SAMPLES, SAMPLE_RATE, audible_peak, stream_audio
from ausil_lite.descriptors.backbone import fold_batchnorm, load_backbone, mac_descriptors
from ausil_lite.descriptors.precision import PRECISIONS, at_precision
from ausil_lite.descriptors.spectrogram import mel_power_chunks, power_to_db, segment_batches
from ausil_lite.errors import BackboneWeightsError, CorruptStreamError
from ausil_lite.models.released import RELEASED_VERSION, load_released_backbone

BACKBONES = ("released", "random", "kumar2018", "selfsup")


@dataclass(frozen=True)
class ExtractionConfig:
    """How descriptors are made. Stored with every feature store, so stores never mix backbones,
    released model versions or precisions.

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
    precision: str = "float32"  # "bfloat16": the fast network (ausil_lite.descriptors.precision), descriptors within its tolerance

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {BACKBONES}")
        if self.backbone == "released":
            if self.weights is not None:
                raise ValueError("the released backbone ships its own weights; pass weights only with 'kumar2018' or 'selfsup'")
            if self.model_version is None:  # resolved now, so stores record the version they were made with
                object.__setattr__(self, "model_version", RELEASED_VERSION)
            # no seed to vary: 0 is what the shipped network records, so a store made with any seed matches it
            object.__setattr__(self, "seed", 0)
        elif self.model_version is not None:
            raise ValueError(f"model_version names a released model; backbone {self.backbone!r} has none")
        if self.backbone == "random" and self.weights is not None:
            raise ValueError("the random backbone takes no weights file; use backbone='kumar2018' or 'selfsup'")
        if self.backbone in ("kumar2018", "selfsup") and self.weights is None:
            hint = (
                "the original AudioSet file mx-h64-1024_0d3-1.17.pkl (see the book's 'Reproduce with the original data')"
                if self.backbone == "kumar2018"
                else "the backbone.pt written by self-supervised training (ausil_lite.learning.selfsup)"
            )
            raise BackboneWeightsError(f"backbone {self.backbone!r} needs weights=: {hint}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")


DESCRIPTOR_KEYS = ("backbone", "weights", "seed", "model_version", "precision")
"""The config fields that change descriptors (the device and the batch size do not)."""


def recorded_extraction(config: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptor fields of a recorded config; records from before precisions existed were float32."""
    return {k: v for k, v in ({"precision": "float32"} | dict(config)).items() if k in DESCRIPTOR_KEYS}


def same_descriptors(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two recorded configs make the same descriptors (so their stores and indexes may be mixed)."""
    a, b = recorded_extraction(a), recorded_extraction(b)
    return all(a.get(k) == b.get(k) for k in DESCRIPTOR_KEYS)


def describe_extraction(config: Mapping[str, Any]) -> str:
    """What made a store's descriptors, in words, from its recorded config (an ``ExtractionConfig`` as a
    dict, perhaps from before released models): how error messages name both sides of a mismatch."""
    backbone = config.get("backbone")
    if backbone == "released":
        network = f"the released model {config.get('model_version')}"
    elif backbone == "random":
        network = f"the random backbone (seed {config.get('seed')})"
    else:
        network = f"the {backbone} backbone ({config.get('weights')})"
    precision = recorded_extraction(config)["precision"]
    return network if precision == "float32" else f"{network} at {precision} (the fast network)"


KEEP_SECONDS = 300.0
"""Audio up to this long keeps its first read's mel power frames (13 MB at most), so only longer files are
decoded twice (reading twice made extraction of ordinary clips about a third slower), and the mel the scan
computed anyway is not computed again: in a worker that reads ahead of a GPU, that moves the whole front
end off the process that runs the network."""


@dataclass(frozen=True)
class AudioScan:
    """What a first read of a file's audio learns for the second, streamed one."""

    samples: int  # at the analysis rate (44.1 kHz)
    peak: float  # largest absolute sample, which peak normalisation divides by
    max_power: float  # largest mel power of the normalised signal: the dB floor sits 80 dB below it
    # the raw signal's mel power frames (frames, 128), kept for audio of at most KEEP_SECONDS: mel power is
    # quadratic in the samples, so the normalised signal's frames are these over peak squared
    mel_power: np.ndarray | None = None

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE


def scan_audio(path: str | Path) -> AudioScan:
    """Read the audio of ``path`` once, a chunk at a time, for its length, peak and loudest mel cell.

    Bad input raises the ``AudioError`` naming the file (:class:`SilentAudioError` on silence); damage
    that was survived is reported here, as a :class:`CorruptStreamWarning`, and not again.
    """
    seen = {"samples": 0, "peak": 0.0}
    limit = KEEP_SECONDS * SAMPLE_RATE

    def waveform() -> Iterator[torch.Tensor]:
        for chunk in stream_audio(path):
            seen["samples"] += len(chunk)
            seen["peak"] = max(seen["peak"], float(np.max(np.abs(chunk))) if len(chunk) else 0.0)
            yield torch.from_numpy(chunk)

    raw_power, kept = 0.0, []  # kept is emptied for good once the audio passes KEEP_SECONDS
    for frames in mel_power_chunks(waveform()):
        raw_power = max(raw_power, float(frames.max()))
        if seen["samples"] <= limit:
            kept.append(frames.numpy())
        else:
            kept.clear()
    peak = audible_peak(seen["peak"], path)
    mel_power = np.concatenate(kept) if kept and seen["samples"] <= limit else None
    return AudioScan(seen["samples"], peak, raw_power / peak / peak, mel_power)


POWER_ROWS = 8192
"""Mel power frames converted to dB and cut into segments at a time (95 s of audio, 4 MB)."""


def _array_chunks(samples: np.ndarray, size: int | None = None) -> Iterator[np.ndarray]:
    """``samples`` in consecutive slices of ``size`` rows (default :data:`CHUNK_SAMPLES`; one empty slice for an
    empty array), as a decoded file arrives, so arrays and files take the same streamed path."""
    size = size or CHUNK_SAMPLES
    return (samples[i : i + size] for i in range(0, max(len(samples), 1), size))


def _normalised(path: str | Path, scan: AudioScan) -> Iterator[np.ndarray]:
    """``path``'s chunks peak-normalised, as :func:`~ausil_lite.descriptors.audio.load_audio` scales the whole signal,
    from a second read; a file that no longer gives what ``scan`` read is an error, not other descriptors."""
    samples = 0
    for chunk in stream_audio(path, warn=False):
        samples += len(chunk)
        yield (chunk / scan.peak).astype(np.float32, copy=False)
    if samples != scan.samples:
        raise CorruptStreamError(path, f"the file changed while it was read ({scan.samples} samples, then {samples})")


class FeatureExtractor:
    """Holds the backbone on its device and turns audio into (N, 2528) float32 descriptors."""

    def __init__(self, config: ExtractionConfig = ExtractionConfig()):
        self.config = config
        if config.backbone == "released":
            backbone = load_released_backbone(config.model_version, device=config.device)
        else:
            backbone = load_backbone(config.weights, seed=config.seed, device=config.device)
        self.model, self.mac = at_precision(fold_batchnorm(backbone), config.precision)
        self.device = next(self.model.parameters()).device

    def from_waveform(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Descriptors of a mono waveform already at ``sample_rate`` (44.1 kHz) and peak-normalised."""
        samples = np.asarray(samples, dtype=np.float32)
        tensors = (torch.as_tensor(c, device=self.device) for c in _array_chunks(samples))
        max_power = max(float(frames.max()) for frames in mel_power_chunks(tensors, sample_rate))
        return self._descriptors(_array_chunks(samples), max_power, sample_rate)

    def from_file(self, path: str | Path, scan: AudioScan | None = None) -> np.ndarray:
        """Descriptors of the audio track of ``path``; bad input raises an ``AudioError`` naming it.

        ``scan`` is the file's :func:`scan_audio`, when a worker has made it already.
        """
        scan = scan_audio(path) if scan is None else scan
        if scan.mel_power is not None:  # the scan's frames, scaled as normalising the samples scales them
            scale = 1.0 / (scan.peak * scan.peak)
            powers = (torch.as_tensor(p, device=self.device) * scale for p in _array_chunks(scan.mel_power, POWER_ROWS))
            return self._from_powers(powers, scan.max_power)
        return self._descriptors(_normalised(path, scan), scan.max_power, SAMPLE_RATE)

    def _descriptors(self, chunks: Iterable[np.ndarray], max_power: float, sample_rate: int) -> np.ndarray:
        """Descriptors of a normalised waveform given in chunks, whose mel power peaks at ``max_power``."""
        waveform = (torch.as_tensor(c, device=self.device) for c in chunks)
        return self._from_powers(mel_power_chunks(waveform, sample_rate), max_power)

    @torch.inference_mode()
    def _from_powers(self, powers: Iterable[torch.Tensor], max_power: float) -> np.ndarray:
        """Descriptors of a normalised signal's mel power frames, given in chunks, which peak at ``max_power``."""
        frames = (power_to_db(p, max_power=max_power) for p in powers)
        parts = [
            mac_descriptors(self.model, batch, self.config.batch_size, self.mac).float().cpu()
            for batch in segment_batches(frames, self.config.batch_size)
        ]
        return torch.cat(parts).numpy()
