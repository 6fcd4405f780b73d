"""Chromaprint (the AcoustID fingerprint) through ``fpcalc -raw``, scored by an alignment search.

``fpcalc`` turns audio into one 32-bit word per 0.124 s (chroma features at 11,025 Hz, filtered and
quantised into bits). Two copies of the same audio agree on most bits once aligned, so the score
slides one word sequence over the other and keeps the lowest bit error rate over offsets with enough
overlap: ``1 - min BER``. Unrelated audio sits near 0.5; identical audio at 1.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

from ausil_lite.baselines.interface import AudioSource
from ausil_lite.descriptors.audio import SAMPLE_RATE, peak_normalise
from ausil_lite.errors import AudioError

FPCALC_PACKAGE = "libchromaprint-tools"
WORD_SECONDS = 4096 / 3 / 11_025  # one fingerprint word per third of a 4096-sample frame at 11,025 Hz


class ChromaprintError(AudioError):
    reason = "fpcalc could not fingerprint it"


class ChromaprintWarning(UserWarning):
    """fpcalc reported an error but still printed a fingerprint (e.g. a stream with a broken tail)."""


# fpcalc 1.5.1 built against FFmpeg 5 exits with status 3 and this line at the end of every
# stream (FFmpeg now reports EOF as an error); it is the normal end, not damage.
_BENIGN_STDERR = "ERROR: Error decoding audio frame (End of file)"


class FpcalcMissingError(RuntimeError):
    """The ``fpcalc`` program is not installed."""


@dataclass(frozen=True)
class ChromaprintConfig:
    """Settings of the Chromaprint baseline."""

    fpcalc: str = "fpcalc"  # program name or path
    algorithm: int = 2  # fpcalc's default algorithm (Chromaprint's TEST2)
    max_duration_s: int = 0  # seconds of audio fpcalc reads; 0 reads everything (fpcalc's own default is 120)
    min_overlap_s: float = 5.0  # shortest alignment scored; shorter clips use their whole length
    timeout_s: float = 120.0  # per fpcalc call

    def __post_init__(self) -> None:
        if self.max_duration_s < 0:
            raise ValueError(f"max_duration_s must be >= 0 seconds, got {self.max_duration_s}")
        if self.min_overlap_s <= 0:
            raise ValueError(f"min_overlap_s must be > 0 seconds, got {self.min_overlap_s}")


def fpcalc_path(program: str) -> str:
    """Absolute path of ``fpcalc``, or :class:`FpcalcMissingError` naming the Debian package."""
    found = shutil.which(program)
    if found is None:
        raise FpcalcMissingError(
            f"{program!r} not found: Chromaprint's fpcalc is needed; install the Debian package "
            f"{FPCALC_PACKAGE} (apt-get install {FPCALC_PACKAGE}, or tools/system_packages.sh)"
        )
    return found


def parse_raw_output(text: str, name: str) -> np.ndarray:
    """The ``FINGERPRINT=`` words of ``fpcalc -raw`` output as uint32; ChromaprintError if absent or empty."""
    for line in text.splitlines():
        if line.startswith("FINGERPRINT="):
            body = line[len("FINGERPRINT="):].strip()
            if body:
                return np.array([int(w) for w in body.split(",")], dtype=np.int64).astype(np.uint32)
    raise ChromaprintError(name, "no fingerprint in fpcalc output (audio too short?)")


def bit_error_rates(a: np.ndarray, b: np.ndarray, min_overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit error rate of ``a`` against ``b`` at every offset whose overlap is at least ``min_overlap`` words.

    Offset ``k`` aligns ``a[i]`` with ``b[i - k]``; returns ``(offsets, rates)``. The mismatch count at
    each offset is ``ones(a) + ones(b) - 2 * agreements-on-one`` over the overlap, with the last term a
    cross-correlation of the 32 bit planes done by FFT, so the search is O(n log n), not O(n^2).
    """
    bits_a = np.unpackbits(a.astype("<u4").view(np.uint8).reshape(-1, 4), axis=1).astype(np.float64)
    bits_b = np.unpackbits(b.astype("<u4").view(np.uint8).reshape(-1, 4), axis=1).astype(np.float64)
    n, m = len(a), len(b)
    both_one = fftconvolve(bits_a, bits_b[::-1], mode="full", axes=0).sum(axis=1)  # index j <-> offset j-(m-1)
    offsets = np.arange(-(m - 1), n)
    ones_a = np.concatenate([[0], np.cumsum(bits_a.sum(axis=1))])
    ones_b = np.concatenate([[0], np.cumsum(bits_b.sum(axis=1))])
    start_a, stop_a = np.maximum(offsets, 0), np.minimum(n, offsets + m)
    overlap = stop_a - start_a
    mismatches = (ones_a[stop_a] - ones_a[start_a]) + (ones_b[stop_a - offsets] - ones_b[start_a - offsets]) - 2 * both_one
    keep = overlap >= min_overlap
    return offsets[keep], np.clip(mismatches[keep], 0, None) / (32.0 * overlap[keep])


