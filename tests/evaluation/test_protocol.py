import json
from pathlib import Path

import numpy as np
import pytest

from ausil_lite.datasets.benchmark import read_annotation_json, read_id_list
from ausil_lite.errors import InputError
from ausil_lite.evaluation.protocol import (
    CONVENTIONS,
    RECALL_LEVELS,
    EvaluationError,
    average_precision,
    evaluate_benchmark,
    evaluate,
    interpolated_precision,
    read_similarities,
    write_similarities,
)

# query q; relevant a, b, c, m (m is in the dataset but missing from the results);
# x is not in the dataset and must be ignored; q itself appears in its own results.
DATASET = ["q", "a", "b", "c", "m", "n1", "n2", "n3"]
ANNOTATIONS = {"q": {"DA": ["a", "b", "c", "m"], "ND": ["n3"]}}
SIMILARITIES = {"q": {"q": 1.0, "x": 0.95, "a": 0.9, "n1": 0.8, "b": 0.7, "n2": 0.6, "c": 0.5, "n3": 0.4}}


def test_average_precision_by_hand():
    # ranking a n1 b n2 c n3 (q and x dropped): hits at ranks 1, 3, 5; m never retrieved
    assert average_precision(["a", "n1", "b", "n2", "c", "n3"], {"a", "b", "c", "m"}) == pytest.approx(
        (1 / 1 + 2 / 3 + 3 / 5) / 4
    )
    assert average_precision(["n1", "a"], {"a"}) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        average_precision(["a"], set())


def test_fivr_protocol_excludes_query_and_foreign_ids_and_counts_missing_as_misses():
    result = evaluate(SIMILARITIES, ANNOTATIONS, ["DA"], DATASET)
    assert result.average_precisions["q"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)
    assert result.mean_ap == pytest.approx(result.average_precisions["q"])
    assert result.relevant_counts == {"q": 4} and result.convention == "keep"


def test_relevant_labels_are_united():
    result = evaluate(SIMILARITIES, ANNOTATIONS, ["DA", "ND"], DATASET)
    # hits at ranks 1, 3, 5, 6 of 5 relevant (m missing)
    assert result.average_precisions["q"] == pytest.approx((1 + 2 / 3 + 3 / 5 + 4 / 6) / 5)


def test_remove_convention_drops_unobtainable_videos_from_ground_truth():
    result = evaluate(SIMILARITIES, ANNOTATIONS, ["DA"], DATASET, convention="remove")
    assert result.average_precisions["q"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    explicit = evaluate(SIMILARITIES, ANNOTATIONS, ["DA"], DATASET, convention="remove", available=["q", "a", "n1"])
    assert explicit.average_precisions["q"] == pytest.approx(1.0)
    assert set(CONVENTIONS) == {"keep", "remove"}
    with pytest.raises(ValueError, match="convention"):
        evaluate(SIMILARITIES, ANNOTATIONS, ["DA"], DATASET, convention="drop")


def test_skipped_queries_are_reported_not_scored():
    annotations = dict(ANNOTATIONS, absent={"DA": ["a"]}, n1={"ND": ["a"]}, outside={"DA": ["a"]})
    sims = dict(SIMILARITIES, n1={"a": 1.0}, outside={"a": 1.0})
    result = evaluate(sims, annotations, ["DA"], DATASET)
    assert list(result.average_precisions) == ["q"]
    assert set(result.skipped) == {"absent", "n1", "outside"}
    assert "missing" in result.skipped["absent"] and "no relevant" in result.skipped["n1"]
    assert "not in the dataset" in result.skipped["outside"]
    outside = {q: {"a": 1.0} for q in "xyz"}
    with pytest.raises(EvaluationError, match="3 not in the dataset"):
        evaluate(outside, {q: {"DA": ["a"]} for q in "xyz"}, ["DA"], DATASET)


def test_unknown_relevant_ids_and_missing_queries_are_listed():
    annotations = {"q": {"DA": ["a", "typo", "b"], "ND": ["other-typo"]}, "absent": {"DA": ["a"]}}
    result = evaluate(SIMILARITIES, annotations, ["DA"], DATASET)
    assert result.unknown_relevant == {"q": ["typo"]}  # an ND id outside the dataset is not relevant: not listed
    assert result.missing_queries == ["absent"]
    assert result.average_precisions["q"] == pytest.approx((1 / 1 + 2 / 3) / 2)  # a 1st, b 3rd; typo neither hit nor miss
    removed = evaluate(SIMILARITIES, annotations, ["DA"], DATASET, convention="remove", available=["q", "a"])
    assert removed.unknown_relevant == {"q": ["typo"]}  # b is a dataset id, removed as unavailable: not unknown


def test_ties_keep_file_order_and_nan_raises():
    tie_first = {"q": {"a": 0.5, "n1": 0.5}}
    tie_second = {"q": {"n1": 0.5, "a": 0.5}}
    gt = {"q": {"DA": ["a"]}}
    assert evaluate(tie_first, gt, ["DA"], ["q", "a", "n1"]).mean_ap == 1.0
    assert evaluate(tie_second, gt, ["DA"], ["q", "a", "n1"]).mean_ap == 0.5
    with pytest.raises(ValueError, match="not finite numbers"):
        evaluate({"q": {"a": float("nan")}}, gt, ["DA"], ["q", "a"])


def test_non_finite_similarities_are_named_input_errors():
    sims = {"q": {"a": 0.9, "b": float("inf"), "c": float("nan")}, "r": {"a": "high", "b": None}}
    with pytest.raises(InputError) as caught:
        evaluate(sims, {"q": {"DA": ["a"]}}, ["DA"], ["q", "r", "a", "b", "c"])
    message = str(caught.value)
    assert "4 similarity entries" in message
    for entry in ("'q' -> 'b': inf", "'q' -> 'c': nan", "'r' -> 'a': 'high'", "'r' -> 'b': None"):
        assert entry in message


def test_interpolated_precision_by_hand():
    # ranks: hit, miss, hit, miss; 3 relevant, one never scored above the rest (score 0, last)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.0])
    targets = np.array([1, 0, 1, 0, 1])
    curve = interpolated_precision(scores, targets)
    assert curve.shape == (21,)
    # recall 1/3 reached at precision 1, 2/3 at precision 2/3, 1 at precision 3/5
    expected = np.where(RECALL_LEVELS <= 1 / 3, 1.0, np.where(RECALL_LEVELS <= 2 / 3, 2 / 3, 3 / 5))
    np.testing.assert_allclose(curve, expected)


def test_interpolated_precision_matches_reference_recipe():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        scores = np.round(rng.random(n), 1)  # ties on purpose
        targets = (rng.random(n) < 0.3).astype(float)
        targets[0] = 1.0
        precision, recall, _ = metrics.precision_recall_curve(targets, scores)
        expected = [np.max(precision[np.where(recall >= i * 0.05)[0]]) for i in range(21)]
        np.testing.assert_allclose(interpolated_precision(scores, targets), expected)


def test_pr_curve_of_evaluation_pads_missing_videos_with_zero():
    result = evaluate(SIMILARITIES, ANNOTATIONS, ["DA"], DATASET)
    # 7 candidates (dataset minus q): a n1 b n2 c n3 then m, plus one padding zero as the reference
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.0, 0.0])
    targets = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(result.precision_curve, interpolated_precision(scores, targets))
    frame = result.pr_curve()
    assert list(frame.columns) == ["recall", "precision"] and len(frame) == 21
    assert result.per_query()["average_precision"].iloc[0] == pytest.approx(result.mean_ap)


