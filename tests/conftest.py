"""Shared test inputs: small signals and media files the tests make themselves."""

from __future__ import annotations

import numpy as np
import pytest

from ausil_lite.audio import SAMPLE_RATE
from ausil_lite.media import write_media


def tone(freq_hz: float, seconds: float, rate: int = SAMPLE_RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def noise(seconds: float, seed: int = 0, rate: int = SAMPLE_RATE) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


@pytest.fixture
def make_media(tmp_path):
    """Write a signal into a media file under tmp_path: ``make_media("a.mp4", samples)``."""

    def _make(name: str, samples: np.ndarray, rate: int = SAMPLE_RATE, **kwargs):
        return write_media(tmp_path / name, samples, rate, **kwargs)

    return _make
