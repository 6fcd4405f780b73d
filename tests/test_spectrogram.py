import numpy as np
import pytest
import torch

from ausil_lite.audio import SAMPLE_RATE
from ausil_lite.spectrogram import BLOCK_FRAMES, SEGMENT_FRAMES, log_mel_spectrogram, segment_spectrogram
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
