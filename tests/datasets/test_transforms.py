"""Each transformation changes the audio as its record claims, measured on signals the tests make."""

from __future__ import annotations

import numpy as np
import pytest

from ausil_lite.datasets import transforms as T
from transform_measures import band_energy_db, best_lag, dominant_frequency, estimate_time_scale

RATE = 22_050


def notes(seconds: float = 8.0, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """Plucked harmonic notes at random times and pitches: clear onsets, like music."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * rate), dtype=np.float64)
    t = np.arange(int(0.4 * rate)) / rate
    for start in np.sort(rng.uniform(0, seconds - 0.4, size=int(seconds * 4))):
        f0 = rng.uniform(150, 600)
        note = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3)) * np.exp(-t / 0.08)
        i = int(start * rate)
        out[i : i + t.size] += note
    return (0.3 * out / np.max(np.abs(out))).astype(np.float32)


def steady(freq: float, seconds: float = 4.0, rate: int = RATE) -> np.ndarray:
    return (0.4 * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def energy_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("factor", [0.7, 0.9, 1.25, 1.4])
def test_speed_changes_time_and_pitch_by_the_factor(factor):
    x = notes()
    y = T.apply_speed(x, RATE, factor=factor)
    assert y.size == pytest.approx(x.size / factor, abs=2)
    assert estimate_time_scale(x, y, RATE) == pytest.approx(factor, abs=0.012)
    tone = steady(440.0)
    assert dominant_frequency(T.apply_speed(tone, RATE, factor=factor), RATE) == pytest.approx(440 * factor, rel=0.01)


@pytest.mark.parametrize("factor", [0.7, 0.9, 1.25, 1.4])
def test_tempo_changes_time_but_keeps_pitch(factor):
    x = notes()
    y = T.apply_tempo(x, RATE, factor=factor)
    assert y.size == int(round(x.size / factor))
    assert estimate_time_scale(x, y, RATE) == pytest.approx(factor, abs=0.015)
    tone = T.apply_tempo(steady(440.0), RATE, factor=factor)
    assert dominant_frequency(tone, RATE) == pytest.approx(440.0, rel=0.01)


@pytest.mark.parametrize("size", [8679, 138701])
def test_tempo_fills_lengths_whose_last_window_the_read_positions_miss(size):
    """At 0.7x these sizes read frames that stop (nearly) short of the last output samples, which istft
    rejected ("window overlap add min"); a self-supervised run crashed on the second."""
    x = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    y = T.apply_tempo(x, RATE, factor=0.7)
    assert y.size == round(size / 0.7)
    assert np.all(np.isfinite(y)) and np.abs(y[-500:]).max() > 0


@pytest.mark.parametrize("snr", T.SNRS_DB)
@pytest.mark.parametrize("colour", ["white", "pink"])
def test_noise_is_added_at_the_recorded_snr(snr, colour):
    x = notes()
    y = T.apply_noise(x, RATE, snr_db=snr, colour=colour, noise_seed=3)
    assert energy_db(x) - energy_db(y - x) == pytest.approx(snr, abs=0.05)


def test_pink_noise_has_more_low_than_high_energy():
    pink = T.coloured_noise(RATE * 4, "pink", 0)
    white = T.coloured_noise(RATE * 4, "white", 0)
    tilt = lambda n: band_energy_db(n, RATE, 50, 500) - band_energy_db(n, RATE, 5000, 5450)
    assert tilt(pink) > tilt(white) + 8


def test_gain_cuts_by_the_recorded_db_and_boosts_clip():
    x = notes()
    assert energy_db(T.apply_gain(x, RATE, gain_db=-12.0)) - energy_db(x) == pytest.approx(-12.0, abs=0.01)
    loud = T.apply_gain(2 * x, RATE, gain_db=9.0)  # peak 0.6 * 2.8 clips
    assert np.max(np.abs(loud)) == 1.0 and np.mean(np.abs(loud) == 1.0) > 0.001


def test_telephone_removes_energy_outside_the_band():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(RATE * 3)).astype(np.float32)
    y = T.apply_telephone(x, RATE, low_hz=300.0, high_hz=3400.0)
    assert y.size == x.size
    drop = lambda lo, hi: band_energy_db(x, RATE, lo, hi) - band_energy_db(y, RATE, lo, hi)
    assert drop(5000, 10000) > 40
    assert drop(20, 150) > 20
    assert abs(drop(800, 2500)) < 3


def schroeder_rt60(ir: np.ndarray, rate: int) -> float:
    """RT60 from the -5 to -25 dB slope of the backward-integrated energy decay."""
    edc = np.cumsum((ir.astype(np.float64) ** 2)[::-1])[::-1]
    db = 10 * np.log10(edc / edc[0])
    i5, i25 = np.argmax(db <= -5), np.argmax(db <= -25)
    return 3 * (i25 - i5) / rate


@pytest.mark.parametrize("rt60", [0.3, 0.8, 1.5])
def test_reverb_decays_with_the_recorded_rt60(rt60):
    impulse = np.zeros(RATE // 10, dtype=np.float32)
    impulse[0] = 0.5
    response = T.apply_reverb(impulse, RATE, rt60_s=rt60, wet_db=6.0, ir_seed=1)
    assert response.size == impulse.size + int(round(rt60 * RATE)) - 1
    assert schroeder_rt60(response[1:], RATE) == pytest.approx(rt60, rel=0.15)


def test_crop_keeps_the_recorded_share_as_an_exact_slice():
    x = notes()
    y = T.apply_crop(x, RATE, keep=0.4, offset=0.5)
    start, stop = T.crop_bounds(x.size, 0.4, 0.5)
    assert y.size / x.size == pytest.approx(0.4, abs=1e-4)
    np.testing.assert_array_equal(y, x[start:stop])
    with pytest.raises(ValueError):
        T.apply_crop(x, RATE, keep=0.0, offset=0.5)


def test_embed_puts_the_clip_after_the_recorded_lead_in():
    x, other = notes(seed=1), notes(seconds=20, seed=2)
    y = T.apply_embed(x, RATE, before_s=3.0, after_s=5.0, other=other)
    assert y.size == x.size + 8 * RATE
    lag, score = best_lag(x[RATE:-RATE], y)
    assert lag == 3 * RATE + RATE and score > 0.999
    with pytest.raises(ValueError, match="unrelated audio"):
        T.apply_embed(x, RATE, before_s=3.0, after_s=5.0, other=None)


def test_mix_adds_background_at_the_recorded_ratio():
    x, other = notes(seed=1), notes(seconds=3, seed=2)  # shorter: looped
    y = T.apply_mix(x, RATE, ratio_db=6.0, other=other)
    assert y.size == x.size
    assert energy_db(x) - energy_db(y - x) == pytest.approx(6.0, abs=0.05)


@pytest.mark.parametrize("codec", sorted(T.CODECS))
def test_reencode_keeps_the_content_but_changes_the_samples(codec):
    rng = np.random.default_rng(0)
    x = notes(seconds=4) + (0.01 * rng.standard_normal(RATE * 4)).astype(np.float32)
    y = T.apply_reencode(x, RATE, codec=codec, bitrate_kbps=32)
    assert abs(y.size - x.size) < 0.1 * RATE
    lag, score = best_lag(x[RATE : 3 * RATE], np.pad(y, (0, max(0, x.size - y.size))))
    assert abs(lag - RATE) < 0.06 * RATE and score > 0.9
    assert not np.allclose(y[: x.size], x[: y.size], atol=1e-3)


def test_records_are_plain_json_and_reproducible():
    import json

    x, other = notes(seconds=4), notes(seconds=10, seed=5)
    for family in T.FAMILIES:
        a = T.draw_transform(np.random.default_rng(7), family)
        b = T.draw_transform(np.random.default_rng(7), family)
        assert a == b == json.loads(json.dumps(a)) and a["family"] == family
        y1 = T.apply_transform(x, RATE, a, other=other)
        y2 = T.apply_transform(x, RATE, b, other=other)
        np.testing.assert_array_equal(y1, y2)
        tolerance = 0.1 if "reencode" in json.dumps(a) else 0.002
        assert y1.size / RATE == pytest.approx(T.output_duration(x.size / RATE, a), abs=tolerance)


def test_combo_runs_distinct_steps_in_order():
    rng = np.random.default_rng(0)
    for _ in range(20):
        record = T.draw_transform(rng, "combo", with_other=False)
        families = [s["family"] for s in record["steps"]]
        assert 2 <= len(families) <= 3 and len(set(families)) == len(families)
        assert not set(families) & T.NEEDS_OTHER
        assert families == sorted(families, key=T.COMBO_ORDER.index)


def test_random_transform_skips_families_needing_other_audio_without_it():
    rng = np.random.default_rng(0)
    x = notes(seconds=3)
    seen = set()
    for _ in range(40):
        y, record = T.random_transform(x, RATE, rng, families=("embed", "mix", "gain", "crop"))
        seen.add(record["family"])
        assert not T.needs_other(record)
    assert seen == {"gain", "crop"}
    with pytest.raises(ValueError, match="other="):
        T.random_transform(x, RATE, rng, families=("embed",))


def test_speed_factor_reads_combos():
    record = {"family": "combo", "steps": [{"family": "speed", "factor": 1.2}, {"family": "gain", "gain_db": -6}]}
    assert T.speed_factor(record) == pytest.approx(1.2)
    assert T.speed_factor(record, "tempo") is None


def test_severe_draws_stay_at_the_hard_end_of_each_range_and_apply():
    rng = np.random.default_rng(0)
    x, other = notes(seconds=4), notes(seconds=10, seed=5)
    for _ in range(30):
        assert 0.3 <= T.draw_transform(rng, "crop", severe=True)["keep"] <= 0.45
        assert 0.0 <= T.draw_transform(rng, "mix", severe=True)["ratio_db"] <= 3.0
        assert T.draw_transform(rng, "noise", severe=True)["snr_db"] == min(T.SNRS_DB)
        assert T.draw_transform(rng, "telephone", severe=True)["low_hz"] == 400.0
        assert min(T.draw_transform(rng, "embed", severe=True)[k] for k in ("before_s", "after_s")) >= 10.0
        assert T.draw_transform(rng, "reverb", severe=True)["rt60_s"] >= 1.0
    for family in T.SEVERE_FAMILIES:  # the records are the families' own: the same apply reads them
        record = T.draw_transform(np.random.default_rng(1), family, severe=True)
        assert set(record) == set(T.draw_transform(np.random.default_rng(1), family))
        assert T.apply_transform(x, RATE, record, other=other).size > 0
    with pytest.raises(ValueError, match="no severe range"):
        T.draw_transform(rng, "speed", severe=True)
    with pytest.raises(ValueError, match="needs unrelated audio"):
        T.draw_transform(rng, "mix", severe=True, with_other=False)


def test_severe_training_positives_come_from_the_hard_end_at_their_share_and_none_leave_the_draws_alone():
    x, other = notes(seconds=3), notes(seconds=8, seed=5)

    def keeps(severe: float, seed: int = 0) -> list[float]:
        rng = np.random.default_rng(seed)
        return [T.random_transform(x, RATE, rng, families=("crop",), other=other, severe=severe)[1]["keep"]
                for _ in range(40)]
    assert max(keeps(1.0)) <= 0.45 and max(keeps(0.0)) > 0.45
    assert 0 < sum(k > 0.45 for k in keeps(0.5)) < 40
