"""Transformations that re-uploaded videos really undergo, each split into ``draw`` and ``apply``.

``draw(rng) -> params`` picks random parameters (plain JSON values); ``apply(samples, rate, **params)``
is deterministic, so every generated item can record exactly what was done to it and be remade from
that record. Signals are mono float32 at ``rate`` Hz; durations are in seconds, levels in dB.

Families (:data:`FAMILIES`):

``reencode``  a lossy generation through AAC, MP3 or Opus at 32-128 kbit/s
``gain``      a level change in dB; boosts clip at full scale, as a careless editor's do
``noise``     additive white or pink noise at an SNR of 20, 10 or 5 dB (measured on energies)
``telephone`` band-limiting to the 300-3400 Hz telephone band through an 8 kHz channel
``reverb``    convolution with an exponentially decaying noise impulse response of a given RT60
``crop``      keeps a contiguous 30-100 % of the clip
``embed``     puts the clip inside a longer one, with unrelated audio before and after (needs ``other``)
``mix``       mixes the clip over other speech or music at a foreground/background ratio (needs ``other``)
``speed``     plays faster or slower *with* pitch change, by resampling (the paper's speed transformation)
``tempo``     changes tempo *without* pitch change, by a phase vocoder
``combo``     two or three of the above in sequence

For training (anchor, positive) pairs use :func:`random_transform`::

    positive, params = random_transform(anchor, 44100, rng, families=TRAINING_FAMILIES, other=background)

``other`` is unrelated audio at ``rate`` for ``embed`` and ``mix``; without it those families are left out.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft
import scipy.signal
import torch
import torchaudio.functional as AF

FAMILIES = ("reencode", "gain", "noise", "telephone", "reverb", "crop", "embed", "mix", "speed", "tempo", "combo")
NEEDS_OTHER = frozenset({"embed", "mix"})
TRAINING_FAMILIES = FAMILIES
SPEED_FACTORS = (0.7, 0.8, 0.9, 1.1, 1.2, 1.3, 1.4)
"""Speed and tempo factors drawn: a grid, so results can be broken down per factor (0.7-1.4, as the paper)."""
SNRS_DB = (20.0, 10.0, 5.0)
BITRATES_KBPS = (32, 48, 64, 96, 128)
CODECS = {"aac": ".m4a", "mp3": ".mp3", "opus": ".opus"}


def _choice(rng: np.random.Generator, values: Sequence[Any]) -> Any:
    value = values[int(rng.integers(len(values)))]
    return value.item() if isinstance(value, np.generic) else value


def _uniform(rng: np.random.Generator, low: float, high: float, digits: int = 3) -> float:
    return round(float(rng.uniform(low, high)), digits)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


# --- reencode -------------------------------------------------------------------------------------------------


def draw_reencode(rng: np.random.Generator) -> dict:
    return {"codec": _choice(rng, list(CODECS)), "bitrate_kbps": _choice(rng, BITRATES_KBPS)}


def apply_reencode(samples: np.ndarray, rate: int, *, codec: str, bitrate_kbps: int) -> np.ndarray:
    """One lossy generation: encode with ``codec`` at ``bitrate_kbps`` kbit/s and decode back to ``rate``.

    The codec's own delay (e.g. AAC priming) is kept: real re-uploads shift by it too.
    """
    from ausil_lite.descriptors.audio import decode_audio, resample
    from ausil_lite.datasets.media import write_media

    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {sorted(CODECS)}")
    with tempfile.TemporaryDirectory(prefix="ausil-reencode-") as tmp:
        path = write_media(Path(tmp) / f"clip{CODECS[codec]}", samples, rate, bitrate=int(bitrate_kbps) * 1000)
        decoded, decoded_rate = decode_audio(path)
    return resample(decoded, decoded_rate, rate).astype(np.float32)


# --- gain, noise ----------------------------------------------------------------------------------------------


def draw_gain(rng: np.random.Generator) -> dict:
    # Cuts of 6-20 dB are common; boosts of 3-9 dB clip, which peak normalisation cannot undo.
    low, high = ((-20.0, -6.0), (3.0, 9.0))[int(rng.random() < 0.3)]
    return {"gain_db": _uniform(rng, low, high, 1)}


def apply_gain(samples: np.ndarray, rate: int, *, gain_db: float) -> np.ndarray:
    return np.clip(samples * np.float32(10 ** (gain_db / 20)), -1.0, 1.0).astype(np.float32)


def coloured_noise(n: int, colour: str, seed: int) -> np.ndarray:
    """Unit-RMS white or pink (1/f power) noise of ``n`` samples."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n)
    if colour == "white":
        out = white
    elif colour == "pink":
        size = scipy.fft.next_fast_len(n, real=True)  # FFT lengths with large prime factors are slow
        spectrum = scipy.fft.rfft(white, size)
        f = np.arange(spectrum.size, dtype=np.float64)
        f[0] = 1.0
        out = scipy.fft.irfft(spectrum / np.sqrt(f), size)[:n]
    else:
        raise ValueError(f"unknown noise colour {colour!r}; choose white or pink")
    return (out / np.sqrt(np.mean(out**2))).astype(np.float32)