def test_similarity_file_round_trips(tmp_path):
    path = write_similarities(tmp_path / "s.json", {"q": {"a": np.float32(0.5)}})
    assert read_similarities(path) == {"q": {"a": 0.5}}
    (tmp_path / "bad.json").write_text(json.dumps({"q": ["a"]}))
    with pytest.raises(ValueError, match="bad.json"):
        read_similarities(tmp_path / "bad.json")


def test_evaluate_benchmark_uses_queries_database_and_primary_label():
    from ausil_lite.datasets.benchmark import Benchmark

    bench = Benchmark(name="toy", annotations={"q": {"DA": ["a"]}, "r": {"DA": ["b"]}}, query_ids=["q", "r"],
                      database_ids=["a", "b", "c"])
    sims = {"q": {"c": 0.9, "a": 0.8, "b": 0.1}, "r": {"b": 0.7, "a": 0.2}}
    result = evaluate_benchmark(sims, bench)
    assert result.average_precisions == {"q": 0.5, "r": 1.0}
    assert result.relevant_labels == ("DA",)


FIVR = Path(__file__).resolve().parents[3] / "shared" / "data" / "fivr200k"


@pytest.mark.skipif(not (FIVR / "annotation.json").is_file(), reason="FIVR-200K annotations not in ../shared")
def test_fivr_alpha_conventions_on_the_real_annotation_file():
    annotations = read_annotation_json(FIVR / "annotation.json")
    dataset = read_id_list(FIVR / "youtube_ids.txt")
    rng = np.random.default_rng(0)
    # a perfect system that could not obtain a random fifth of each query's audio duplicates
    sims = {}
    for query, labels in annotations.items():
        if labels.get("DA"):
            sims[query] = {v: 1.0 for v in labels["DA"] if rng.random() > 0.2}
            sims[query].update({v: 0.0 for v in labels.get("CS", []) if v not in labels["DA"]})
    keep = evaluate(sims, annotations, ["DA"], dataset)
    remove = evaluate(sims, annotations, ["DA"], dataset, convention="remove")
    assert len(keep.average_precisions) == 76 and sum(keep.relevant_counts.values()) == 3397
    # found duplicates all rank first, so AP = found / relevant; "remove" keeps only the relevant
    # videos obtained for any query (a video missing here may be found through another query)
    obtained = set(sims).union(*sims.values())
    found = {q: sum(1 for v in set(annotations[q]["DA"]) if v in sims[q]) for q in sims}
    expected_keep = np.mean([found[q] / len(set(annotations[q]["DA"])) for q in sims])
    expected_remove = np.mean([found[q] / len(set(annotations[q]["DA"]) & obtained) for q in sims])
    assert keep.mean_ap == pytest.approx(expected_keep) and 0.7 < keep.mean_ap < 0.9
    assert remove.mean_ap == pytest.approx(expected_remove) and remove.mean_ap > keep.mean_ap
