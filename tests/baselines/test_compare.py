import json

import numpy as np
import pytest

from ausil_lite.baselines import BASELINES, make_baseline
from ausil_lite.baselines.cache import CacheError, FingerprintCache
from ausil_lite.baselines.compare import compare_videos, fingerprint_videos, similarity_json, store_fingerprints
from ausil_lite.baselines.landmark import LandmarkBaseline, LandmarkConfig
from ausil_lite.descriptors.store import FeatureStore, StoreError, extract_videos


def test_compare_videos_ranks_the_copy_first_and_records_failures(duplicate_set, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    videos = [("orig", duplicate_set["original"]), ("copy", duplicate_set["copy"]),
              ("other", duplicate_set["unrelated"]), ("bad", broken)]
    sims, failed = compare_videos(LandmarkBaseline(), videos[:1], videos, cache_root=tmp_path / "cache")
    assert list(failed) == ["bad"] and "broken.mp4" in failed["bad"]
    assert set(sims) == {"orig"} and set(sims["orig"]) == {"orig", "copy", "other"}
    assert sims["orig"]["orig"] > sims["orig"]["copy"] > sims["orig"]["other"]
    assert json.loads(json.dumps(sims)) == sims  # the original's JSON format


def test_cache_round_trips_and_records_settings(duplicate_set, tmp_path):
    for name in ("landmark", "chromaprint"):
        baseline = make_baseline(name)
        cache = FingerprintCache(tmp_path / name, baseline)
        batch = fingerprint_videos(baseline, [("orig", duplicate_set["original"])], cache)
        again = fingerprint_videos(baseline, [("orig", tmp_path / "gone.mp4")], cache)  # served from the cache
        fresh, cached = batch.fingerprints["orig"], again.fingerprints["orig"]
        assert baseline.score(fresh, cached) == pytest.approx(1.0)
        record = json.loads((tmp_path / name / "config.json").read_text())
        assert record["baseline"] == name and "git_commit" in record
        assert record["config"] == json.loads(json.dumps(baseline.config.__dict__))


def test_cache_refuses_other_settings(tmp_path):
    FingerprintCache(tmp_path, LandmarkBaseline())
    with pytest.raises(CacheError, match="fan_out"):
        FingerprintCache(tmp_path, LandmarkBaseline(LandmarkConfig(fan_out=3)))
    with pytest.raises(CacheError, match="cannot name"):
        FingerprintCache(tmp_path, LandmarkBaseline()).path("../escape")


def test_similarity_json_scores_every_pair():
    baseline = make_baseline("pooled")
    vectors = {k: baseline.from_descriptors(np.full((2, 2528), v, np.float32) + np.eye(2, 2528, k=i))
               for i, (k, v) in enumerate({"a": 1.0, "b": 2.0, "c": -1.0}.items())}
    sims = similarity_json(baseline, {"a": vectors["a"]}, vectors)
    assert set(sims["a"]) == {"a", "b", "c"} and sims["a"]["a"] == pytest.approx(1.0, abs=1e-6)
    assert sims["a"]["c"] < 0 < sims["a"]["b"]


def test_make_baseline_rejects_unknown_names_and_keys():
    assert set(BASELINES) == {"chamfer", "pooled", "landmark", "chromaprint"}
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("shazam")
    with pytest.raises(ValueError, match="fanout"):
        make_baseline("landmark", {"fanout": 3})
    with pytest.raises(TypeError, match="min_overlap_s"):
        make_baseline("chromaprint", {"min_overlap_s": "five"})


def test_store_fingerprints_need_the_same_backbone(duplicate_set, tmp_path):
    store = FeatureStore(tmp_path / "store")
    extract_videos([("orig", duplicate_set["original"]), ("copy", duplicate_set["copy"])], store, workers=0, progress=False)
    baseline = make_baseline("chamfer")
    prints = store_fingerprints(baseline, store)
    assert set(prints) == {"orig", "copy"} and baseline.score(prints["orig"], prints["orig"]) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(StoreError, match="seed"):
        store_fingerprints(make_baseline("pooled", {"seed": 7}), store)
    with pytest.raises(StoreError, match="not a feature store"):
        store_fingerprints(baseline, FeatureStore(tmp_path / "empty"))


def test_cache_accepts_other_devices_and_batch_sizes(tmp_path):
    FingerprintCache(tmp_path, make_baseline("pooled", {"device": "cpu", "batch_size": 8}))
    FingerprintCache(tmp_path, make_baseline("pooled", {"device": None, "batch_size": 64}))
    with pytest.raises(CacheError, match="pooled"):
        FingerprintCache(tmp_path, make_baseline("chamfer"))
