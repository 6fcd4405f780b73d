"""Method planning, scoring and reuse of similarity files, on a feature store and media the tests make."""

import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from ausil_lite.baselines.descriptors import ChamferBaseline
from ausil_lite.datasets.benchmark import Benchmark
from ausil_lite.descriptors.backbone import MAC_DIM
from ausil_lite.descriptors.extraction import ExtractionConfig
from ausil_lite.descriptors.speeds import VARIANT_PENALTY, best_over_variants, variant_id
from ausil_lite.descriptors.store import FeatureStore
from ausil_lite.descriptors.whitening import PCAWhitening
from ausil_lite.evaluation.protocol import evaluate_benchmark
from ausil_lite.paths import REPO_ROOT
from ausil_lite.similarity.model import AuSiL, load_model
from ausil_lite.study.method_scores import (
    _SOURCES,
    cache_name,
    chamfer_scores,
    input_key,
    plan_methods,
    score_method,
    variant_similarities,
)

IDS = {"q1": None, "p1": "q1", "q2": None, "p2": "q2", "n1": None, "n2": None}  # id -> query it duplicates


def descriptors(seed: int, segments: int = 12) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).standard_normal((segments, MAC_DIM))).astype(np.float32)


def fake_store(root, config=ExtractionConfig()) -> FeatureStore:
    """Each positive is its query's descriptors plus a little noise; negatives are unrelated."""
    store = FeatureStore(root)
    store.bind(config)
    base = {"q1": descriptors(1), "q2": descriptors(2), "n1": descriptors(3), "n2": descriptors(4)}
    rng = np.random.default_rng(9)
    for vid, query in IDS.items():
        x = base[query] + 0.05 * rng.standard_normal(base[query].shape).astype(np.float32) if query else base[vid]
        store.save(vid, x, f"{vid}.mp4", 12.0)
    return store


def toy_benchmark(paths=None) -> Benchmark:
    annotations = {"q1": {"DA": ["p1"]}, "q2": {"DA": ["p2"]}}
    return Benchmark("toy", annotations, ["q1", "q2"], ["p1", "p2", "n1", "n2"], paths=paths or {})


def save_model(directory, extraction: ExtractionConfig) -> None:
    projection = torch.from_numpy(np.random.default_rng(0).standard_normal((MAC_DIM, 32)).astype(np.float32))
    model = AuSiL(PCAWhitening(torch.zeros(MAC_DIM), projection))  # a fitted whitening is not needed here
    model.save(directory, {"seed": 5, "epoch": 1, "data": {"extraction": dataclasses.asdict(extraction)}})


def test_plan_lists_what_can_run_and_why_the_rest_cannot(tmp_path):
    fake_store(tmp_path / "features" / "random")
    plan = plan_methods(tmp_path / "features", tmp_path / "models", tmp_path / "cache", toy_benchmark())
    assert [m.name for m in plan.methods] == ["chamfer-random", "pooled-random"]
    assert "no trained model" in plan.unavailable["ausil-random"]
    assert "no local media" in plan.unavailable["landmark"] and "chromaprint" in plan.unavailable

    save_model(tmp_path / "models" / "ausil-random", ExtractionConfig())
    plan = plan_methods(tmp_path / "features", tmp_path / "models", tmp_path / "cache", toy_benchmark(), media_baselines=())
    assert [m.name for m in plan.methods] == ["ausil-random", "chamfer-random", "pooled-random"]


def test_model_trained_on_other_descriptors_is_refused(tmp_path):
    fake_store(tmp_path / "features" / "random")
    save_model(tmp_path / "models" / "ausil-random", ExtractionConfig(seed=1))
    plan = plan_methods(tmp_path / "features", tmp_path / "models", tmp_path / "cache", toy_benchmark(), media_baselines=())
    assert "other descriptors" in plan.unavailable["ausil-random"]
    assert "ausil-random" not in [m.name for m in plan.methods]


