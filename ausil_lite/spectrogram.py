"""Log-mel spectrogram and its cut into the 2-second, 1-second-step segments the backbone reads.

Parameters follow the original system (librosa's defaults at 44.1 kHz): 1024-sample window (23 ms),
512-sample hop (11.6 ms), 128 Slaney mel bands, power converted to dB with ref 1.0 and an 80 dB floor
below the peak. Computed with torchaudio on whatever device the waveform is on.
"""

from __future__ import annotations

import math

import torch
import torchaudio.transforms as T

from ausil_lite.audio import SAMPLE_RATE

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
            center=True,
            pad_mode="constant",  # librosa >= 0.10 pads with zeros, not by reflection
            norm="slaney",
            mel_scale="slaney",
        ).to(device)
    return _MEL_CACHE[key]


def power_to_db(power: torch.Tensor, top_db: float = TOP_DB) -> torch.Tensor:
    """``10 log10(power)`` with ref 1.0, floored at ``top_db`` below the maximum (librosa's convention)."""
    db = 10.0 * torch.log10(torch.clamp(power, min=AMIN))
    return torch.maximum(db, db.max() - top_db)


def log_mel_spectrogram(waveform: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Log-mel spectrogram of a mono waveform (samples,), time-major: shape (frames, 128), in dB."""
    if waveform.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (samples,), got {tuple(waveform.shape)}")
    power = _mel_transform(sample_rate, waveform.device)(waveform.float())
    return power_to_db(power).T.contiguous()


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
