"""Measurements the tests use to check that a transformation did what its record says."""

from __future__ import annotations

import numpy as np
import scipy.signal


def onset_envelope(samples: np.ndarray, rate: int, hop: int = 256) -> np.ndarray:
    """Half-wave rectified spectral flux per ``hop`` samples: peaks where notes start."""
    _, _, spec = scipy.signal.stft(samples, rate, nperseg=1024, noverlap=1024 - hop, boundary=None, padded=False)
    mag = np.log1p(100 * np.abs(spec))
    flux = np.maximum(np.diff(mag, axis=1), 0.0).sum(axis=0)
    return flux - flux.mean()


def estimate_time_scale(original: np.ndarray, changed: np.ndarray, rate: int) -> float:
    """Factor f such that ``changed`` plays ``original`` f times faster: the f whose time-scaled onset
    envelope of ``original`` correlates best with that of ``changed`` (grid 0.6-1.6, step 0.002)."""
    a, b = onset_envelope(original, rate), onset_envelope(changed, rate)
    best, best_score = 1.0, -np.inf
    for f in np.arange(0.6, 1.6, 0.002):
        n = int(min(b.size, a.size / f))
        scaled = np.interp(np.arange(n) * f, np.arange(a.size), a)
        score = np.dot(scaled, b[:n]) / (np.linalg.norm(scaled) * np.linalg.norm(b[:n]) + 1e-12)
        if score > best_score:
            best, best_score = float(f), score
    return best


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


def band_energy_db(samples: np.ndarray, rate: int, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / rate)
    return float(10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].sum() + 1e-20))


def best_lag(needle: np.ndarray, haystack: np.ndarray) -> tuple[int, float]:
    """Offset of ``needle`` in ``haystack`` by normalised cross-correlation, and the peak correlation."""
    corr = scipy.signal.fftconvolve(haystack, needle[::-1], mode="valid")
    energy = np.sqrt(scipy.signal.fftconvolve(haystack**2, np.ones(needle.size), mode="valid").clip(1e-12))
    score = corr / (energy * np.linalg.norm(needle))
    lag = int(np.argmax(score))
    return lag, float(score[lag])
