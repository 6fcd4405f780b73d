import numpy as np
import pytest
import torch

from ausil_lite.descriptors.audio import SAMPLE_RATE
from ausil_lite.descriptors.spectrogram import BLOCK_FRAMES, SEGMENT_FRAMES, log_mel_spectrogram, segment_spectrogram
from tests.conftest import noise, tone


def test_log_mel_matches_librosa():
    librosa = pytest.importorskip("librosa")
    signal = tone(440.0, 3.0) + 0.5 * tone(2500.0, 3.0) + 0.1 * noise(3.0, seed=3)
    ours = log_mel_spectrogram(torch.from_numpy(signal)).numpy()
    power = librosa.feature.melspectrogram(y=signal, sr=SAMPLE_RATE, n_fft=1024, hop_length=512, n_mels=128)
    theirs = librosa.power_to_db(power, ref=1.0, top_db=80.0).T
    assert ours.shape == theirs.shape == (1 + len(signal) // 512, 128)
    # float32 FFTs differ slightly; bands floored at top_db agree exactly
    assert np.max(np.abs(ours - theirs)) < 0.05


@pytest.mark.parametrize("seconds, segments", [(0.3, 1), (2.0, 1), (10.5, 10), (61.0, 60)])
def test_segment_counts_and_shapes(seconds, segments):
    mel = log_mel_spectrogram(torch.from_numpy(noise(seconds)))
    out = segment_spectrogram(mel)
    assert out.shape == (segments, 1, SEGMENT_FRAMES, 128)


def test_segments_overlap_by_one_block_and_pad_with_zeros():
    mel = torch.arange(300 * 128, dtype=torch.float32).view(300, 128)
    out = segment_spectrogram(mel)[:, 0]
    assert out.shape[0] == 3  # 300 frames -> 4 blocks of 87 -> 3 segments
    assert torch.equal(out[0, BLOCK_FRAMES:], out[1, :BLOCK_FRAMES])
    assert torch.equal(out[0], mel[:SEGMENT_FRAMES])
    assert torch.all(out[-1, 300 - 2 * BLOCK_FRAMES :] == 0)


@pytest.mark.parametrize("seconds", [0.01, 2.0, 13.3])
def test_streamed_log_mel_and_segments_equal_the_whole_signal(seconds):
    from ausil_lite.descriptors.spectrogram import mel_power_chunks, power_to_db, segment_batches

    signal = torch.from_numpy(tone(440.0, seconds) + noise(seconds, seed=1))
    signal[: len(signal) // 3] = 0.0  # a silent stretch, so the 80 dB floor is reached
    whole = log_mel_spectrogram(signal)
    for size in (700, 5_003, 100_000):
        power = list(mel_power_chunks(signal.split(size)))
        max_power = max(float(p.max()) for p in power)
        streamed = [power_to_db(p, max_power=max_power) for p in power]
        assert torch.allclose(torch.cat(streamed), whole, rtol=0, atol=1e-3)  # dB
        for batch_size in (1, 4, 64):
            batches = list(segment_batches(iter(streamed), batch_size))
            assert all(len(b) == batch_size for b in batches[:-1])
            assert torch.allclose(torch.cat(batches), segment_spectrogram(whole), rtol=0, atol=1e-3)
