"""Stretches of a track that repeat a window of it: loops, which would make false negatives.

Game and hold music repeats whole sections sample for sample. Measured on DAVR-mini's default pool, 3-s
chunks of most warzone2100 tracks and of two asterisk hold-music tracks recur elsewhere in the same track
with a normalised waveform correlation of 0.92-1.0. A hard negative or distractor cut from such a stretch
holds the query's own audio: a duplicate labelled as a negative. The builder therefore asks
:class:`RepeatFinder` where each query window recurs in its track and keeps those stretches out of every
other window, as it keeps the query window itself.

The threshold, 0.5, sits between what unrelated music reaches (ci build: a query's 3-s chunks against
other tracks of its package, best lag, median 0.19, highest 0.33) and the varied repeats a first
threshold of 0.8 left in: same-track negatives at 0.70-0.79, loops with a part changed, which no listener
would call other audio.

The comparison runs on the waveform resampled to 4 kHz (the band every transformation keeps, and loops
repeat at every frequency), chunk by chunk over the query window (3-s chunks, 1.5-s step), against the
whole track by FFT correlation. It is deterministic, so manifests stay a pure function of the checksummed
sources, the config and the seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft

from ausil_lite.datasets.sources import Track

RATE = 4000
CHUNK_S = 3.0
STEP_S = 1.5
THRESHOLD = 0.5
"""Normalised correlation above which a chunk counts as repeated (loops: 0.92-1.0; unrelated music: <= 0.33)."""

Reader = Callable[[Track, int], np.ndarray]


def _read_whole(track: Track, rate: int) -> np.ndarray:
    return track.read(0.0, track.duration_s + 1.0, rate)


class RepeatFinder:
    """``finder(track, start_s, duration_s) -> [(start, end), ...]``: where else in ``track`` (seconds)
    the window's audio recurs. Each track is decoded once (at 4 kHz) and kept while the builder plans."""

    def __init__(self, threshold: float = THRESHOLD, reader: Reader = _read_whole):
        self.threshold = threshold
        self._reader = reader
        self._audio: dict[str, np.ndarray] = {}

    def __call__(self, track: Track, start_s: float, duration_s: float) -> list[tuple[float, float]]:
        if track.id not in self._audio:
            self._audio[track.id] = np.asarray(self._reader(track, RATE), dtype=np.float64)
        return find_repeats(self._audio[track.id], start_s, duration_s, self.threshold)


def find_repeats(
    audio: np.ndarray, start_s: float, duration_s: float, threshold: float = THRESHOLD, rate: int = RATE
) -> list[tuple[float, float]]:
    """Merged stretches (s) of ``audio`` outside the window that repeat one of the window's chunks."""
    chunk, step = int(CHUNK_S * rate), int(STEP_S * rate)
    first, last = int(start_s * rate), min(int((start_s + duration_s) * rate), len(audio))
    if last - first < chunk or len(audio) < 2 * chunk:
        return []
    size = scipy.fft.next_fast_len(len(audio) + chunk)
    spectrum = scipy.fft.rfft(audio, size)
    # energy of every chunk-long stretch of the track, for the normalisation
    cumulative = np.concatenate([[0.0], np.cumsum(audio**2)])
    energy = np.sqrt(np.maximum(cumulative[chunk:] - cumulative[:-chunk], 0.0))
    floor = 1e-3 * np.sqrt(chunk) * float(np.max(np.abs(audio)))  # quieter than -60 dB re peak: silence
    spans: list[tuple[float, float]] = []
    offsets = sorted(set(range(first, last - chunk + 1, step)) | {last - chunk})  # the last chunk ends with the window
    for offset in offsets:
        piece = audio[offset : offset + chunk]
        norm = float(np.linalg.norm(piece))
        if norm < floor:
            continue  # silence repeats everywhere and says nothing
        corr = scipy.fft.irfft(spectrum * np.conj(scipy.fft.rfft(piece, size)), size)[: len(energy)]
        corr /= np.maximum(energy, floor) * norm
        hits = np.flatnonzero(corr > threshold)
        hits = hits[(hits + chunk <= first) | (hits >= last)]  # the window itself is reserved anyway
        spans += [(h / rate, (h + chunk) / rate) for h in hits]
    return _merge(spans)


def free_spans(duration_s: float, reserved: list[tuple[float, float]], margin_s: float = 0.0) -> list[tuple[float, float]]:
    """The stretches of ``[0, duration_s]`` outside every reserved ``(start, end)`` widened by ``margin_s`` on each
    side: where a window may be cut that holds none of the reserved audio (a query window, its repeats)."""
    cuts = sorted((max(0.0, a - margin_s), b + margin_s) for a, b in reserved)
    spans, cursor = [], 0.0
    for a, b in cuts:
        if a > cursor:
            spans.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < duration_s:
        spans.append((cursor, duration_s))
    return spans


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(round(float(a), 3), round(float(b), 3)) for a, b in merged]