def test_the_released_backbone_is_scored_by_the_network_its_store_version_ships(tmp_path, released_model):
    fake_store(tmp_path / "features" / "released", ExtractionConfig(backbone="released"))
    bench = toy_benchmark()
    plan = plan_methods(tmp_path / "features", tmp_path / "models", tmp_path / "cache", bench, media_baselines=())
    assert [m.name for m in plan.methods] == ["ausil-released", "chamfer-released", "pooled-released"]
    assert plan.methods[0].model_dir == str(released_model)  # the package's version folder, not models_root
    scored = score_method(plan.methods[0], bench, tmp_path / "out.json")
    assert set(scored.similarities) == {"q1", "q2"} and scored.meta["failed"] == {}

    fake_store(tmp_path / "old" / "released", ExtractionConfig(backbone="released", model_version="ausil-lite-v0"))
    plan = plan_methods(tmp_path / "old", tmp_path / "models", tmp_path / "cache", bench, media_baselines=())
    assert "ausil-lite-v0 is not in this copy" in plan.unavailable["ausil-released"]
    assert [m.name for m in plan.methods] == ["chamfer-released", "pooled-released"]


def test_store_of_another_build_is_not_used(tmp_path):
    fake_store(tmp_path / "features" / "random")
    other = Benchmark("other", {"x": {"DA": ["y"]}}, ["x"], ["y"])
    plan = plan_methods(tmp_path / "features", tmp_path / "models", tmp_path / "cache", other, media_baselines=())
    assert plan.methods == [] and "none of other's queries" in plan.unavailable["chamfer-random"]


def test_scores_are_written_reused_and_redone_when_inputs_change(tmp_path):
    store = fake_store(tmp_path / "features" / "random")
    save_model(tmp_path / "models" / "ausil-random", ExtractionConfig())
    bench = toy_benchmark()
    plan = plan_methods(tmp_path / "features", tmp_path / "models", tmp_path / "cache", bench, media_baselines=())
    out = tmp_path / "results"
    first = {m.name: score_method(m, bench, out / f"{m.name}.json") for m in plan.methods}
    for name, result in first.items():
        assert not result.reused
        written = json.loads((out / f"{name}.json").read_text())
        assert all(written[q] == pytest.approx(result.similarities[q]) for q in ("q1", "q2"))
        assert set(result.similarities) == {"q1", "q2"} and set(result.similarities["q1"]) == set(bench.database_ids)
        meta = json.loads((out / f"{name}.meta.json").read_text())
        assert meta["backbone"] == "random" and meta["failed"] == {} and meta["scored_at"][:2] == "20"
    assert first["ausil-random"].meta["seed"] == 5 and first["chamfer-random"].meta["seed"] == 0
    # the duplicates are near copies: the raw-descriptor baselines find them first
    assert evaluate_benchmark(first["chamfer-random"].similarities, bench).mean_ap == 1.0

    again = score_method(plan.methods[1], bench, out / "chamfer-random.json")
    assert again.reused and again.similarities["q2"] == pytest.approx(first["chamfer-random"].similarities["q2"])

    store.save("n2", descriptors(5), "n2.mp4", 12.0)  # the store changed: its index is part of the key
    redone = score_method(plan.methods[1], bench, out / "chamfer-random.json")
    assert not redone.reused
    assert redone.similarities["q1"]["n2"] != pytest.approx(first["chamfer-random"].similarities["q1"]["n2"])


def test_videos_missing_from_the_store_are_recorded(tmp_path):
    fake_store(tmp_path / "features" / "random")
    bench = Benchmark("toy", {"q1": {"DA": ["p1"]}}, ["q1"], ["p1", "n1", "gone"])
    plan = plan_methods(tmp_path / "features", tmp_path / "models", tmp_path / "cache", bench, media_baselines=())
    result = score_method(plan.methods[0], bench, tmp_path / "out.json")
    assert result.meta["failed"] == {"gone": "no descriptors in the store"}
    assert set(result.similarities["q1"]) == {"p1", "n1"}


