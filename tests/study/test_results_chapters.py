"""The results chapters' parameters, the paper benchmarks' availability, and the tables built for them."""

import json

import pandas as pd
import pytest

from ausil_lite.config import config_from_dict
from ausil_lite.datasets.benchmark import Benchmark
from ausil_lite.descriptors.speeds import variant_id
from ausil_lite.evaluation.protocol import write_similarities
from ausil_lite.study.results_chapters import (
    DavrResultsChapter,
    SpeedChapter,
    load_similarity_files,
    paper_benchmark,
    penalty_sweep,
    pr_curves,
    speed_changed_maps,
    study_methods,
    target_checks,
)

NAN = float("nan")
CHAPTER = dict(
    profile="ci", davr_root="d", features_root="f", models_root="m", results_dir="r", cache_root="c",
    fivr_root="fv", svd_root="sv", paper_features_root="pf", backbones="random,selfsup",
    media_baselines="landmark", workers=2, device=None, force=False,
)


def test_chapter_parameters_are_checked():
    chapter = config_from_dict(DavrResultsChapter, CHAPTER)
    assert chapter.backbone_list == ("random", "selfsup") and chapter.media_list == ("landmark",)
    with pytest.raises(ValueError, match="backbone"):
        config_from_dict(DavrResultsChapter, CHAPTER | {"backbones": "randon"})
    with pytest.raises(ValueError, match="media baseline"):
        config_from_dict(DavrResultsChapter, CHAPTER | {"media_baselines": "shazam"})
    with pytest.raises(ValueError, match="unknown key"):
        config_from_dict(DavrResultsChapter, CHAPTER | {"worker": 2})
    with pytest.raises(ValueError, match="target_speed_map"):
        SpeedChapter("ci", "d", "r", 1.5)


def test_paper_benchmark_absent_then_read(tmp_path):
    bench, reason = paper_benchmark("FIVR-200K-alpha", tmp_path)
    assert bench is None and "annotation.json" in reason and "cannot be fetched" in reason
    (tmp_path / "annotation.json").write_text(json.dumps({"q": {"DA": ["v"], "ND": ["w"]}, "r": {"ND": ["v"]}}))
    (tmp_path / "youtube_ids.txt").write_text("q\nr\nv\nw\n")
    bench, reason = paper_benchmark("FIVR-200K-alpha", tmp_path)
    assert reason == "" and bench.query_ids == ["q"] and bench.missing() == ["q", "r", "v", "w"]
    (tmp_path / "annotation.json").write_text("{not json")
    bench, reason = paper_benchmark("FIVR-200K-alpha", tmp_path)
    assert bench is None and "could not be read" in reason


def toy() -> Benchmark:
    """q1: a (noise), b (speed 1.3); q2: c (gain), d (combo with speed 0.7)."""
    table = pd.DataFrame(
        [("a", "noise", NAN, NAN), ("b", "speed", 1.3, NAN), ("c", "gain", NAN, NAN), ("d", "combo", 0.7, NAN),
         ("n", "gain", NAN, NAN)],
        columns=["id", "family", "speed", "tempo"],
    )
    return Benchmark("toy", {"q1": {"DA": ["a", "b"]}, "q2": {"DA": ["c", "d"]}}, ["q1", "q2"], list("abcdn"), table=table)


PERFECT = {"q1": {"a": 0.9, "b": 0.8, "c": 0.1, "d": 0.1, "n": 0.2}, "q2": {"c": 0.9, "d": 0.8, "a": 0.1, "b": 0.1, "n": 0.2}}
# fingerprint-like: finds the untouched copies, loses the speed-changed ones below the negative
BRITTLE = {"q1": {"a": 0.9, "b": 0.0, "c": 0.1, "d": 0.1, "n": 0.2}, "q2": {"c": 0.9, "d": 0.0, "a": 0.1, "b": 0.1, "n": 0.2}}


def test_speed_changed_map_and_pr_curves():
    maps = speed_changed_maps({"perfect": PERFECT, "brittle": BRITTLE}, toy())
    assert maps["perfect"] == 1.0
    # brittle, b and d ranked after n and the other query's two videos: q1 ranks n, c, d, b -> 1/4 (a removed)
    assert maps["brittle"] == pytest.approx(0.25)
    curves = pr_curves({"perfect": PERFECT, "brittle": BRITTLE}, toy())
    assert curves.shape == (21, 2) and (curves["perfect"] == 1.0).all()
    assert curves["brittle"].iloc[0] == 1.0 and curves["brittle"].iloc[-1] < 0.6


def test_penalty_sweep_trades_chance_matches_against_speed_changed_copies():
    # q1's 1.3x variant finds b (speed 1.3) but also matches the negative n above a (noise) by chance
    variants = {"q1": {"a": 0.5, "b": 0.0, "c": 0.1, "d": 0.1, "n": 0.2}, "q2": PERFECT["q2"],
                variant_id("q1", 1.3): {"a": 0.1, "b": 0.95, "c": 0.0, "d": 0.0, "n": 0.7}}
    sweep = penalty_sweep(variants, toy(), [0.0, 0.3, float("inf")])
    assert list(sweep.index) == [0.0, 0.3, float("inf")]
    assert sweep.loc[0.0, "lowest family"] == "noise" and sweep.loc[0.0, "lowest family mAP"] == 0.5
    assert sweep.loc[0.0, "speed-changed mAP"] == 1.0
    assert (sweep.loc[0.3, ["mAP", "speed-changed mAP", "lowest family mAP"]] == 1.0).all()
    assert sweep.loc[float("inf"), "speed-changed mAP"] < 1.0 and sweep.loc[float("inf"), "lowest family"] == "speed"


def test_target_checks_name_the_best_model_and_each_bar():
    best, checks = target_checks({"ausil-x": PERFECT, "ausil-y": BRITTLE, "landmark": BRITTLE}, toy())
    assert best == "ausil-x"
    assert checks["met"].all() and checks.iloc[0]["value"] == 1.0
    best, checks = target_checks({"ausil-y": BRITTLE, "landmark": PERFECT}, toy())
    assert best == "ausil-y" and not checks["met"].any()
    assert "speed" in checks.index[1] or "combo" in checks.index[1]  # the family where the margin is least
    assert target_checks({"landmark": PERFECT}, toy())[0] is None


def test_the_study_targets_leave_out_the_released_models_methods():
    methods = {name: name for name in ("ausil-selfsup", "ausil-selfsup-speeds", "ausil-released", "ausil-released-speeds",
                                       "chamfer-released", "pooled-random", "landmark")}
    assert list(study_methods(methods)) == ["ausil-selfsup", "ausil-selfsup-speeds", "pooled-random", "landmark"]


def test_similarity_files_are_read_in_method_order(tmp_path):
    for name in ("landmark", "pooled-random", "ausil-selfsup", "chamfer-random"):
        write_similarities(tmp_path / f"{name}.json", PERFECT)
    (tmp_path / "landmark.meta.json").write_text("{}")
    assert list(load_similarity_files(tmp_path)) == ["ausil-selfsup", "chamfer-random", "pooled-random", "landmark"]
    with pytest.raises(FileNotFoundError, match="results chapter"):
        load_similarity_files(tmp_path / "empty")
