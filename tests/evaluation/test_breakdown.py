"""Per-family and per-factor mAP on a hand-made benchmark whose APs are worked out by hand below."""

import math

import numpy as np
import pandas as pd
import pytest

from ausil_lite.datasets.benchmark import Benchmark
from ausil_lite.evaluation.breakdown import (
    OTHER_TRACKS,
    OWN_TRACK,
    bin_factor,
    breakdown,
    breakdown_table,
    changed_positives,
    duplicate_ranks,
    group_sizes,
    identity_margins,
    missed_duplicates,
    outranking_sources,
    positive_groups,
    subset_map,
)
from ausil_lite.evaluation.protocol import evaluate_benchmark

NAN = float("nan")


def make_benchmark(table: pd.DataFrame | None = None) -> Benchmark:
    """q1's positives: a (noise), b (speed 1.3), c (combo with speed 0.7); q2's: d (noise), e (tempo 0.8)."""
    if table is None:
        table = pd.DataFrame(
            [
                ("q1", "query", "none", NAN, NAN),
                ("q2", "query", "none", NAN, NAN),
                ("a", "positive", "noise", NAN, NAN),
                ("b", "positive", "speed", 1.3, NAN),
                ("c", "positive", "combo", 0.7, NAN),
                ("d", "positive", "noise", NAN, NAN),
                ("e", "positive", "tempo", NAN, 0.8),
                ("n1", "distractor", "gain", NAN, NAN),
                ("n2", "hard_negative", "none", NAN, NAN),
            ],
            columns=["id", "role", "family", "speed", "tempo"],
        )
    annotations = {"q1": {"DA": ["a", "b", "c"], "ST": ["n2"]}, "q2": {"DA": ["d", "e"]}}
    return Benchmark("toy", annotations, ["q1", "q2"], ["a", "b", "c", "d", "e", "n1", "n2"], table=table)


# q1 ranks a, n1, b, n2, c, d, e; q2 ranks q1, e, n1, d, a (the query q1 is a negative for q2).
SIMS = {
    "q1": {"a": 0.9, "n1": 0.8, "b": 0.7, "n2": 0.6, "c": 0.5, "d": 0.1, "e": 0.05, "q1": 1.0},
    "q2": {"q1": 0.95, "e": 0.9, "n1": 0.5, "d": 0.2, "a": 0.1},
}


def test_family_map_removes_the_other_positives():
    table = breakdown(SIMS, make_benchmark(), "family").set_index("group")
    # noise: q1 ranks a first (b, c removed) -> 1; q2 ranks q1, n1, d (e removed) -> 1/3
    assert table.loc["noise", "mAP"] == pytest.approx((1 + 1 / 3) / 2)
    # speed: q1 ranks n1, b (a, c removed) -> 1/2; counting a as a negative would give 1/3
    assert table.loc["speed", "mAP"] == pytest.approx(0.5)
    # combo: q1 ranks n1, n2, c -> 1/3 (the hard negative n2 stays in the ranking)
    assert table.loc["combo", "mAP"] == pytest.approx(1 / 3)
    # tempo: q2 ranks q1, e -> 1/2
    assert table.loc["tempo", "mAP"] == pytest.approx(0.5)
    assert table.loc["noise", "queries"] == 2 and table.loc["speed", "queries"] == 1
    assert list(table.index) == ["noise", "speed", "tempo", "combo"]  # the builder's family order


def test_speed_bins_with_unchanged_reference():
    groups = positive_groups(make_benchmark(), "speed")
    assert groups == {0.7: {"q1": {"c"}}, 1.0: {"q1": {"a"}, "q2": {"d"}}, 1.3: {"q1": {"b"}}}
    table = breakdown(SIMS, make_benchmark(), "speed").set_index("group")
    assert table.loc[0.7, "mAP"] == pytest.approx(1 / 3)
    assert table.loc[1.0, "mAP"] == pytest.approx((1 + 1 / 3) / 2)
    assert table.loc[1.3, "mAP"] == pytest.approx(0.5)
    assert positive_groups(make_benchmark(), "tempo") == {0.8: {"q2": {"e"}}, 1.0: {"q1": {"a"}, "q2": {"d"}}}


