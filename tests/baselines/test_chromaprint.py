import shutil

import numpy as np
import pytest

from ausil_lite.baselines.chromaprint import (
    FPCALC_PACKAGE,
    ChromaprintBaseline,
    ChromaprintConfig,
    ChromaprintError,
    FpcalcMissingError,
    bit_error_rates,
    parse_raw_output,
)

needs_fpcalc = pytest.mark.skipif(shutil.which("fpcalc") is None, reason=f"fpcalc missing: install {FPCALC_PACKAGE}")


def test_bit_error_rates_match_a_direct_count():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**32, 40, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2**32, 25, dtype=np.uint64).astype(np.uint32)
    offsets, rates = bit_error_rates(a, b, min_overlap=4)
    assert offsets.size == (40 - 4) + (25 - 4) + 1
    for k, rate in zip(offsets, rates):
        lo, hi = max(k, 0), min(40, k + 25)
        direct = np.bitwise_count(a[lo:hi] ^ b[lo - k : hi - k]).sum() / (32 * (hi - lo))
        assert rate == pytest.approx(direct)


def test_score_finds_a_shifted_copy():
    rng = np.random.default_rng(1)
    long = rng.integers(0, 2**32, 300, dtype=np.uint64).astype(np.uint32)
    flipped = long[100:200] ^ np.uint32(1 << 7)  # one bit in 32 differs: BER 1/32
    baseline = ChromaprintBaseline(ChromaprintConfig(min_overlap_s=2.0))
    assert baseline.score(flipped, long) == pytest.approx(1 - 1 / 32)
    assert baseline.score(flipped, rng.integers(0, 2**32, 300, dtype=np.uint64).astype(np.uint32)) < 0.7


@needs_fpcalc
def test_duplicate_scores_above_unrelated(duplicate_scores):
    duplicate, unrelated = duplicate_scores(ChromaprintBaseline())
    assert duplicate > 0.8
    assert duplicate > unrelated + 0.15


@needs_fpcalc
def test_samples_and_file_give_similar_fingerprints(duplicate_set, note_sequence):
    baseline = ChromaprintBaseline()
    from_file = baseline.fingerprint(duplicate_set["original"])
    from_samples = baseline.fingerprint(note_sequence(1, 12.0))
    assert from_file.dtype == np.uint32 and abs(from_file.size - from_samples.size) <= 3
    assert baseline.score(from_samples, from_file) > 0.9


def test_missing_fpcalc_names_the_package(note_sequence):
    baseline = ChromaprintBaseline(ChromaprintConfig(fpcalc="no-such-fpcalc-program"))
    with pytest.raises(FpcalcMissingError, match=FPCALC_PACKAGE):
        baseline.fingerprint(note_sequence(1, 3.0))


@needs_fpcalc
def test_bad_files_name_the_file(tmp_path):
    not_media = tmp_path / "notes.mp4"
    not_media.write_text("this is not a video")
    with pytest.raises(ChromaprintError, match="notes.mp4"):
        ChromaprintBaseline().fingerprint(not_media)
    with pytest.raises(ChromaprintError, match="absent.mp4"):
        ChromaprintBaseline().fingerprint(tmp_path / "absent.mp4")


def test_output_without_fingerprint_is_an_error():
    assert parse_raw_output("DURATION=3\nFINGERPRINT=1,4294967295\n", "x.wav").tolist() == [1, 4294967295]
    with pytest.raises(ChromaprintError, match="x.wav"):
        parse_raw_output("DURATION=0\nFINGERPRINT=\n", "x.wav")


def test_a_hanging_fpcalc_is_a_failure_naming_the_input(tmp_path, note_sequence):
    slow = tmp_path / "slow-fpcalc"
    slow.write_text("#!/bin/sh\nexec sleep 5\n")
    slow.chmod(0o755)
    baseline = ChromaprintBaseline(ChromaprintConfig(fpcalc=str(slow), timeout_s=0.2))
    with pytest.raises(ChromaprintError, match="timeout_s"):
        baseline.fingerprint(note_sequence(1, 3.0))
