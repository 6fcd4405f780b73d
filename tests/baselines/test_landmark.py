import time

import numpy as np
import pytest

from ausil_lite.baselines.landmark import LandmarkBaseline, LandmarkConfig, LandmarkFingerprint, pair_hashes
from ausil_lite.descriptors.audio import SAMPLE_RATE as RATE
from ausil_lite.errors import MissingFileError, SilentAudioError



def test_duplicate_scores_above_unrelated(duplicate_scores):
    duplicate, unrelated = duplicate_scores(LandmarkBaseline())
    assert duplicate > 0.05  # codec delay and noise move peaks; unrelated audio stays near 0
    assert duplicate > 5 * unrelated


def test_crop_matches_its_source_at_the_right_offset(note_sequence):
    baseline = LandmarkBaseline()
    source = note_sequence(3, 30.0)
    crop = source[int(11.0 * RATE) : int(19.0 * RATE)]
    full, part = baseline.fingerprint(source), baseline.fingerprint(crop)
    other = baseline.fingerprint(note_sequence(4, 30.0))
    assert baseline.score(part, full) > 0.15  # 11 s is half a hop off the frame grid: the worst case
    assert baseline.score(part, full) > 10 * baseline.score(part, other)
    offsets = baseline.match_offsets(part, full)
    frames_per_second = baseline.config.sample_rate / baseline.config.hop
    assert np.bincount(offsets - offsets.min()).argmax() + offsets.min() == pytest.approx(11.0 * frames_per_second, abs=2)


def test_pair_hashes_pack_frequencies_and_gap_within_the_target_zone():
    config = LandmarkConfig(fan_out=2, max_dt=10, max_df=50)
    frames = np.array([0, 3, 5, 9, 30])
    bins = np.array([100, 120, 300, 90, 100])
    hashes, anchors = pair_hashes(frames, bins, config)
    decoded = sorted(zip(anchors.tolist(), (hashes >> 15).tolist(), ((hashes >> 6) & 511).tolist(), (hashes & 63).tolist()))
    # peak 2 (bin 300) is 180 bins from everyone: outside max_df; peak 4 is 21+ frames after the rest: outside max_dt
    assert decoded == [(0, 100, 90, 9), (0, 100, 120, 3), (3, 120, 90, 6)]


def test_fingerprint_is_fast_and_self_score_is_one(note_sequence):
    baseline = LandmarkBaseline()
    minute = note_sequence(5, 60.0)
    started = time.perf_counter()
    fingerprint = baseline.fingerprint(minute)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"{elapsed:.2f} s to fingerprint a minute"
    assert fingerprint.hashes.size > 1000
    assert np.all(np.diff(fingerprint.hashes.astype(np.int64)) >= 0)
    assert baseline.score(fingerprint, fingerprint) == 1.0


def test_empty_fingerprint_scores_zero(note_sequence):
    empty = LandmarkFingerprint(np.empty(0, np.uint32), np.empty(0, np.int32), 0.0)
    baseline = LandmarkBaseline()
    assert baseline.score(empty, baseline.fingerprint(note_sequence(6, 5.0))) == 0.0


def test_config_rejects_gap_beyond_hash_bits():
    with pytest.raises(ValueError, match="max_dt"):
        LandmarkConfig(max_dt=64)


def test_bad_input_names_the_file(tmp_path):
    with pytest.raises(MissingFileError, match="nowhere.wav"):
        LandmarkBaseline().fingerprint(tmp_path / "nowhere.wav")
    with pytest.raises(SilentAudioError):
        LandmarkBaseline().fingerprint(np.zeros(RATE, np.float32))
