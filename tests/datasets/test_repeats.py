"""Loops: where a query window's audio recurs in its track, and that the planner keeps negatives out of it."""

from __future__ import annotations

import numpy as np

from ausil_lite.datasets import davr_mini as D
from ausil_lite.datasets.repeats import RATE, RepeatFinder, find_repeats

from test_davr_mini import SMALL, fake_tracks


def looped_track(seed: int = 0) -> np.ndarray:
    """40 s at 4 kHz: A (8 s), B (12 s), A again at 20 s (quieter: gain does not hide a loop), C (12 s)."""
    rng = np.random.default_rng(seed)
    a, b, c = (rng.standard_normal(n * RATE) for n in (8, 12, 12))
    return np.concatenate([a, b, 0.5 * a, c])


def test_a_looped_section_is_found_where_it_recurs_and_nowhere_else():
    spans = find_repeats(looped_track(), start_s=0.0, duration_s=8.0)
    assert len(spans) == 1
    start, end = spans[0]
    assert 19.9 <= start <= 20.1 and 27.9 <= end <= 28.1


def test_unrepeated_audio_and_silence_give_nothing():
    audio = looped_track()
    assert find_repeats(audio, start_s=8.5, duration_s=10.0) == []  # B occurs once
    silent = np.concatenate([audio, np.zeros(20 * RATE)])
    assert find_repeats(silent, start_s=41.0, duration_s=15.0) == []  # silence in, nothing repeated


def test_finder_reads_each_track_once():
    reads = []

    def reader(track, rate):
        reads.append(track.id)
        return looped_track()

    track = fake_tracks()[0]
    finder = RepeatFinder(reader=reader)
    assert finder(track, 0.0, 8.0) == [(20.0, 28.0)] and finder(track, 1.0, 6.0) == [(21.0, 27.0)]
    assert reads == [track.id]


def test_planner_keeps_every_other_window_out_of_the_repeats():
    loops = {}

    def repeats(track, start_s, duration_s):
        # pretend each query's track repeats the query 60 s later
        span = ((start_s + 60.0) % (track.duration_s - duration_s), 0.0)
        loops.setdefault(track.id, []).append((span[0], span[0] + duration_s))
        return [loops[track.id][-1]]

    plan = D.plan_benchmark(fake_tracks(), SMALL, seed=2, repeats=repeats)
    assert loops and any("repeat the query window" in n for n in plan.notes)
    windows = [i.source for i in plan.items if i.role in ("hard_negative", "distractor")]
    windows += [w for i in plan.items for w in i.others]
    for w in windows:
        for a, b in loops.get(w.track, []):
            assert w.start_s + w.duration_s <= a or w.start_s >= b, (w, (a, b))
    assert D.plan_benchmark(fake_tracks(), SMALL, seed=2, repeats=repeats).items == plan.items
