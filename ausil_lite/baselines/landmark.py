"""Spectral-peak landmark fingerprints (after Wang's Shazam paper, 2003), written from the idea.

Peaks of the STFT magnitude that dominate their time-frequency neighbourhood survive noise, gain and
lossy coding; pairs of peaks ``(f1, f2, dt)`` become 24-bit hashes stamped with the anchor's frame.
Two recordings of the same audio share many hashes at one constant time offset, so the score is the
height of the tallest bin of the offset histogram, divided by the smaller hash count so that a crop
matched against its source still scores near its true overlap. Speed changes move every peak in
frequency and time, so these hashes break; that failure is what AuSiL's speed experiment shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter

from ausil_lite.baselines.interface import AudioSource, read_source

# Hash layout, high to low bits: anchor frequency bin (9), target frequency bin (9), frame gap (6).
_F_BITS = 9
_DT_BITS = 6


@dataclass(frozen=True)
class LandmarkConfig:
    """Settings of the landmark fingerprint; the defaults suit speech and music at telephone band."""

    sample_rate: int = 8_000  # Hz; the band below 4 kHz holds the strongest, most robust peaks
    n_fft: int = 512  # 64 ms window at 8 kHz, 257 bins of 15.6 Hz
    hop: int = 128  # 16 ms between frames
    peak_time_radius: int = 6  # frames (96 ms) a peak must dominate on each side
    peak_freq_radius: int = 8  # bins (125 Hz) a peak must dominate on each side
    peak_floor_db: float = 10.0  # dB a peak must rise above the clip's median magnitude
    peaks_per_second: int = 30  # strongest peaks kept per second, so loud passages do not crowd out quiet ones
    fan_out: int = 8  # targets paired with each anchor
    max_dt: int = 63  # frames (about 1 s) ahead of the anchor a target may lie; fits 6 bits
    max_df: int = 64  # bins (1 kHz) above or below the anchor a target may lie
    offset_tolerance: int = 1  # frames of jitter allowed between matching hashes' offsets

    def __post_init__(self) -> None:
        if self.n_fft // 2 + 1 > 1 << _F_BITS:
            raise ValueError(f"n_fft {self.n_fft} gives more than {1 << _F_BITS} bins; the hash has 9 bits per bin")
        if not 1 <= self.max_dt < 1 << _DT_BITS:
            raise ValueError(f"max_dt must be in 1..{(1 << _DT_BITS) - 1} frames, got {self.max_dt}")
        for name in ("sample_rate", "n_fft", "hop", "peak_time_radius", "peak_freq_radius",
                     "peaks_per_second", "fan_out", "max_df"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.offset_tolerance < 0:
            raise ValueError(f"offset_tolerance must be >= 0 frames, got {self.offset_tolerance}")


@dataclass(frozen=True)
class LandmarkFingerprint:
    """Hashes sorted ascending (the inverted index of one recording) and their anchor frames."""

    hashes: np.ndarray  # uint32 (H,)
    frames: np.ndarray  # int32 (H,), anchor frame of each hash
    duration_s: float


def magnitude_db(samples: np.ndarray, config: LandmarkConfig) -> np.ndarray:
    """STFT magnitude in dB, shape (frames, n_fft // 2 + 1), Hann window, no centring."""
    if samples.size < config.n_fft:
        samples = np.pad(samples, (0, config.n_fft - samples.size))
    frames = np.lib.stride_tricks.sliding_window_view(samples, config.n_fft)[:: config.hop]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(config.n_fft).astype(np.float32), axis=1))
    return 20.0 * np.log10(np.maximum(spectrum, 1e-6))


def find_peaks(db: np.ndarray, config: LandmarkConfig) -> tuple[np.ndarray, np.ndarray]:
    """Frames and bins of local maxima, at most ``peaks_per_second`` per second, sorted by frame then bin."""
    size = (2 * config.peak_time_radius + 1, 2 * config.peak_freq_radius + 1)
    is_peak = (db == maximum_filter(db, size=size, mode="constant", cval=-np.inf))
    is_peak &= db > np.median(db) + config.peak_floor_db
    frames, bins = np.nonzero(is_peak)
    strength = db[frames, bins]
    frames_per_second = config.sample_rate / config.hop
    chunk = (frames / frames_per_second).astype(np.int64)
    order = np.lexsort((-strength, chunk))  # by chunk, strongest first
    chunk_sorted = chunk[order]
    first = np.searchsorted(chunk_sorted, chunk_sorted, side="left")
    keep = order[np.arange(order.size) - first < config.peaks_per_second]
    keep = keep[np.lexsort((bins[keep], frames[keep]))]
    return frames[keep], bins[keep]


