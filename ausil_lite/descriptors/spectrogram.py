"""Log-mel spectrogram and its cut into the 2-second, 1-second-step segments the backbone reads.

Parameters follow the original system (librosa's defaults at 44.1 kHz): 1024-sample window (23 ms),
512-sample hop (11.6 ms), 128 Slaney mel bands, power converted to dB with ref 1.0 and an 80 dB floor
below the peak. Computed with torchaudio on whatever device the waveform is on.

The streamed forms (:func:`mel_power_chunks`, :func:`segment_batches`) give the same frames and
segments from a waveform that arrives in chunks, so a long recording's spectrogram is never held whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
import torchaudio.transforms as T

from ausil_lite.descriptors.audio import SAMPLE_RATE

N_FFT = 1024
HOP = 512
N_MELS = 128
TOP_DB = 80.0
AMIN = 1e-10

BLOCK_FRAMES = 87
"""Frames per block: 87 hops of 11.6 ms is about 1.01 s, the original's segment step."""

SEGMENT_FRAMES = 2 * BLOCK_FRAMES
"""A segment is two consecutive blocks (about 2 s), so consecutive segments overlap by one block."""

_MEL_CACHE: dict[tuple[int, str], T.MelSpectrogram] = {}


def _mel_transform(sample_rate: int, device: torch.device) -> T.MelSpectrogram:
    key = (sample_rate, str(device))
    if key not in _MEL_CACHE:
        _MEL_CACHE[key] = T.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=N_FFT,
            hop_length=HOP,
            n_mels=N_MELS,
            power=2.0,
            center=False,  # centred by the callers, with zeros as librosa >= 0.10 (not by reflection)
            norm="slaney",
            mel_scale="slaney",
        ).to(device)
    return _MEL_CACHE[key]


def power_to_db(power: torch.Tensor, top_db: float = TOP_DB, max_power: float | None = None) -> torch.Tensor:
    """``10 log10(power)`` with ref 1.0, floored at ``top_db`` below the maximum (librosa's convention).

    The maximum is ``power``'s own unless ``max_power`` gives the whole signal's, for a chunk of it.
    """
    db = 10.0 * torch.log10(torch.clamp(power, min=AMIN))
    peak_db = db.max() if max_power is None else 10.0 * math.log10(max(max_power, AMIN))
    return torch.clamp(db, min=peak_db - top_db)


def log_mel_spectrogram(waveform: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Log-mel spectrogram of a mono waveform (samples,), time-major: shape (frames, 128), in dB."""
    if waveform.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (samples,), got {tuple(waveform.shape)}")
    return power_to_db(torch.cat(list(mel_power_chunks([waveform], sample_rate))))


def mel_power_chunks(chunks: Iterable[torch.Tensor], sample_rate: int = SAMPLE_RATE) -> Iterator[torch.Tensor]:
    """Mel power frames (frames, 128) of a mono waveform given in consecutive chunks, chunk by chunk.

    Frame t covers samples [t HOP - N_FFT/2, t HOP + N_FFT/2), zeros beyond either end (the centred
    STFT): each chunk yields the frames whose window is complete, and the end of the signal the rest,
    1 + samples // HOP frames in all.
    """
    pending: torch.Tensor | None = None
    for chunk in chunks:
        chunk = chunk.float()
        if pending is None:
            pending = chunk.new_zeros(N_FFT // 2)
        pending = torch.cat([pending, chunk])
        if len(pending) >= N_FFT:
            frames = 1 + (len(pending) - N_FFT) // HOP
            yield _mel_transform(sample_rate, pending.device)(pending[: (frames - 1) * HOP + N_FFT]).T
            pending = pending[frames * HOP :]
    if pending is None:
        raise ValueError("no samples: a spectrogram needs at least one")
    pending = torch.cat([pending, pending.new_zeros(N_FFT // 2)])
    yield _mel_transform(sample_rate, pending.device)(pending).T


def segment_count(frames: int) -> int:
    """Number of segments for a spectrogram of ``frames`` frames (at least one, even for a short clip)."""
    return max(2, math.ceil(frames / BLOCK_FRAMES)) - 1


def segment_spectrogram(mel: torch.Tensor) -> torch.Tensor:
    """Cut a (frames, 128) spectrogram into (N, 1, 174, 128) segments with a one-block step.

    The spectrogram is zero-padded to whole blocks (at least two, so a clip shorter than a block
    still gives one segment); segment i is block i followed by block i+1.
    """
    frames, bands = mel.shape
    n_segments = segment_count(frames)
    padded = mel.new_zeros(((n_segments + 1) * BLOCK_FRAMES, bands))
    padded[:frames] = mel
    blocks = padded.view(n_segments + 1, BLOCK_FRAMES, bands)
    segments = torch.cat([blocks[:-1], blocks[1:]], dim=1)
    return segments.unsqueeze(1)


def segment_batches(frames: Iterable[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """:func:`segment_spectrogram` of the concatenated (frames, 128) chunks, ``batch_size`` segments at
    a time: batch k holds segments [k batch_size, (k + 1) batch_size), whatever the chunks' sizes."""
    pending: torch.Tensor | None = None
    total = emitted = 0
    for chunk in frames:
        pending = chunk if pending is None else torch.cat([pending, chunk])
        total += len(chunk)
        while len(pending) >= (batch_size + 1) * BLOCK_FRAMES:  # a full batch and the block after it
            yield segment_spectrogram(pending[: (batch_size + 1) * BLOCK_FRAMES])
            pending = pending[batch_size * BLOCK_FRAMES :]
            emitted += batch_size
    if pending is None:
        raise ValueError("no frames to segment")
    left = segment_count(total) - emitted
    if left > 0:  # the last block may already have closed the last full batch
        yield segment_spectrogram(pending)[:left]