def noise(seconds: float, seed: int) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * 44100))).astype(np.float32)


def test_media_baseline_fingerprints_in_threads_and_refreshes_a_rerendered_file(tmp_path, make_media):
    paths = {
        "q1": make_media("q1.wav", noise(6.0, seed=1)),
        "p1": make_media("p1.wav", 0.5 * noise(6.0, seed=1)),
        "q2": make_media("q2.wav", noise(6.0, seed=2)),
        "p2": make_media("p2.wav", noise(6.0, seed=2)),
        "n1": make_media("n1.wav", noise(6.0, seed=3)),
        "n2": make_media("n2.wav", np.sin(np.arange(6 * 44100) * 2 * np.pi * 440 / 44100).astype(np.float32)),
    }
    bench = toy_benchmark(paths)
    plan = plan_methods(tmp_path / "none", tmp_path / "models", tmp_path / "cache", bench, media_baselines=("landmark",))
    (method,) = plan.methods
    result = score_method(method, bench, tmp_path / "landmark.json", workers=2)
    assert not result.reused and set(result.similarities["q2"]) == set(bench.database_ids)
    assert result.similarities["q1"]["p1"] > result.similarities["q1"]["n1"]
    cached = sorted(p.name for p in (tmp_path / "cache" / "landmark").glob("*.npz"))
    assert cached == sorted(f"{cache_name(v, p)}.npz" for v, p in paths.items())

    os.utime(paths["n1"], ns=(1, 1))  # same id, another version of the file
    redone = score_method(method, bench, tmp_path / "landmark.json", workers=2)
    assert not redone.reused
    assert (tmp_path / "cache" / "landmark" / f"{cache_name('n1', paths['n1'])}.npz").is_file()


def test_batched_ausil_scores_equal_the_model_pair_by_pair(tmp_path):
    store = fake_store(tmp_path / "features" / "random")
    store.save("n3", descriptors(7, segments=3), "n3.mp4", 3.0)  # shorter than 10: repeated as a database video
    store.save("q3", descriptors(8, segments=2), "q3.mp4", 2.0)  # shorter than 4: cannot be a query
    save_model(tmp_path / "models" / "ausil-random", ExtractionConfig())
    bench = Benchmark("toy", {"q1": {"DA": ["p1"]}, "q3": {"DA": ["n1"]}}, ["q1", "q3"], ["p1", "n1", "n3"])
    plan = plan_methods(tmp_path / "features", tmp_path / "models", tmp_path / "cache", bench, media_baselines=())
    result = score_method(plan.methods[0], bench, tmp_path / "ausil.json")
    model = load_model(tmp_path / "models" / "ausil-random", "cpu")
    for video in ("p1", "n1", "n3"):
        assert result.similarities["q1"][video] == pytest.approx(model.similarity(store.load("q1"), store.load(video)), abs=1e-5)
    assert set(result.similarities) == {"q1"} and "at least 4 segments" in result.meta["failed"]["q3"]


def test_batched_chamfer_equals_the_baseline_pair_by_pair():
    baseline = ChamferBaseline()
    rng = np.random.default_rng(3)
    query = baseline.from_descriptors(np.abs(rng.standard_normal((7, MAC_DIM))))
    database = [baseline.from_descriptors(np.abs(rng.standard_normal((n, MAC_DIM)))) for n in (1, 5, 12, 3)]
    expected = [baseline.score(query, c) for c in database]
    assert chamfer_scores(query, database) == pytest.approx(expected, abs=1e-5)
    # chunks of at most one video each give the same numbers
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("ausil_lite.study.method_scores.CHAMFER_ROWS", 4)
        assert chamfer_scores(query, database) == pytest.approx(expected, abs=1e-5)


