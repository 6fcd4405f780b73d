"""Decode the audio track of any media file PyAV opens into mono float32 at the analysis rate.

Decoding streams packet by packet (the container is never read whole), downmixes with FFmpeg's
resampler at the source rate, then resamples with torchaudio, the same windowed-sinc filter on every
platform, so features do not depend on FFmpeg's build. :func:`stream_audio` gives the same samples
as :func:`load_audio` (before normalisation) in chunks, so an hours-long recording never sits in
memory whole.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator
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

CHUNK_SAMPLES = 1 << 20
"""Source samples per decoded chunk (about 22 s at 48 kHz, 4 MB): large enough that per-chunk overheads vanish."""

SILENCE_PEAK = 1e-5
"""Peak amplitude (about -100 dBFS) under which a track counts as silent: dither and codec noise sit above it."""


def decode_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of ``path`` to mono float32 at its own sample rate.

    Returns ``(samples, sample_rate)``. Damage is survived where possible: undecodable packets are
    skipped, and a stream that breaks off or is shorter than its container declares (a truncated
    download) keeps what was decoded; either emits :class:`CorruptStreamWarning` naming the file.
    A stream with nothing decodable raises :class:`CorruptStreamError`.
    """
    rate, chunks = decode_chunks(path)
    return np.concatenate(list(chunks)), rate


def decode_chunks(
    path: str | Path, chunk_samples: int = CHUNK_SAMPLES, warn: bool = True
) -> tuple[int, Iterator[np.ndarray]]:
    """``(sample_rate, chunks)``: :func:`decode_audio`'s samples as consecutive float32 chunks of about
    ``chunk_samples``, decoded as they are read.

    A file that cannot be opened, or has no audio stream, raises here; damage is reported when the
    chunks run out, as :func:`decode_audio` reports it (``warn=False`` leaves out the warning, for a
    second read of a file already reported on).
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
    if not container.streams.audio:
        container.close()
        raise NoAudioStreamError(path)
    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate or stream.rate
    return int(rate), _decoded_chunks(path, container, stream, int(rate), chunk_samples, warn)


def _decoded_chunks(
    path: Path, container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
    rate: int, chunk_samples: int, warn: bool,
) -> Iterator[np.ndarray]:
    """The generator behind :func:`decode_chunks`; it owns ``container`` and closes it."""
    pieces: list[np.ndarray] = []
    held = decoded = 0  # samples in pieces; samples yielded or held in all
    problems: list[str] = []
    with container:
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
                    for mono in downmix.resample(frame):
                        pieces.append(mono.to_ndarray().reshape(-1))
                        held += len(pieces[-1])
                if held >= chunk_samples:
                    decoded += held
                    yield np.concatenate(pieces).astype(np.float32, copy=False)
                    pieces, held = [], 0
            pieces.extend(m.to_ndarray().reshape(-1) for m in downmix.resample(None))
        except av.error.FFmpegError as exc:
            problems.append(f"demuxing stopped ({exc})")
        if bad_packets:
            problems.append(f"{bad_packets} undecodable packet(s) skipped")
    held = sum(len(p) for p in pieces)
    decoded += held
    if problems and not decoded:
        raise CorruptStreamError(path, "; ".join(problems))
    if not decoded:
        raise EmptyAudioError(path)
    seconds = decoded / rate
    if declared and seconds < declared - max(0.5, 0.05 * declared):
        problems.append(f"truncated: the container declares {declared:.2f} s")
    if problems and warn:
        of = f" of {declared:.2f} s ({min(seconds / declared, 1.0):.0%})" if declared else ""
        warnings.warn(
            f"{path}: damaged audio, decoded {seconds:.2f} s{of}: " + "; ".join(problems),
            CorruptStreamWarning,
            stacklevel=2,
        )
    if held:
        yield np.concatenate(pieces).astype(np.float32, copy=False)


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


def resample_chunks(chunks: Iterable[np.ndarray], orig_rate: int, new_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """:func:`resample` of the concatenated ``chunks``, to float rounding, given chunk by chunk.

    The filter computes ``step_out`` output samples from each ``step_in`` input samples (the rates over
    their gcd) plus a few neighbours either side. Each call resamples the unfinished input with enough
    context that the output blocks it keeps saw exactly the samples they see in the whole signal; the
    signal's true ends get the zero padding the whole computation gives them.
    """
    if orig_rate == new_rate:
        yield from chunks
        return
    gcd = math.gcd(orig_rate, new_rate)
    step_in, step_out = orig_rate // gcd, new_rate // gcd
    # torchaudio's default filter reaches ceil(6 / 0.99 * step_in / min(step_in, step_out)) inputs either
    # side of a block; twice that, in whole blocks, keeps the context right if that default ever grows
    reach = math.ceil(6 / 0.99 * step_in / min(step_in, step_out))
    context = step_in * math.ceil(2 * reach / step_in)
    buffer = np.zeros(0, np.float32)
    start = 0  # input index of buffer[0], a whole number of blocks
    done = 0  # blocks already given out
    total = 0  # input samples seen
    for chunk in chunks:
        buffer = np.concatenate([buffer, chunk])
        total += len(chunk)
        ready = (total - context - step_in) // step_in + 1  # blocks whose right neighbours are all in
        if ready <= done:
            continue
        out = resample(buffer, orig_rate, new_rate)
        yield out[(done - start // step_in) * step_out : (ready - start // step_in) * step_out]
        done = ready
        cut = max(0, done * step_in - context)
        buffer, start = buffer[cut - start :], cut
    # the whole computation's length, in its own float32 arithmetic (which rounds for hours-long inputs)
    target = int(torch.ceil(torch.as_tensor(step_out * total / step_in)))
    out = resample(buffer, orig_rate, new_rate)
    yield out[(done - start // step_in) * step_out : target - start // step_in * step_out]


def stream_audio(
    path: str | Path, sample_rate: int = SAMPLE_RATE, warn: bool = True, chunk_samples: int = CHUNK_SAMPLES
) -> Iterator[np.ndarray]:
    """``load_audio(path, sample_rate, normalise=False)`` in consecutive float32 chunks (same samples to
    float rounding), so no more than a chunk of the track is held. Errors and damage are raised and
    reported as :func:`decode_chunks` does (``warn=False``: a second read, damage already reported)."""
    rate, chunks = decode_chunks(path, chunk_samples, warn)
    return resample_chunks(chunks, rate, sample_rate)


def peak_normalise(samples: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """Scale to a peak of 1.0, as the original does; raises :class:`SilentAudioError` on silence."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return (samples / audible_peak(peak, path)).astype(np.float32, copy=False)


def audible_peak(peak: float, path: str | Path = "<array>") -> float:
    """``peak`` (a signal's largest absolute sample), or :class:`SilentAudioError` when it is silence."""
    if not np.isfinite(peak) or peak < SILENCE_PEAK:
        raise SilentAudioError(path, f"peak amplitude {peak:.2e}")
    return peak


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, normalise: bool = True) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate`` Hz, peak-normalised unless ``normalise=False``."""
    samples, rate = decode_audio(path)
    samples = resample(samples, rate, sample_rate)
    return peak_normalise(samples, path) if normalise else samples
