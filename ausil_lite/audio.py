"""Decode the audio track of any media file PyAV opens into mono float32 at the analysis rate.

Decoding streams packet by packet (the container is never read whole), downmixes with FFmpeg's
resampler at the source rate, then resamples once with torchaudio, the same windowed-sinc filter on
every platform, so features do not depend on FFmpeg's build.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import numpy as np
import torch
import torchaudio.functional as AF

from ausil_lite.errors import (
    CorruptStreamError,
    CorruptStreamWarning,
    EmptyAudioError,
    FolderGivenError,
    MissingFileError,
    NoAudioStreamError,
    NotMediaError,
    SilentAudioError,
)

SAMPLE_RATE = 44_100
"""Analysis rate of the original system, in Hz."""

SILENCE_PEAK = 1e-5
"""Peak amplitude (about -100 dBFS) under which a track counts as silent: dither and codec noise sit above it."""


def decode_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of ``path`` to mono float32 at its own sample rate.

    Returns ``(samples, sample_rate)``. Damage is survived where possible: undecodable packets are
    skipped, and a stream that breaks off or is shorter than its container declares (a truncated
    download) keeps what was decoded; either emits :class:`CorruptStreamWarning` naming the file.
    A stream with nothing decodable raises :class:`CorruptStreamError`.
    """
    path = Path(path)
    if path.is_dir():
        raise FolderGivenError(path)
    if not path.is_file():
        raise MissingFileError(path)
    try:
        container = av.open(str(path), mode="r", metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise NotMediaError(path, str(exc)) from exc
    chunks: list[np.ndarray] = []
    problems: list[str] = []
    with container:
        if not container.streams.audio:
            raise NoAudioStreamError(path)
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        declared = _declared_seconds(container, stream)
        downmix = av.AudioResampler(format="flt", layout="mono", rate=rate)
        bad_packets = 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    bad_packets += 1  # one damaged packet loses ~20 ms; skip it and go on
                    continue
                for frame in frames:
                    chunks.extend(m.to_ndarray().reshape(-1) for m in downmix.resample(frame))
            chunks.extend(m.to_ndarray().reshape(-1) for m in downmix.resample(None))
        except av.error.FFmpegError as exc:
            problems.append(f"demuxing stopped ({exc})")
        if bad_packets:
            problems.append(f"{bad_packets} undecodable packet(s) skipped")
    decoded = sum(len(c) for c in chunks) / rate
    if problems and not chunks:
        raise CorruptStreamError(path, "; ".join(problems))
    if declared and decoded < declared - max(0.5, 0.05 * declared):
        problems.append(f"truncated: the container declares {declared:.2f} s")
    if problems and chunks:
        of = f" of {declared:.2f} s ({min(decoded / declared, 1.0):.0%})" if declared else ""
        warnings.warn(
            f"{path}: damaged audio, decoded {decoded:.2f} s{of}: " + "; ".join(problems),
            CorruptStreamWarning,
            stacklevel=2,
        )
    if not chunks:
        raise EmptyAudioError(path)
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    if samples.size == 0:
        raise EmptyAudioError(path)
    return samples, int(rate)


def _declared_seconds(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    """Duration the container header claims for the stream, in seconds (None when it does not say)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def resample(samples: np.ndarray, orig_rate: int, new_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono signal with torchaudio's windowed-sinc filter; a no-op when the rates match."""
    if orig_rate == new_rate:
        return samples
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), orig_rate, new_rate)
    return out.numpy()


def peak_normalise(samples: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """Scale to a peak of 1.0, as the original does; raises :class:`SilentAudioError` on silence."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if not np.isfinite(peak) or peak < SILENCE_PEAK:
        raise SilentAudioError(path, f"peak amplitude {peak:.2e}")
    return (samples / peak).astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, normalise: bool = True) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate`` Hz, peak-normalised unless ``normalise=False``."""
    samples, rate = decode_audio(path)
    samples = resample(samples, rate, sample_rate)
    return peak_normalise(samples, path) if normalise else samples
