"""Picking the similarity-map examples from an item table, and the numbers that summarise a map."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ausil_lite.study.map_examples import KINDS, chamfer, diagonal_slope, map_summary, pick_examples


def item(id_, role, query="", label="", family="none", params=None, speed=np.nan):
    return {"id": id_, "role": role, "query": query, "label": label, "family": family,
            "params": json.dumps(params or {}), "speed": speed}


def table() -> pd.DataFrame:
    return pd.DataFrame([
        item("q1", "query"), item("q2", "query"),
        item("p-noise", "positive", "q1", "DA", "noise", {"snr_db": 10.0, "colour": "pink", "noise_seed": 4}),
        item("p-gain", "positive", "q2", "DA", "gain", {"gain_db": 3.0}),
        item("p-crop", "positive", "q1", "DA", "crop", {"keep": 0.5, "offset": 0.2}),
        item("p-embed", "positive", "q2", "DA", "embed", {"before_s": 3.0, "after_s": 2.0}),
        item("p-s09", "positive", "q1", "DA", "speed", {"factor": 0.9}, 0.9),
        item("p-s14", "positive", "q2", "DA", "speed", {"factor": 1.4}, 1.4),
        item("p-combo", "positive", "q1", "DA", "combo", {"steps": [{"family": "speed", "factor": 0.7}]}, 0.7),
        item("n-sp", "hard_negative", "q1", "SP"), item("n-st", "hard_negative", "q2", "ST"),
        item("d1", "distractor"),
    ])


def test_one_pair_per_kind_with_the_preferred_families():
    examples = pick_examples(table())
    assert [e.kind for e in examples] == list(KINDS)
    by_kind = {e.kind: e for e in examples}
    assert (by_kind["duplicate"].candidate, by_kind["duplicate"].query) == ("p-gain", "q2")  # gain before noise
    assert by_kind["partial"].candidate == "p-embed"
    assert by_kind["speed"].candidate == "p-s14" and by_kind["speed"].speed == pytest.approx(1.4)
    assert by_kind["speed"].detail == "speed x1.40"
    assert by_kind["hard negative"].candidate == "n-st"
    assert by_kind["duplicate"].speed is None


def test_unavailable_items_are_skipped_and_a_missing_kind_is_named():
    available = {"q1", "p-noise", "p-crop", "p-s09", "n-sp"}
    examples = {e.kind: e.candidate for e in pick_examples(table(), available)}
    assert examples == {"duplicate": "p-noise", "partial": "p-crop", "speed": "p-s09", "hard negative": "n-sp"}
    with pytest.raises(ValueError, match="speed"):
        pick_examples(table(), available - {"p-s09"})


def test_slope_of_a_tilted_diagonal_and_the_map_summary():
    rng = np.random.default_rng(0)
    rows, factor = 40, 1.25  # candidate sped up: 40 / 1.25 = 32 segments
    sim = rng.uniform(-0.2, 0.2, size=(rows, 32))
    for r in range(rows):
        sim[r, min(int(round(r / factor)), 31)] = 0.9
    assert diagonal_slope(sim) == pytest.approx(1 / factor, abs=0.03)
    assert chamfer(sim) == pytest.approx(0.9)
    after = np.full((10, 8), -0.5)
    after[0, 0] = 3.0  # the model clips at 1
    summary = map_summary(sim, after)
    assert summary["chamfer_after"] == pytest.approx((1.0 - 0.5 * 9) / 10)
    assert summary["contrast_before"] == pytest.approx(0.9 - sim.mean())
    assert summary["slope_before"] == pytest.approx(0.8, abs=0.03)
    with pytest.raises(ValueError, match="two query rows"):
        diagonal_slope(sim[:1])