def test_speed_changed_positives_include_combinations():
    bench = make_benchmark()
    changed = changed_positives(bench, "speed")
    assert changed == {"q1": {"b", "c"}}
    # q1 ranks n1, b, n2, c (a removed): (1/2 + 2/4) / 2
    assert subset_map(SIMS, bench, changed).mean_ap == pytest.approx(0.5)


def test_all_positives_reproduce_the_fivr_map():
    bench = make_benchmark()
    everything = {q: bench.relevant(q) for q in bench.query_ids}
    assert subset_map(SIMS, bench, everything).mean_ap == pytest.approx(evaluate_benchmark(SIMS, bench).mean_ap)


def test_missing_positive_counts_as_a_miss_and_missing_query_is_skipped():
    bench = make_benchmark()
    sims = {"q1": {k: v for k, v in SIMS["q1"].items() if k != "c"}}
    score = subset_map(sims, bench, {"q1": {"b", "c"}, "q2": {"e"}})
    assert score.average_precisions == {"q1": pytest.approx(0.5 / 2)}  # b at rank 2, c never found
    assert score.skipped == {"q2": "missing from the similarities"}
    assert score.positives == 2


def test_group_without_queries_is_nan_and_table_has_every_method():
    bench = make_benchmark()
    assert math.isnan(subset_map(SIMS, bench, {}).mean_ap)
    reversed_sims = {q: {v: -s for v, s in r.items()} for q, r in SIMS.items()}
    table = breakdown_table({"good": SIMS, "bad": reversed_sims}, bench, "family")
    assert list(table.index) == ["good", "bad"]
    assert (table.loc["good"] >= table.loc["bad"]).all()
    sizes = group_sizes(bench, "family")
    assert sizes.loc["noise"].tolist() == [2, 2] and sizes["positives"].sum() == 5


def test_factor_table_as_read_from_items_csv_strings():
    bench = make_benchmark()
    as_text = bench.table.astype(object).where(bench.table.notna(), "").astype(str)
    as_text["speed"] = ["", "", "", "1.300", "0.700", "", "", "", ""]
    assert positive_groups(bench, "speed", as_text) == positive_groups(bench, "speed")


def test_off_grid_factor_and_bad_inputs_raise():
    assert bin_factor(1.2999) == 1.3
    with pytest.raises(ValueError, match="not within"):
        bin_factor(1.25)
    table = make_benchmark().table.copy()
    table.loc[table["id"] == "b", "speed"] = 1.25
    with pytest.raises(ValueError, match="1.25"):
        positive_groups(make_benchmark(table), "speed")
    with pytest.raises(ValueError, match="positives missing"):
        positive_groups(make_benchmark(table[table["id"] != "e"]), "family")
    with pytest.raises(ValueError, match="unknown grouping"):
        positive_groups(make_benchmark(), "codec")
    with pytest.raises(ValueError, match="not its positives"):
        subset_map(SIMS, make_benchmark(), {"q1": {"n1"}})
    with pytest.raises(ValueError, match="not a number"):
        subset_map({"q1": {"a": np.nan}}, make_benchmark(), {"q1": {"a"}})


def test_duplicate_ranks_count_non_duplicates_at_or_above():
    ranks = duplicate_ranks(SIMS, make_benchmark())
    # q1: a first; b below n1; c below n1 and n2 (the other positives a, b do not count)
    assert ranks[("q1", "a")] == 1 and ranks[("q1", "b")] == 2 and ranks[("q1", "c")] == 3
    # q2: e below q1 (a negative for q2: not its own query); d below q1 and n1 (a, a negative here, is lower)
    assert ranks[("q2", "e")] == 2 and ranks[("q2", "d")] == 3
    tied = {"q1": {"a": 0.5, "n1": 0.5}}
    ranks = duplicate_ranks(tied, make_benchmark())
    assert ranks[("q1", "a")] == 2  # a tie counts against the copy
    assert pd.isna(ranks[("q1", "b")]) and pd.isna(ranks[("q2", "d")])  # not scored
    missed = missed_duplicates({"model": tied}, make_benchmark(), "model")
    assert list(missed["id"]) == ["a", "d", "b", "e", "c"]  # unscored pairs count as missed