def draw_noise(rng: np.random.Generator) -> dict:
    return {"snr_db": _choice(rng, SNRS_DB), "colour": _choice(rng, ("white", "pink")), "noise_seed": _seed(rng)}


def apply_noise(samples: np.ndarray, rate: int, *, snr_db: float, colour: str, noise_seed: int) -> np.ndarray:
    """Adds noise whose energy is ``snr_db`` below the signal's (energies over the whole clip)."""
    power = float(np.mean(np.square(samples, dtype=np.float64)))
    noise = coloured_noise(samples.size, colour, noise_seed) * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
    return (samples + noise).astype(np.float32)


# --- telephone, reverb ----------------------------------------------------------------------------------------


def draw_telephone(rng: np.random.Generator) -> dict:
    return {"low_hz": _choice(rng, (300.0, 400.0)), "high_hz": _choice(rng, (3000.0, 3400.0))}


def apply_telephone(samples: np.ndarray, rate: int, *, low_hz: float, high_hz: float) -> np.ndarray:
    """Through an 8 kHz channel, band-passed to ``low_hz``-``high_hz`` (8th-order Butterworth), back to ``rate``."""
    from ausil_lite.descriptors.audio import resample

    narrow = resample(np.asarray(samples, dtype=np.float32), rate, 8000).astype(np.float64)
    sos = scipy.signal.butter(8, [low_hz, high_hz], btype="bandpass", fs=8000, output="sos")
    return resample(scipy.signal.sosfilt(sos, narrow).astype(np.float32), 8000, rate)


def impulse_response(rate: int, rt60_s: float, wet_db: float, seed: int) -> np.ndarray:
    """A diffuse room: a unit direct path then noise decaying by 60 dB over ``rt60_s`` seconds.

    ``wet_db`` is the reverberant energy relative to the direct path's.
    """
    n = int(round(rt60_s * rate))
    t = np.arange(n) / rate
    tail = np.random.default_rng(seed).standard_normal(n) * 10 ** (-3 * t / rt60_s)
    tail *= np.sqrt(10 ** (wet_db / 10) / np.sum(tail**2))
    tail[0] = 1.0
    return tail.astype(np.float32)


def draw_reverb(rng: np.random.Generator) -> dict:
    return {"rt60_s": _uniform(rng, 0.3, 1.5, 2), "wet_db": _uniform(rng, -6.0, 3.0, 1), "ir_seed": _seed(rng)}


def apply_reverb(samples: np.ndarray, rate: int, *, rt60_s: float, wet_db: float, ir_seed: int) -> np.ndarray:
    """Convolves with :func:`impulse_response`; the tail is kept (the clip grows by ``rt60_s``)."""
    ir = impulse_response(rate, rt60_s, wet_db, ir_seed)
    out = scipy.signal.fftconvolve(samples, ir)
    peak = float(np.max(np.abs(out))) or 1.0
    return (out / max(peak, 1.0)).astype(np.float32)


# --- crop, embed, mix -----------------------------------------------------------------------------------------


def draw_crop(rng: np.random.Generator) -> dict:
    return {"keep": _uniform(rng, 0.3, 1.0, 3), "offset": _uniform(rng, 0.0, 1.0, 3)}


def crop_bounds(n: int, keep: float, offset: float) -> tuple[int, int]:
    """Sample range kept: ``keep`` of ``n`` samples, starting ``offset`` of the way through the rest."""
    if not 0.0 < keep <= 1.0 or not 0.0 <= offset <= 1.0:
        raise ValueError(f"crop needs 0 < keep <= 1 and 0 <= offset <= 1, got keep={keep}, offset={offset}")
    length = max(1, int(round(n * keep)))
    start = int(round((n - length) * offset))
    return start, start + length


def apply_crop(samples: np.ndarray, rate: int, *, keep: float, offset: float) -> np.ndarray:
    start, stop = crop_bounds(samples.size, keep, offset)
    return samples[start:stop].copy()


