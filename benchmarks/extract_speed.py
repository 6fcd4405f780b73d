"""Feature extraction speed: realtime factors (seconds of audio per wall-clock second) of each stage.

Makes a 10-minute mp4 (AAC at 48 kHz, so resampling is exercised) from real music of the Debian package
warzone2100-music, then times decode, resampling + log-mel, the backbone, and end to end on the CPU
(and on CUDA when there is one). In the same run it times the original system's front end, librosa's
resample + melspectrogram + power_to_db, with the original's resampler (resampy 'kaiser_best', the
default of the librosa 0.7 it used) and with librosa 0.11's default (soxr_hq).

    .venv/bin/python benchmarks/extract_speed.py [--minutes 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ausil_lite.audio import SAMPLE_RATE, decode_audio, load_audio, peak_normalise, resample
from ausil_lite.backbone import mac_descriptors
from ausil_lite.features import ExtractionConfig, FeatureExtractor
from ausil_lite.media import write_media
from ausil_lite.spectrogram import log_mel_spectrogram, segment_spectrogram

MUSIC = "/usr/share/games/warzone2100/music/**/*.opus"


def make_input(folder: Path, minutes: float) -> Path:
    """Concatenate real tracks to ``minutes`` and mux into mp4 (H.264 + AAC 48 kHz)."""
    tracks = sorted(glob.glob(MUSIC, recursive=True))
    if not tracks:
        raise SystemExit("benchmark needs the Debian package warzone2100-music (tools/system_packages.sh)")
    need = int(minutes * 60 * 48_000)
    parts, total = [], 0
    for track in tracks:
        samples, rate = decode_audio(track)
        samples = resample(samples, rate, 48_000)
        parts.append(samples)
        total += len(samples)
        if total >= need:
            break
    signal = np.concatenate(parts)[:need]
    return write_media(folder / "input.mp4", signal, 48_000)


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = make_input(Path(tmp), args.minutes)
        seconds = args.minutes * 60
        rows = []

        (raw, rate), t_decode = timed(lambda: decode_audio(path))
        rows.append(("decode (PyAV, downmix)", t_decode))
        wave, t_resample = timed(lambda: resample(raw, rate, SAMPLE_RATE))
        wave = peak_normalise(wave)
        mel, t_mel = timed(lambda: log_mel_spectrogram(torch.from_numpy(wave)))
        rows.append(("resample 48->44.1 kHz (torchaudio)", t_resample))
        rows.append(("log-mel (torchaudio)", t_mel))
        rows.append(("front end: resample + log-mel", t_resample + t_mel))
        segments = segment_spectrogram(mel)

        for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
            extractor = FeatureExtractor(ExtractionConfig(device=device))
            extractor.from_waveform(wave[: SAMPLE_RATE * 5])  # warm-up
            _, t_backbone = timed(lambda: mac_descriptors(extractor.model, segments.to(device), 64).cpu())
            rows.append((f"backbone + MAC on {device} ({len(segments)} segments)", t_backbone))
            _, t_end = timed(lambda: extractor.from_file(path))
            rows.append((f"end to end on {device} (decode -> descriptors)", t_end))

        import librosa

        def librosa_front_end(res_type: str):
            y = librosa.resample(raw, orig_sr=rate, target_sr=SAMPLE_RATE, res_type=res_type)
            power = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=1024, hop_length=512, n_mels=128)
            return librosa.power_to_db(power, ref=1.0, top_db=80.0)

        librosa_front_end("soxr_hq")  # warm-up (imports, FFT plans)
        _, t_soxr = timed(lambda: librosa_front_end("soxr_hq"))
        rows.append(("librosa front end, soxr_hq (librosa 0.11 default)", t_soxr))
        try:
            import resampy  # noqa: F401

            _, t_kaiser = timed(lambda: librosa_front_end("kaiser_best"))
            rows.append(("librosa front end, kaiser_best (the original's)", t_kaiser))
        except ImportError:
            t_kaiser = None

    print(f"input: {args.minutes:g} min of real music, mp4 AAC 48 kHz; torch threads: {args.threads}")
    print(f"{'stage':55s} {'seconds':>8s} {'x realtime':>11s}")
    for name, t in rows:
        print(f"{name:55s} {t:8.2f} {seconds / t:11.1f}")
    ours = t_resample + t_mel
    print(f"front end speed-up over librosa soxr_hq: {t_soxr / ours:.1f}x")
    if t_kaiser is not None:
        print(f"front end speed-up over the original's librosa kaiser_best: {t_kaiser / ours:.1f}x")


if __name__ == "__main__":
    main()