def test_missed_duplicates_lists_what_the_focus_misses_with_every_rank():
    table = make_benchmark().table.assign(params=["", "", '{"snr_db": 5}', '{"factor": 1.3}', "", "", "", "", ""])
    bench = make_benchmark(table)
    perfect = {"q1": {"a": 0.9, "b": 0.9, "c": 0.9, "n1": 0.1}, "q2": {"d": 0.9, "e": 0.9, "q1": 0.1}}
    missed = missed_duplicates({"other": perfect, "model": SIMS}, bench, "model")
    assert list(missed.columns) == ["query", "id", "family", "transformation", "model", "other"]
    # b, c (q1) and d, e (q2) are missed; a is not. Family order noise, speed, tempo, combo
    assert list(missed["id"]) == ["d", "b", "e", "c"]
    assert list(missed["model"]) == [3, 2, 2, 3] and list(missed["other"]) == [1, 1, 1, 1]
    assert missed.set_index("id").loc["b", "transformation"] == '{"factor": 1.3}'
    assert missed_duplicates({"model": perfect}, bench, "model").empty
    with pytest.raises(ValueError, match="not among"):
        missed_duplicates({"model": SIMS}, bench, "best")


def test_outranking_sources_tells_the_querys_own_track_from_other_tracks():
    table = make_benchmark().table.assign(track=["t1", "t2", "t1", "t1", "t1", "t2", "t2", "t3", "t1"])
    sources = outranking_sources(SIMS, make_benchmark(table))
    # q1 (track t1): non-duplicates q2, d, e (t2), n1 (t3) and n2 (its own t1). a is outranked by nothing, b by n1,
    # c by n1 and n2. q2 (t2): non-duplicates q1, a, b, c, n2 (t1) and n1 (t3), all from other tracks; e is
    # outranked by q1, d by q1 and n1.
    assert sources.loc[OWN_TRACK].to_dict() == {"non-duplicates": 1, "outranking": 1, "duplicates outranked": 1}
    assert sources.loc[OTHER_TRACKS].to_dict() == {"non-duplicates": 10, "outranking": 5, "duplicates outranked": 4}
    with pytest.raises(ValueError, match="'track' column"):
        outranking_sources(SIMS, make_benchmark())


def test_identity_margins_set_each_querys_self_score_beside_its_worst_copy_and_best_own_track_moment():
    table = make_benchmark().table.assign(track=["t1", "t2", "t1", "t1", "t1", "t2", "t2", "t3", "t1"])
    margins = identity_margins(SIMS, {"q1": 0.55}, make_benchmark(table))
    # q1 (t1): copies a 0.9, b 0.7, c 0.5; its own track's other moment n2 scores 0.6 (its score against itself, 1.0 in
    # SIMS, is not a moment of its track); q2 (t2): copies d 0.2, e 0.9, and no other moment of t2
    assert margins.loc["q1"].to_dict() == {"self": 0.55, "lowest duplicate": 0.5, "highest own-track": 0.6,
                                           "duplicate below own-track": True, "own-track above self": True}
    assert math.isnan(margins.loc["q2", "self"]) and math.isnan(margins.loc["q2", "highest own-track"])
    assert margins.loc["q2", "lowest duplicate"] == 0.2 and not margins.loc["q2", "duplicate below own-track"]
    assert not margins.loc["q2", "own-track above self"]
    with pytest.raises(ValueError, match="'track' column"):
        identity_margins(SIMS, {}, make_benchmark())