def test_speeds_method_scores_each_pair_by_its_best_variant_less_the_penalty(tmp_path):
    features = tmp_path / "features"
    store = fake_store(features / "random")
    save_model(tmp_path / "models" / "ausil-random", ExtractionConfig())
    speeds = FeatureStore(features / "random-speeds")
    speeds.bind(ExtractionConfig())
    # q2's variant is p1's descriptors: p1 must score with q2 as it scores with q1
    speeds.save(variant_id("q2", 1.2311), store.load("p1"), "q2.mp4", 12.0)
    bench = toy_benchmark()
    plan = plan_methods(features, tmp_path / "models", tmp_path / "cache", bench, media_baselines=())
    names = [m.name for m in plan.methods]
    assert names[:2] == ["ausil-random", "ausil-random-speeds"]
    plain, hyp = (score_method(m, bench, tmp_path / f"{m.name}.json").similarities for m in plan.methods[:2])
    assert set(hyp) == {"q1", "q2"} and hyp["q1"] == pytest.approx(plain["q1"])  # q1 has no variants
    assert plan.methods[1].variant_penalty == VARIANT_PENALTY
    # a penalty of -1 (a bonus) makes every variant win: the variant rows really are read
    bonus = dataclasses.replace(plan.methods[1], variant_penalty=-1.0)
    hyp_bonus = score_method(bonus, bench, tmp_path / "bonus.json").similarities
    model = load_model(tmp_path / "models" / "ausil-random")
    for v in bench.database_ids:
        variant = model.similarity(store.load("p1"), store.load(v))
        assert hyp["q2"][v] == pytest.approx(max(plain["q2"][v], variant - VARIANT_PENALTY), abs=1e-5)
        assert hyp_bonus["q2"][v] == pytest.approx(variant + 1.0, abs=1e-5)
    rows, failed = variant_similarities(plan.methods[1], bench)  # before the best variant is kept
    assert set(rows) == {"q1", "q2", variant_id("q2", 1.2311)} and failed == {}
    assert rows["q2"] == pytest.approx(plain["q2"])
    assert all(best_over_variants(rows)[q] == pytest.approx(hyp[q]) for q in hyp)


def test_speeds_store_of_another_backbone_is_refused(tmp_path):
    features = tmp_path / "features"
    fake_store(features / "random")
    save_model(tmp_path / "models" / "ausil-random", ExtractionConfig())
    FeatureStore(features / "random-speeds").bind(ExtractionConfig(seed=4))
    plan = plan_methods(features, tmp_path / "models", tmp_path / "cache", toy_benchmark(), media_baselines=())
    assert "another backbone" in plan.unavailable["ausil-random-speeds"]


def test_every_file_a_method_kind_is_scored_by_exists():
    missing = [f for files in _SOURCES.values() for f in files if not (REPO_ROOT / "ausil_lite" / f).is_file()]
    assert missing == []


def test_a_methods_chamfer_rule_overrides_the_models_and_is_part_of_its_key(tmp_path):
    store = fake_store(tmp_path / "features" / "random")
    save_model(tmp_path / "models" / "ausil-random", ExtractionConfig())
    bench = toy_benchmark()
    plan = plan_methods(tmp_path / "features", tmp_path / "models", tmp_path / "cache", bench, media_baselines=())
    own = plan.methods[0]
    symmetric = dataclasses.replace(own, name="ausil-random-symmetric", chamfer_rule="symmetric")
    scored = score_method(symmetric, bench, tmp_path / "symmetric.json")
    model = load_model(tmp_path / "models" / "ausil-random", "cpu")
    model.chamfer_rule = "symmetric"
    assert scored.similarities["q1"]["n1"] == pytest.approx(model.similarity(store.load("q1"), store.load("n1")), abs=1e-5)
    assert scored.similarities["q1"]["n1"] != pytest.approx(score_method(own, bench, tmp_path / "own.json").similarities["q1"]["n1"])
    assert input_key(symmetric, bench) != input_key(dataclasses.replace(symmetric, chamfer_rule=None), bench)
    with pytest.raises(ValueError, match="chamfer_rule is one of"):
        dataclasses.replace(plan.methods[1], chamfer_rule="symmetric")  # a chamfer baseline has no comparator map
