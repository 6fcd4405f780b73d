import dataclasses
import functools
import warnings

import numpy as np
import pytest
import torch

from ausil_lite.descriptors import extraction as features
from ausil_lite.descriptors.audio import load_audio, stream_audio
from ausil_lite.descriptors.backbone import mac_descriptors
from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor, scan_audio
from ausil_lite.descriptors.spectrogram import log_mel_spectrogram, segment_spectrogram
from ausil_lite.errors import CorruptStreamError, CorruptStreamWarning, SilentAudioError
from tests.conftest import noise, tone

ATOL = 1e-5
"""Streamed against whole-signal descriptors: float32 rounding of sums taken in other orders (seen: ~1e-7)."""


def whole_signal_descriptors(extractor: FeatureExtractor, samples: np.ndarray) -> np.ndarray:
    """Descriptors as made before streaming: the whole spectrogram, every segment, then the backbone."""
    segments = segment_spectrogram(log_mel_spectrogram(torch.from_numpy(samples)))
    with torch.inference_mode():
        return mac_descriptors(extractor.model, segments, extractor.config.batch_size).numpy()


def varied_signal(seconds: float, rate: int) -> np.ndarray:
    """Tones that change every second over noise, with a silent stretch that reaches the 80 dB floor."""
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.4 * np.sin(2 * np.pi * (200.0 + 150.0 * np.floor(t)) * t) + noise(seconds, seed=2, rate=rate)
    signal[3 * rate : 5 * rate] = 0.0
    return signal.astype(np.float32)


@pytest.mark.parametrize("suffix, rate, seconds, keep_seconds", [
    pytest.param(".m4a", 48_000, 61.0, 0.0, marks=pytest.mark.slow),  # AAC at 48 kHz, resampled to 44.1 kHz
    (".wav", 44_100, 17.0, 0.0),  # read twice, as a long file is
    (".wav", 44_100, 17.0, 120.0),  # read once, the scan's samples kept
])
def test_streamed_descriptors_equal_the_whole_signal_ones(make_media, monkeypatch, suffix, rate, seconds,
                                                          keep_seconds):
    path = make_media("clip" + suffix, varied_signal(seconds, rate), rate=rate)
    # small chunks and batches, aligned neither to hops, blocks nor batches
    monkeypatch.setattr(features, "stream_audio", functools.partial(stream_audio, chunk_samples=30_011))
    monkeypatch.setattr(features, "KEEP_SECONDS", keep_seconds)
    extractor = FeatureExtractor(ExtractionConfig(device="cpu", batch_size=7))
    streamed = extractor.from_file(path)
    whole = whole_signal_descriptors(extractor, load_audio(path))
    assert streamed.shape == whole.shape and len(whole) >= seconds - 1
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=ATOL)


def test_from_waveform_streams_arrays_longer_than_a_chunk(monkeypatch):
    monkeypatch.setattr(features, "CHUNK_SAMPLES", 44_101)
    samples = varied_signal(9.0, 44_100)
    extractor = FeatureExtractor(ExtractionConfig(device="cpu", batch_size=3))
    np.testing.assert_allclose(extractor.from_waveform(samples), whole_signal_descriptors(extractor, samples),
                               rtol=0, atol=ATOL)
    assert extractor.from_waveform(np.zeros(0, np.float32)).shape == (1, 2528)  # as the whole signal gives


def test_scan_holds_what_normalisation_and_the_floor_need(make_media):
    path = make_media("a.wav", 0.25 * tone(1000.0, 3.0))
    scan = scan_audio(path)
    raw = load_audio(path, normalise=False)
    assert scan.samples == len(raw) and scan.seconds == pytest.approx(3.0, abs=0.01)
    assert scan.peak == pytest.approx(float(np.abs(raw).max()))
    peak_db = float(log_mel_spectrogram(torch.from_numpy(load_audio(path))).max())
    assert 10 * np.log10(scan.max_power) == pytest.approx(peak_db, abs=1e-3)


def test_silence_and_damage_are_reported_once(make_media, tmp_path):
    extractor = FeatureExtractor(ExtractionConfig(device="cpu"))
    with pytest.raises(SilentAudioError, match="quiet.wav"):
        extractor.from_file(make_media("quiet.wav", np.zeros(44_100, np.float32)))
    full = make_media("full.mkv", noise(8.0)).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full[: len(full) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        extractor.from_file(cut)
    assert [issubclass(w.category, CorruptStreamWarning) for w in caught] == [True]


def test_only_long_files_are_read_twice(make_media, monkeypatch):
    reads = []
    monkeypatch.setattr(features, "stream_audio", lambda path, **kw: reads.append(path) or stream_audio(path, **kw))
    monkeypatch.setattr(features, "KEEP_SECONDS", 3.0)
    extractor = FeatureExtractor(ExtractionConfig(device="cpu"))
    short, long = make_media("short.wav", noise(2.5)), make_media("long.wav", noise(4.0))
    assert scan_audio(short).mel_power is not None and scan_audio(long).mel_power is None
    reads.clear()
    extractor.from_file(short)
    extractor.from_file(long)
    assert reads == [short, long, long]


def test_a_file_changed_between_its_two_reads_is_an_error(make_media):
    path = make_media("a.wav", noise(2.0))
    stale = dataclasses.replace(scan_audio(path), samples=3 * 44_100, mel_power=None)
    with pytest.raises(CorruptStreamError, match="changed while it was read"):
        FeatureExtractor(ExtractionConfig(device="cpu")).from_file(path, stale)
