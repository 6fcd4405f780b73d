"""Small synthetic recordings for the baseline tests: note sequences with harmonics over faint noise.

Different seeds give unrelated "music"; the same seed gives the same audio, so a test can make a
duplicate by re-encoding or noising it.
"""

from __future__ import annotations

import numpy as np
import pytest

from ausil_lite.descriptors.audio import SAMPLE_RATE as RATE


def _note_sequence(seed: int, seconds: float, rate: int = RATE) -> np.ndarray:
    """Mono float32 in [-1, 1]: notes of 0.1-0.4 s between 150 and 2,000 Hz, three harmonics each."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * rate), dtype=np.float64)
    start = 0
    while start < out.size:
        length = int(rng.uniform(0.1, 0.4) * rate)
        t = np.arange(min(length, out.size - start)) / rate
        f0 = rng.uniform(150, 2000)
        tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
        out[start : start + t.size] += tone * np.exp(-t * rng.uniform(2, 8))
        start += t.size
    out += 0.01 * rng.standard_normal(out.size)
    return (0.9 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture
def note_sequence():
    """``note_sequence(seed, seconds, rate=44100) -> float32 samples``."""
    return _note_sequence


@pytest.fixture
def duplicate_set(tmp_path):
    """Paths of an original (mp4), its noised, re-encoded copy (mp3 at 64 kbit/s) and an unrelated clip (mp4)."""
    from ausil_lite.datasets.media import write_media

    original = _note_sequence(1, 12.0)
    noise = np.random.default_rng(99).standard_normal(original.size).astype(np.float32)
    copy = 0.8 * original + 0.01 * noise  # about 30 dB SNR, 2 dB quieter: raw random-backbone MACs tolerate little more
    return {
        "original": write_media(tmp_path / "original.mp4", original, RATE),
        "copy": write_media(tmp_path / "copy.mp3", copy, RATE, bitrate=64_000),
        "unrelated": write_media(tmp_path / "unrelated.mp4", _note_sequence(2, 12.0), RATE),
    }


@pytest.fixture
def duplicate_scores(duplicate_set):
    """``duplicate_scores(baseline) -> (copy's score, unrelated clip's score)`` against the original."""
    return lambda baseline: _duplicate_scores(baseline, duplicate_set)


def _duplicate_scores(baseline, files) -> tuple[float, float]:
    query = baseline.fingerprint(files["original"])
    return (
        baseline.score(query, baseline.fingerprint(files["copy"])),
        baseline.score(query, baseline.fingerprint(files["unrelated"])),
    )
