import warnings

import av
import numpy as np
import pytest

from ausil_lite.descriptors.audio import SAMPLE_RATE, load_audio
from ausil_lite.descriptors.spectrogram import log_mel_spectrogram
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
from tests.conftest import noise, tone

import torch


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv", ".wav", ".mov", ".avi", ".mp3", ".flac", ".ogg"])
def test_decoded_tone_has_its_duration_and_loudest_band(make_media, suffix):
    path = make_media("tone" + suffix, tone(3000.0, 4.0))
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    # codecs add priming/padding of a few tens of ms at most
    assert abs(len(samples) / SAMPLE_RATE - 4.0) < 0.08
    assert np.max(np.abs(samples)) == pytest.approx(1.0)
    mel = log_mel_spectrogram(torch.from_numpy(samples))
    loudest = int(mel.mean(dim=0).argmax())
    reference = int(log_mel_spectrogram(torch.from_numpy(tone(3000.0, 4.0))).mean(dim=0).argmax())
    assert abs(loudest - reference) <= 1


def test_tone_moves_the_loudest_band(make_media):
    low = log_mel_spectrogram(torch.from_numpy(load_audio(make_media("low.mp4", tone(500.0, 2.0))))).mean(0).argmax()
    high = log_mel_spectrogram(torch.from_numpy(load_audio(make_media("high.mp4", tone(5000.0, 2.0))))).mean(0).argmax()
    assert high > low + 20


def test_resampling_from_other_rates(make_media):
    path = make_media("a.wav", tone(1000.0, 2.0, rate=8000), rate=8000)
    assert abs(len(load_audio(path)) - 2 * SAMPLE_RATE) <= 2


def test_missing_file_names_it(tmp_path):
    with pytest.raises(MissingFileError, match="nothere.mp4"):
        load_audio(tmp_path / "nothere.mp4")


def test_folder_given_as_a_video_says_so(tmp_path):
    (tmp_path / "clips.mp4").mkdir()
    with pytest.raises(FolderGivenError, match="clips.mp4: a folder, not a media file"):
        load_audio(tmp_path / "clips.mp4")


def test_not_media_names_it(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is a text file, not a video\n" * 50)
    with pytest.raises(NotMediaError, match="notes.mp4"):
        load_audio(path)


def test_video_without_audio_stream(tmp_path):
    path = tmp_path / "mute.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for _ in range(8):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(NoAudioStreamError, match="mute.mp4"):
        load_audio(path)


def test_silence_names_the_file(make_media):
    path = make_media("quiet.wav", np.zeros(SAMPLE_RATE, np.float32))
    with pytest.raises(SilentAudioError, match="quiet.wav"):
        load_audio(path)


def test_zero_length_audio(tmp_path):
    import wave

    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
    with pytest.raises(EmptyAudioError, match="empty.wav"):
        load_audio(path)


def test_truncated_stream_keeps_the_readable_part_and_warns(make_media, tmp_path):
    full = make_media("full.mkv", noise(8.0)).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.warns(CorruptStreamWarning, match="cut.mkv"):
        samples = load_audio(cut)
    assert 2.0 < len(samples) / SAMPLE_RATE < 6.0


def test_damaged_packets_are_skipped_with_a_warning(make_media, tmp_path):
    data = bytearray(make_media("full.mp4", noise(8.0)).read_bytes())
    start = len(data) // 3
    data[start : start + 4000] = np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with pytest.warns(CorruptStreamWarning, match="damaged.mp4"):
        samples = load_audio(damaged)
    assert len(samples) / SAMPLE_RATE > 4.0


def test_nothing_decodable_is_an_error(make_media, tmp_path):
    data = bytearray(make_media("full.mp3", noise(3.0), picture=False).read_bytes())
    data[200:] = bytes(len(data) - 200)  # keep the header, zero every frame
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((CorruptStreamError, EmptyAudioError, NotMediaError), match="broken.mp3"):
            load_audio(broken)


def test_errors_survive_pickling_for_worker_processes(tmp_path):
    import pickle

    err = pickle.loads(pickle.dumps(MissingFileError(tmp_path / "x.mp4")))
    assert isinstance(err, MissingFileError) and err.path.endswith("x.mp4") and str(err).endswith("file not found")


@pytest.mark.parametrize("orig_rate", [48_000, 22_050, 8_000, 96_000, SAMPLE_RATE])
def test_resampling_in_chunks_equals_resampling_whole(orig_rate):
    from ausil_lite.descriptors.audio import resample, resample_chunks

    signal = noise(3.0, seed=orig_rate, rate=orig_rate)[:-37]  # a length that is no whole number of filter steps
    whole = resample(signal, orig_rate)
    for size in (997, 30_011, len(signal)):
        chunks = [signal[i : i + size] for i in range(0, len(signal), size)]
        streamed = np.concatenate(list(resample_chunks(chunks, orig_rate)))
        assert streamed.shape == whole.shape
        np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-6)


def test_streamed_audio_is_the_loaded_audio_before_normalisation(make_media):
    from ausil_lite.descriptors.audio import stream_audio

    path = make_media("a.m4a", noise(5.0, rate=48_000), rate=48_000)
    chunks = list(stream_audio(path, chunk_samples=20_000))
    assert len(chunks) > 5
    np.testing.assert_allclose(np.concatenate(chunks), load_audio(path, normalise=False), rtol=0, atol=1e-6)


def test_streamed_damage_is_reported_once_when_the_chunks_run_out(make_media, tmp_path):
    from ausil_lite.descriptors.audio import stream_audio

    full = make_media("full.mkv", noise(8.0)).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.warns(CorruptStreamWarning, match="cut.mkv") as caught:
        streamed = np.concatenate(list(stream_audio(cut, chunk_samples=10_000)))
    assert len([w for w in caught if issubclass(w.category, CorruptStreamWarning)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second read of a file already reported on stays quiet
        again = np.concatenate(list(stream_audio(cut, warn=False)))
    assert np.array_equal(streamed, again)