def pair_hashes(frames: np.ndarray, bins: np.ndarray, config: LandmarkConfig) -> tuple[np.ndarray, np.ndarray]:
    """Hash each anchor peak with up to ``fan_out`` later peaks in its target zone.

    Peaks are sorted by frame, so the candidates of peak i are peaks i+1 .. i+W; W is bounded by the
    number of peaks that fit in ``max_dt`` frames.
    """
    n = frames.size
    if n < 2:
        return np.empty(0, np.uint32), np.empty(0, np.int32)
    seconds_ahead = config.max_dt * config.hop / config.sample_rate
    # the zone spans parts of at most ceil(seconds_ahead) + 1 one-second chunks, each capped in peaks
    window = min(n - 1, config.peaks_per_second * (int(np.ceil(seconds_ahead)) + 1))
    ahead = np.arange(n)[:, None] + np.arange(1, window + 1)[None, :]
    in_range = ahead < n
    ahead = np.minimum(ahead, n - 1)
    dt = frames[ahead] - frames[:, None]
    df = bins[ahead] - bins[:, None]
    valid = in_range & (dt >= 1) & (dt <= config.max_dt) & (np.abs(df) <= config.max_df)
    valid &= np.cumsum(valid, axis=1) <= config.fan_out
    anchor, slot = np.nonzero(valid)
    target = ahead[anchor, slot]
    hashes = (
        (bins[anchor].astype(np.uint32) << (_F_BITS + _DT_BITS))
        | (bins[target].astype(np.uint32) << _DT_BITS)
        | dt[anchor, slot].astype(np.uint32)
    )
    return hashes, frames[anchor].astype(np.int32)


class LandmarkBaseline:
    """Landmark fingerprint matcher: index with :meth:`fingerprint`, compare with :meth:`score`."""

    name = "landmark"
    fingerprint_type = LandmarkFingerprint

    def __init__(self, config: LandmarkConfig | None = None) -> None:
        self.config = config or LandmarkConfig()

    def fingerprint(self, source: AudioSource, sample_rate: int | None = None) -> LandmarkFingerprint:
        """Fingerprint a media file, or mono samples at ``sample_rate`` Hz (default 44,100)."""
        samples = read_source(source, self.config.sample_rate, sample_rate)
        frames, bins = find_peaks(magnitude_db(samples, self.config), self.config)
        hashes, anchor_frames = pair_hashes(frames, bins, self.config)
        order = np.argsort(hashes, kind="stable")
        return LandmarkFingerprint(hashes[order], anchor_frames[order], samples.size / self.config.sample_rate)

    def match_offsets(self, query: LandmarkFingerprint, candidate: LandmarkFingerprint) -> np.ndarray:
        """Time offsets (candidate frame minus query frame) of every pair of equal hashes."""
        lo = np.searchsorted(candidate.hashes, query.hashes, side="left")
        hi = np.searchsorted(candidate.hashes, query.hashes, side="right")
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, np.int64)
        query_index = np.repeat(np.arange(query.hashes.size), counts)
        # posting-list position of each match: lo of its query hash plus its rank within the list
        starts = np.cumsum(counts) - counts
        candidate_index = np.repeat(lo, counts) + np.arange(total) - np.repeat(starts, counts)
        return candidate.frames[candidate_index].astype(np.int64) - query.frames[query_index]

    def score(self, query: LandmarkFingerprint, candidate: LandmarkFingerprint) -> float:
        """Matching hashes at the best offset (within the tolerance) over the smaller hash count, in [0, 1]."""
        smaller = min(query.hashes.size, candidate.hashes.size)
        offsets = self.match_offsets(query, candidate)
        if smaller == 0 or offsets.size == 0:
            return 0.0
        histogram = np.bincount(offsets - offsets.min())
        width = 2 * self.config.offset_tolerance + 1
        best = np.convolve(histogram, np.ones(width, dtype=np.int64), mode="same").max()
        return float(min(best, smaller) / smaller)
