"""The small interface every baseline answers, so a notebook can run them side by side.

A baseline indexes each video once (:meth:`Baseline.fingerprint`, the result cacheable to disk) and
then scores pairs of fingerprints (:meth:`Baseline.score`, higher means more similar). Its settings
live in a frozen dataclass, ``baseline.config``, recorded next to every cached fingerprint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from ausil_lite.descriptors.audio import SAMPLE_RATE, load_audio, peak_normalise, resample

AudioSource = str | Path | np.ndarray
"""A media file path, or mono float samples (at 44,100 Hz unless a rate is given)."""


class Baseline(Protocol):
    name: ClassVar[str]
    fingerprint_type: ClassVar[type]
    config: Any  # a frozen dataclass

    def fingerprint(self, source: AudioSource, sample_rate: int | None = None) -> Any:
        """Index one recording: a file path, or mono samples at ``sample_rate`` Hz (default 44,100)."""
        ...

    def score(self, query: Any, candidate: Any) -> float:
        """Similarity of two fingerprints; higher means more similar."""
        ...


def read_source(source: AudioSource, rate_out: int, rate_in: int | None = None) -> np.ndarray:
    """Mono float32 samples at ``rate_out`` Hz, peak-normalised, from a file or an array.

    ``rate_in`` (Hz) is the rate of an array source (default 44,100) and must be None for a path.
    Silent input raises :class:`ausil_lite.errors.SilentAudioError` naming the file.
    """
    if isinstance(source, (str, Path)):
        if rate_in is not None:
            raise ValueError(f"{source}: sample_rate applies to arrays only; a file carries its own rate")
        return load_audio(source, sample_rate=rate_out)
    samples = np.asarray(source, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples of shape (n,), got {samples.shape}")
    samples = resample(samples, rate_in or SAMPLE_RATE, rate_out)
    return peak_normalise(samples)