class ChromaprintBaseline:
    """Chromaprint fingerprints from ``fpcalc -raw``, compared by a sliding bit-error search."""

    name = "chromaprint"
    fingerprint_type = np.ndarray

    def __init__(self, config: ChromaprintConfig | None = None) -> None:
        self.config = config or ChromaprintConfig()

    def _run(self, arguments: list[str], name: str, stdin: bytes | None = None) -> np.ndarray:
        program = fpcalc_path(self.config.fpcalc)
        command = [program, "-raw", "-algorithm", str(self.config.algorithm), "-length", str(self.config.max_duration_s)]
        try:
            done = subprocess.run(command + arguments, input=stdin, capture_output=True, timeout=self.config.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise ChromaprintError(name, f"fpcalc ran longer than timeout_s={self.config.timeout_s} s") from exc
        stderr = done.stderr.decode(errors="replace").strip()
        stdout = done.stdout.decode(errors="replace")
        if done.returncode != 0 and "FINGERPRINT=" not in stdout:
            raise ChromaprintError(name, f"fpcalc exit status {done.returncode}: {stderr}")
        words = parse_raw_output(stdout, name)
        if done.returncode != 0 and any(line != _BENIGN_STDERR for line in stderr.splitlines()):
            warnings.warn(f"{name}: fpcalc exit status {done.returncode} ({stderr}); using its fingerprint",
                          ChromaprintWarning, stacklevel=3)
        return words

    def fingerprint(self, source: AudioSource, sample_rate: int | None = None) -> np.ndarray:
        """uint32 words of a media file (decoded by fpcalc itself) or of mono samples at ``sample_rate`` Hz."""
        if isinstance(source, (str, Path)):
            if sample_rate is not None:
                raise ValueError(f"{source}: sample_rate applies to arrays only; a file carries its own rate")
            path = Path(source)
            if not path.is_file():
                raise ChromaprintError(path, "file not found")
            return self._run([str(path)], str(path))
        samples = np.asarray(source, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"expected mono samples of shape (n,), got {samples.shape}")
        pcm = (np.clip(peak_normalise(samples), -1, 1) * 32767).astype("<i2").tobytes()
        rate = sample_rate or SAMPLE_RATE
        return self._run(["-format", "s16le", "-rate", str(rate), "-channels", "1", "-"], "<array>", stdin=pcm)

    def score(self, query: np.ndarray, candidate: np.ndarray) -> float:
        """``1 - lowest bit error rate`` over alignments overlapping at least ``min_overlap_s``."""
        if query.size == 0 or candidate.size == 0:
            return 0.0
        wanted = max(1, round(self.config.min_overlap_s / WORD_SECONDS))
        _, rates = bit_error_rates(query, candidate, min(wanted, query.size, candidate.size))
        return float(1.0 - rates.min())
