"""Feature extraction speed: realtime factors (seconds of audio per wall-clock second) of each stage.

Makes a 5-minute mp4 (AAC at 48 kHz, so resampling is exercised) from real music of the Debian package
warzone2100-music, then times decode, resampling + log-mel, the backbone, and end to end on the CPU (and on
CUDA when there is one), for the full network (float32) and the fast one (bfloat16, compiled on CPU:
:mod:`ausil_lite.descriptors.precision`), interleaved (A, B, A, B; the best of ``--repeat``) so that other work on the
machine slows both alike. It also cuts the input into a folder of short clips and extracts them through the
feature store (:func:`ausil_lite.descriptors.store.extract_videos`) as ``ausil-lite extract`` does: by default one
worker process a core, each extracting whole files on one thread (:mod:`ausil_lite.descriptors.workers`). Each
network's start-up (loading, and compiling the fast one) is timed apart: a process pays it once, and the
workers pay it side by side. In the same run it times the original system's front end, librosa's
resample + melspectrogram + power_to_db, with the original's resampler (resampy 'kaiser_best', the default
of the librosa 0.7 it used) and with librosa 0.11's default (soxr_hq).

    .venv/bin/python benchmarks/extract_speed.py [--minutes 5] [--clips 160] [--clip-seconds 15] [--threads 2] [--workers N]

Timings on a shared machine are noisy: compare the ratios printed, and note the load average.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ausil_lite.datasets.media import write_media
from ausil_lite.descriptors.audio import SAMPLE_RATE, decode_audio, peak_normalise, resample
from ausil_lite.descriptors.backbone import mac_descriptors
from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor
from ausil_lite.descriptors.precision import PRECISIONS, default_precision
from ausil_lite.descriptors.spectrogram import log_mel_spectrogram, segment_spectrogram
from ausil_lite.descriptors.store import FeatureStore, extract_videos
from ausil_lite.descriptors.workers import ExtractionWorkers, default_workers

MUSIC = "/usr/share/games/warzone2100/music/**/*.opus"
TARGET = 200.0  # x realtime, faster than fingerprinting tools index
NETWORKS = {"float32": "full network (float32)", "bfloat16": "fast network (bfloat16)"}


def make_signal(minutes: float) -> np.ndarray:
    """``minutes`` of real tracks, concatenated, at 48 kHz."""
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
    return np.concatenate(parts)[:need]


def make_clips(folder: Path, signal: np.ndarray, count: int, seconds: float) -> list[tuple[str, Path]]:
    """``count`` clips of ``seconds`` cut from ``signal`` (wrapping around), as mp4 files: ``(id, path)``."""
    folder.mkdir()
    step = int(seconds * 48_000)
    clips = []
    for i in range(count):
        start = (i * step) % max(len(signal) - step, 1)
        clips.append((f"clip{i:03d}", write_media(folder / f"clip{i:03d}.mp4", signal[start : start + step], 48_000)))
    return clips


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the single input file")
    parser.add_argument("--clips", type=int, default=160, help="short clips in the folder extracted through the store")
    parser.add_argument("--clip-seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of this process")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="extraction processes for the folder (default: as `ausil-lite extract`, one a usable core)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved timings per network (the best is kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        signal = make_signal(args.minutes)
        path = write_media(Path(tmp) / "input.mp4", signal, 48_000)
        clips = make_clips(Path(tmp) / "clips", signal, args.clips, args.clip_seconds)
        seconds = args.minutes * 60
        clip_seconds = args.clips * args.clip_seconds
        rows, ratios = [], []

        # the best of --repeat: a first call also pays one-off costs (FFT plans, filter kernels)
        (raw, rate), t_decode = timed(lambda: decode_audio(path), args.repeat)
        rows.append(("decode (PyAV, downmix)", seconds, t_decode))
        wave, t_resample = timed(lambda: resample(raw, rate, SAMPLE_RATE), args.repeat)
        wave = peak_normalise(wave)
        mel, t_mel = timed(lambda: log_mel_spectrogram(torch.from_numpy(wave)), args.repeat)
        rows.append(("resample 48->44.1 kHz (torchaudio)", seconds, t_resample))
        rows.append(("log-mel (torchaudio)", seconds, t_mel))
        rows.append(("front end: resample + log-mel", seconds, t_resample + t_mel))
        segments = segment_spectrogram(mel)

        for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
            extractors, pools, best = {}, {}, {}
            for precision in PRECISIONS:
                config = ExtractionConfig(backbone="released", device=device, precision=precision)
                start = time.perf_counter()
                extractors[precision] = FeatureExtractor(config)
                extractors[precision].from_waveform(wave[: SAMPLE_RATE * 5])  # warm-up (compiles the fast network)
                rows.append((f"{NETWORKS[precision]} on {device}: start-up, once a process", None, time.perf_counter() - start))
                start = time.perf_counter()
                pools[precision] = ExtractionWorkers(config, args.workers)
                extract_videos(clips[: 2 * args.workers], FeatureStore(Path(tmp) / f"warm-{device}-{precision}"), config,
                               workers=pools[precision], progress=False, extractor=extractors[precision])  # starts every worker (2 jobs each in flight)
                rows.append((f"{NETWORKS[precision]} on {device}: {args.workers} extraction workers' start-up, once a run",
                             None, time.perf_counter() - start))
            for r in range(args.repeat):
                for precision, extractor in extractors.items():
                    stages = {
                        "backbone + MAC": lambda: mac_descriptors(extractor.model, segments.to(device), 64, extractor.mac).cpu(),
                        "end to end (decode -> descriptors)": lambda: extractor.from_file(path),
                    }
                    if r < 2:  # the folder is longer: two rounds suffice
                        stages["folder of clips via the store"] = lambda: extract_videos(
                            clips, FeatureStore(Path(tmp) / f"store-{device}-{precision}-{r}"), extractor.config,
                            workers=pools[precision], progress=False, extractor=extractor)
                    for stage, fn in stages.items():
                        _, t = timed(fn)
                        best[precision, stage] = min(best.get((precision, stage), float("inf")), t)
            for (precision, stage), t in best.items():
                audio = clip_seconds if stage.startswith("folder") else seconds
                shape = "whole files" if pools[precision].whole_files else "decoding for this process"
                detail = f" ({args.clips} x {args.clip_seconds:g} s, {args.workers} workers, {shape})" if stage.startswith("folder") else ""
                rows.append((f"{NETWORKS[precision]} on {device}: {stage}{detail}", audio, t))
            for pool in pools.values():
                pool.close()
            if device == "cpu":
                chosen = default_precision("released", device)
                speed = clip_seconds / best[chosen, "folder of clips via the store"]
                verdict = (f"`ausil-lite extract` as it runs when told nothing ({NETWORKS[chosen]}, {args.workers} workers): "
                           f"{speed:.0f}x realtime end to end on the folder; target {TARGET:g}x "
                           f"{'met' if speed >= TARGET else 'NOT met'}")
            for stage in ("backbone + MAC", "end to end (decode -> descriptors)", "folder of clips via the store"):
                ratios.append(f"{device} {stage}: the fast network runs {best['float32', stage] / best['bfloat16', stage]:.2f}x "
                              f"as fast as the full one")

        import librosa

        def librosa_front_end(res_type: str):
            y = librosa.resample(raw, orig_sr=rate, target_sr=SAMPLE_RATE, res_type=res_type)
            power = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=1024, hop_length=512, n_mels=128)
            return librosa.power_to_db(power, ref=1.0, top_db=80.0)

        librosa_front_end("soxr_hq")  # warm-up (imports, FFT plans)
        _, t_soxr = timed(lambda: librosa_front_end("soxr_hq"))
        rows.append(("librosa front end, soxr_hq (librosa 0.11 default)", seconds, t_soxr))
        t_kaiser = None
        if importlib.util.find_spec("resampy") is not None:  # librosa's kaiser_best needs it
            _, t_kaiser = timed(lambda: librosa_front_end("kaiser_best"))
            rows.append(("librosa front end, kaiser_best (the original's)", seconds, t_kaiser))

    print(f"input: {args.minutes:g} min of real music, mp4 AAC 48 kHz; torch threads: {args.threads}; "
          f"load average at start {load:.1f}, at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'stage':95s} {'seconds':>8s} {'x realtime':>11s}")
    for name, audio, t in rows:
        print(f"{name:95s} {t:8.2f} {'' if audio is None else f'{audio / t:11.1f}'}")
    print("\n".join(ratios))
    print(f"target: at least {TARGET:g}x realtime end to end on 2 CPU cores (printed, not asserted)")
    print(verdict)
    ours = t_resample + t_mel
    print(f"front end speed-up over librosa soxr_hq: {t_soxr / ours:.1f}x")
    if t_kaiser is not None:
        print(f"front end speed-up over the original's librosa kaiser_best: {t_kaiser / ours:.1f}x")


if __name__ == "__main__":
    main()