def _fit(other: np.ndarray, n: int) -> np.ndarray:
    if other is None or other.size == 0:
        raise ValueError("this transformation needs unrelated audio: pass other=")
    reps = int(np.ceil(n / other.size))
    return np.tile(other, reps)[:n] if reps > 1 else other[:n]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def draw_embed(rng: np.random.Generator) -> dict:
    return {"before_s": _uniform(rng, 2.0, 15.0, 2), "after_s": _uniform(rng, 2.0, 15.0, 2)}


def apply_embed(
    samples: np.ndarray, rate: int, *, before_s: float, after_s: float, other: np.ndarray | None = None
) -> np.ndarray:
    """Unrelated audio (``other``, level-matched to the clip) for ``before_s``, the clip, then ``after_s`` more.

    Joins cross-fade over 50 ms, as an editor's cuts do.
    """
    n_before, n_after = int(round(before_s * rate)), int(round(after_s * rate))
    filler = _fit(other, n_before + n_after).astype(np.float32)
    filler = filler * np.float32(_rms(samples) / max(_rms(filler), 1e-9))
    fade = min(int(0.05 * rate), samples.size // 2)
    clip = samples.astype(np.float32).copy()
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        clip[:fade] *= ramp
        clip[-fade:] *= ramp[::-1]
    return np.concatenate([filler[:n_before], clip, filler[n_before:]]).astype(np.float32)


def draw_mix(rng: np.random.Generator) -> dict:
    return {"ratio_db": _uniform(rng, 0.0, 10.0, 1)}


def apply_mix(samples: np.ndarray, rate: int, *, ratio_db: float, other: np.ndarray | None = None) -> np.ndarray:
    """Adds ``other`` (looped to length) ``ratio_db`` dB below the clip's energy; rescales if it would clip."""
    background = _fit(other, samples.size).astype(np.float64)
    background *= _rms(samples) / max(_rms(background), 1e-9) / 10 ** (ratio_db / 20)
    out = samples + background
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    return (out / max(peak, 1.0)).astype(np.float32)


# --- speed, tempo ---------------------------------------------------------------------------------------------


def draw_speed(rng: np.random.Generator) -> dict:
    return {"factor": _choice(rng, SPEED_FACTORS)}


def apply_speed(samples: np.ndarray, rate: int, *, factor: float) -> np.ndarray:
    """Plays ``factor`` times faster, pitch included: the clip, read as if sampled at ``factor * rate``,
    is resampled to ``rate`` (windowed sinc). The factor is rounded to 1/1000 so the filter stays short."""
    ratio = Fraction(factor).limit_denominator(1000)
    if ratio <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    if ratio == 1:
        return samples.astype(np.float32, copy=True)
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    return AF.resample(wave, ratio.numerator, ratio.denominator).numpy()


def draw_tempo(rng: np.random.Generator) -> dict:
    return {"factor": _choice(rng, SPEED_FACTORS)}


def apply_tempo(samples: np.ndarray, rate: int, *, factor: float, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """Plays ``factor`` times faster at the same pitch: a phase vocoder on the STFT.

    Frames are read at ``factor`` frames per output frame; magnitudes are interpolated between
    neighbours and each bin's phase advances by its measured instantaneous frequency, so partials keep
    their frequency while the time axis is rescaled. Output length is ``len / factor`` samples.
    """
    if factor <= 0:
        raise ValueError(f"tempo factor must be positive, got {factor}")
    if factor == 1:
        return samples.astype(np.float32, copy=True)
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    window = torch.hann_window(n_fft)
    spec = torch.stft(wave, n_fft, hop, window=window, center=True, return_complex=True)  # (F, T)
    n_frames = spec.shape[1]
    spec = torch.cat([spec, torch.zeros_like(spec[:, :1])], dim=1)
    length = int(round(samples.size / factor))
    steps = torch.arange(0, n_frames, factor, dtype=torch.float64)
    steps = steps[steps <= n_frames - 1]  # arange may overshoot by a rounding error
    if (len(steps) - 1) * hop + n_fft // 2 < length + 8:  # a Hann window's last 8 samples are ~0
        # for some lengths the read positions above stop short of a window over the last output samples,
        # which istft rejects: hold the last input frame until the windows cover the whole output
        needed = (length + n_fft // 2) // hop + 1
        steps = torch.cat([steps, torch.full((needed - len(steps),), float(n_frames - 1), dtype=torch.float64)])
    index = steps.floor().long()
    alpha = (steps - index).unsqueeze(0).float()
    left, right = spec[:, index], spec[:, index + 1]
    magnitude = (1 - alpha) * left.abs() + alpha * right.abs()
    expected = torch.linspace(0, np.pi * hop, spec.shape[0]).unsqueeze(1)
    delta = right.angle() - left.angle() - expected
    delta = delta - 2 * np.pi * torch.round(delta / (2 * np.pi))
    advance = expected + delta
    # Accumulated phase reaches millions of radians: sum in float64, wrap, then back to float32.
    total = torch.cumsum(advance[:, :-1].double(), dim=1).remainder(2 * np.pi).float()
    phase = torch.cat([spec[:, :1].angle(), spec[:, :1].angle() + total], dim=1)
    stretched = torch.polar(magnitude, phase)
    out = torch.istft(stretched, n_fft, hop, window=window, center=True, length=length)
    return out.numpy()


# --- combo and the registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transform:
    """One family: ``draw(rng) -> params`` and deterministic ``apply(samples, rate, **params)``."""

    family: str
    draw: Callable[[np.random.Generator], dict]
    apply: Callable[..., np.ndarray]


COMBO_PARTS = ("reencode", "gain", "noise", "telephone", "reverb", "crop", "speed", "tempo", "embed", "mix")
COMBO_ORDER = ("crop", "embed", "speed", "tempo", "mix", "gain", "reverb", "noise", "telephone", "reencode")


def draw_combo(rng: np.random.Generator, parts: Sequence[str] = COMBO_PARTS) -> dict:
    """Two or three different families in a plausible order (edits first, then level, room, channel, codec)."""
    count = int(rng.integers(2, 4))
    chosen = [str(f) for f in rng.choice(list(parts), size=min(count, len(parts)), replace=False)]
    chosen.sort(key=COMBO_ORDER.index)
    return {"steps": [{"family": f, **TRANSFORMS[f].draw(rng)} for f in chosen]}


def apply_combo(samples: np.ndarray, rate: int, *, steps: list[dict], other: np.ndarray | None = None) -> np.ndarray:
    out = samples
    for step in steps:
        out = apply_transform(out, rate, step, other=other)
    return out


TRANSFORMS: dict[str, Transform] = {
    "reencode": Transform("reencode", draw_reencode, apply_reencode),
    "gain": Transform("gain", draw_gain, apply_gain),
    "noise": Transform("noise", draw_noise, apply_noise),
    "telephone": Transform("telephone", draw_telephone, apply_telephone),
    "reverb": Transform("reverb", draw_reverb, apply_reverb),
    "crop": Transform("crop", draw_crop, apply_crop),
    "embed": Transform("embed", draw_embed, apply_embed),
    "mix": Transform("mix", draw_mix, apply_mix),
    "speed": Transform("speed", draw_speed, apply_speed),
    "tempo": Transform("tempo", draw_tempo, apply_tempo),
    "combo": Transform("combo", draw_combo, apply_combo),
}


def needs_other(params: Mapping[str, Any]) -> bool:
    """Whether applying ``params`` (a record with ``family``) needs unrelated audio."""
    if params["family"] == "combo":
        return any(step["family"] in NEEDS_OTHER for step in params["steps"])
    return params["family"] in NEEDS_OTHER


def _severe_noise(rng: np.random.Generator) -> dict:
    return {**draw_noise(rng), "snr_db": min(SNRS_DB)}


def _severe_telephone(rng: np.random.Generator) -> dict:
    return {"low_hz": 400.0, "high_hz": _choice(rng, (3000.0, 3400.0))}


def _severe_reverb(rng: np.random.Generator) -> dict:
    return {"rt60_s": _uniform(rng, 1.0, 1.5, 2), "wet_db": _uniform(rng, 0.0, 3.0, 1), "ir_seed": _seed(rng)}


def _severe_crop(rng: np.random.Generator) -> dict:
    return {"keep": _uniform(rng, 0.3, 0.45, 3), "offset": _uniform(rng, 0.0, 1.0, 3)}


def _severe_embed(rng: np.random.Generator) -> dict:
    return {"before_s": _uniform(rng, 10.0, 15.0, 2), "after_s": _uniform(rng, 10.0, 15.0, 2)}


def _severe_mix(rng: np.random.Generator) -> dict:
    return {"ratio_db": _uniform(rng, 0.0, 3.0, 1)}


SEVERE_DRAWS: dict[str, Callable[[np.random.Generator], dict]] = {
    "noise": _severe_noise, "telephone": _severe_telephone, "reverb": _severe_reverb, "crop": _severe_crop,
    "embed": _severe_embed, "mix": _severe_mix,
}
"""The hard end of each range that has one: noise at 5 dB SNR, the 400 Hz telephone band, RT60 of 1-1.5 s with the
room as loud as the direct path, crops keeping 30-45 %, a clip under half of its embedding, a mix 0-3 dB under.
Benchmarks drawn only from these (``DavrMiniConfig.severe``) still separate settings that a full-range benchmark
scores alike, since every setting finds the range's easy copies."""
SEVERE_FAMILIES = tuple(SEVERE_DRAWS)


def draw_transform(rng: np.random.Generator, family: str, *, with_other: bool = True, severe: bool = False) -> dict:
    """Parameters of one ``family`` as a record ``{"family": ..., **params}``; ``severe`` draws from the hard end of
    its range (:data:`SEVERE_DRAWS`; a family without one raises)."""
    if family not in TRANSFORMS:
        raise ValueError(f"unknown transformation family {family!r}; choose one of {FAMILIES}")
    if severe:
        if family not in SEVERE_DRAWS:
            raise ValueError(f"{family!r} has no severe range; severe families: {SEVERE_FAMILIES}")
        if family in NEEDS_OTHER and not with_other:
            raise ValueError(f"{family!r} needs unrelated audio (other=)")
        return {"family": family, **SEVERE_DRAWS[family](rng)}
    if family == "combo":
        parts = COMBO_PARTS if with_other else tuple(p for p in COMBO_PARTS if p not in NEEDS_OTHER)
        return {"family": "combo", **draw_combo(rng, parts)}
    if family in NEEDS_OTHER and not with_other:
        raise ValueError(f"{family!r} needs unrelated audio (other=)")
    return {"family": family, **TRANSFORMS[family].draw(rng)}


def apply_transform(
    samples: np.ndarray, rate: int, params: Mapping[str, Any], *, other: np.ndarray | None = None
) -> np.ndarray:
    """Applies a record made by :func:`draw_transform` (deterministic)."""
    family = params["family"]
    if family not in TRANSFORMS:
        raise ValueError(f"unknown transformation family {family!r}; choose one of {FAMILIES}")
    kwargs = {k: v for k, v in params.items() if k != "family"}
    if family in NEEDS_OTHER or family == "combo":
        kwargs["other"] = other
    out = TRANSFORMS[family].apply(np.asarray(samples, dtype=np.float32), rate, **kwargs)
    if out.size == 0:
        raise ValueError(f"{family} produced an empty signal from {samples.size} samples")
    return out.astype(np.float32, copy=False)


def random_transform(
    samples: np.ndarray,
    rate: int,
    rng: np.random.Generator,
    families: Sequence[str] = TRAINING_FAMILIES,
    other: np.ndarray | None = None,
    severe: float = 0.0,
) -> tuple[np.ndarray, dict]:
    """A transformed copy of ``samples`` and its parameter record: the positive of a training pair.

    The family is drawn uniformly from ``families``; ``embed`` and ``mix`` (and combos using them) need
    ``other`` and are left out without it. ``severe``: the share of the families of :data:`SEVERE_DRAWS` drawn from
    the hard end of their range instead of the whole (0: none, and ``rng`` draws exactly as it always did).
    """
    usable = [f for f in families if other is not None or f not in NEEDS_OTHER]
    if not usable:
        raise ValueError(f"none of {list(families)} can run without unrelated audio; pass other=")
    family = _choice(rng, usable)
    harder = severe > 0 and family in SEVERE_DRAWS and rng.random() < severe
    params = draw_transform(rng, family, with_other=other is not None, severe=harder)
    return apply_transform(samples, rate, params, other=other), params


def speed_factor(params: Mapping[str, Any], family: str = "speed") -> float | None:
    """The overall ``family`` (speed or tempo) factor of a record, combos included; None when absent."""
    steps = params["steps"] if params["family"] == "combo" else [params]
    factors = [float(s["factor"]) for s in steps if s["family"] == family]
    return float(np.prod(factors)) if factors else None


def output_duration(duration_s: float, params: Mapping[str, Any]) -> float:
    """Duration in seconds of a ``duration_s`` clip after ``params`` (codec delays of ``reencode`` ignored)."""
    family = params["family"]
    if family == "combo":
        for step in params["steps"]:
            duration_s = output_duration(duration_s, step)
        return duration_s
    if family == "crop":
        return duration_s * params["keep"]
    if family == "embed":
        return duration_s + params["before_s"] + params["after_s"]
    if family in ("speed", "tempo"):
        return duration_s / params["factor"]
    if family == "reverb":
        return duration_s + params["rt60_s"]
    return duration_s
