"""The training chapter's pipeline: config validation, and a whole run on a benchmark built from tones."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ausil_lite.datasets import davr_mini as D
from ausil_lite.datasets.media import write_media
from ausil_lite.datasets.training import TrainingPool, TrainingTrack
from ausil_lite.descriptors.speeds import PENALTY_FRACTION
from ausil_lite.descriptors.store import FeatureStore, StoreError
from ausil_lite.learning.triplets import load_triplet_source, train
from ausil_lite.models.released import RELEASED_VERSION
from ausil_lite.similarity import load_model
from ausil_lite.similarity.model import read_provenance
from ausil_lite.study import pipeline as pipeline_module
from ausil_lite.study.pipeline import (
    OFFERED_CLIPS_FILE,
    PipelineConfig,
    extraction_config,
    read_learning_curve,
    read_selfsup_loss,
    train_all,
    train_backbone,
    train_model,
    training_clips,
)
from ausil_lite.study.release import RELEASE_OPTIONS, RELEASE_SIZES, recipe_penalty, release_pipeline, train_recipe


def test_config_rejects_unknown_keys_bad_backbones_and_missing_weights(tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        PipelineConfig.from_dict({"epoch": 3})
    with pytest.raises(TypeError, match="train_pairs"):
        PipelineConfig.from_dict({"train_pairs": "10"})
    with pytest.raises(ValueError, match="unknown backbone"):
        PipelineConfig(backbones="random,vggish")
    with pytest.raises(ValueError, match="kumar2018_weights"):
        PipelineConfig(backbones="kumar2018")
    with pytest.raises(FileNotFoundError, match="nowhere.pkl"):
        PipelineConfig(kumar2018_weights=str(tmp_path / "nowhere.pkl"))
    with pytest.raises(ValueError, match="speed_pairs"):
        PipelineConfig(speed_pairs=-1)
    with pytest.raises(ValueError, match="at least one"):
        PipelineConfig(backbones=" , ")
    with pytest.raises(ValueError, match="max_segments|at least"):
        PipelineConfig(epochs=0)
    with pytest.raises(ValueError, match="severe_positives"):
        PipelineConfig(severe_positives=1.5)


def test_severe_positives_give_their_triplets_another_key_and_none_keep_the_old_one():
    pool = TrainingPool([TrainingTrack(f"pkg:{n}", f"/nowhere/{n}.ogg", 60.0) for n in "ab"])
    extraction = extraction_config(PipelineConfig(), "random")
    key = lambda **options: pipeline_module._source_key(PipelineConfig(**options), extraction, pool)  # noqa: E731
    assert key() == key(severe_positives=0.0) != key(severe_positives=0.25) != key(severe_positives=0.5)


def test_backbones_in_order_kumar_joins_with_weights_and_paths_follow_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("AUSIL_DATA", str(tmp_path))
    weights = tmp_path / "mx.pkl"
    weights.write_bytes(b"stand-in")
    config = PipelineConfig(profile="ci", backbones="selfsup, random,selfsup", kumar2018_weights=str(weights))
    assert config.backbone_names == ("selfsup", "random", "kumar2018")
    assert config.benchmark_root == tmp_path / "davr-mini" / "ci"
    assert config.store_dir("random") == tmp_path / "features" / "davr-mini-ci" / "random"
    assert config.model_dir("selfsup") == tmp_path / "models" / "ci" / "ausil-selfsup"
    assert PipelineConfig(profile="x", models_dir=str(tmp_path / "m")).selfsup_dir == tmp_path / "m" / "selfsup"


def test_the_released_backbone_is_extracted_with_its_shipped_version_and_never_trained():
    config = PipelineConfig(backbones="random,released,selfsup", seed=3)
    assert config.backbone_names == ("random", "released", "selfsup")
    assert config.trained_backbone_names == ("random", "selfsup")
    released = extraction_config(config, "released")
    assert (released.backbone, released.weights, released.model_version) == ("released", None, RELEASED_VERSION)
    assert released.seed == 0 and extraction_config(config, "random").seed == 3  # the seed its network records
    with pytest.raises(ValueError, match="ships its trained network"):
        train_model(config, released)


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    """A DAVR-mini built from generated warbling tones: two packages of four 30-s tracks (one of each
    package trains), two queries with three positives and one hard negative each."""
    base = tmp_path_factory.mktemp("pipeline")
    rng = np.random.default_rng(5)
    for package in ("alpha", "beta"):
        for i in range(4):
            t = np.arange(30 * 16_000) / 16_000
            f0 = rng.uniform(200, 800)
            wave = np.sin(2 * np.pi * f0 * t * (1 + 0.1 * np.sin(t))) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
            write_media(base / "src" / package / f"track{i}.flac", (0.4 * wave).astype(np.float32), 16_000)
    config = D.DavrMiniConfig(n_queries=2, n_database=10, query_s=(8.0, 9.0), distractor_s=(8.0, 9.0),
                              positives_per_query=3, hard_negatives_per_query=1, families=("gain", "speed", "crop"))
    D.build_davr_mini("test", 3, root=base / "bench", source_dirs=[base / "src"], include_default=False,
                      config=config, workers=1)
    return base


def tiny_config(base, **changes) -> PipelineConfig:
    values = dict(
        profile="test", device="cpu", benchmark_dir=str(base / "bench"), features_dir=str(base / "features"),
        models_dir=str(base / "models"), backbones="random,selfsup", workers=0,
        selfsup_epochs=1, selfsup_steps=2, selfsup_batch_size=4, selfsup_clip_s=20.0,
        train_pairs=4, train_negatives=3, train_clip_s=6.0, speed_pairs=2, epochs=2, batch_size=4, hard_pool=3,
    )
    return PipelineConfig.from_dict({**values, **changes})


@pytest.mark.slow
def test_train_all_then_a_rerun_reuses_everything_and_more_epochs_resume(benchmark):
    config = tiny_config(benchmark)
    first = train_all(config, log=None, progress=False)
    bench = D.load_davr_mini(config.benchmark_root)
    assert first.selfsup_weights.is_file() and first.selfsup_weights.name.startswith("backbone-")
    assert len(read_selfsup_loss(config.selfsup_dir).query("split == 'probe'")) == 2  # before and after epoch 1
    for backbone in ("random", "selfsup"):
        run = first.runs[backbone]
        assert set(run.store.ids()) == set(bench.queries()) | set(bench.database())
        assert run.store.load(bench.queries()[0]).shape[1] == 2528
        assert list(run.curve["epoch"]) == [1, 2] and np.isfinite(run.curve["loss"]).all()
        assert run.triplets["pairs"] == 4 + 2 and run.triplets["negatives"] == 4 + 3 + 2  # anchors are negatives too
        assert run.triplets["families"]["speed"] >= 2 and run.triplets["speed_pairs"] >= 2
        model = load_model(run.model_dir, "cpu")
        q, c = bench.queries()[0], bench.relevant(bench.queries()[0]).pop()
        assert -1.0 <= model.similarity(run.store.load(q), run.store.load(c)) <= 1.0
    assert first.runs["selfsup"].extraction.weights == str(first.selfsup_weights)
    assert not np.allclose(first.runs["random"].store.load(q), first.runs["selfsup"].store.load(q))

    triplet_files = sorted(config.model_dir("random").glob("triplets-*.npz"))
    stamps = [p.stat().st_mtime_ns for p in triplet_files]
    again = train_all(config, log=None, progress=False)
    assert again.selfsup_weights == first.selfsup_weights
    for backbone in ("random", "selfsup"):
        assert again.runs[backbone].extraction_summary.extracted == 0
        assert again.runs[backbone].curve.equals(first.runs[backbone].curve)
    assert [p.stat().st_mtime_ns for p in sorted(config.model_dir("random").glob("triplets-*.npz"))] == stamps

    longer = dataclasses.replace(config, backbones="random", epochs=3)
    resumed = train_all(longer, log=None, progress=False).runs["random"].curve
    assert list(resumed["epoch"]) == [1, 2, 3]
    assert resumed.iloc[:2].equals(first.runs["random"].curve)
    assert read_learning_curve(config.model_dir("random")).equals(resumed)


@pytest.mark.slow
def test_other_training_settings_train_anew_keeping_the_old_model_and_another_store_is_refused(benchmark):
    config = tiny_config(benchmark, models_dir=str(benchmark / "models-b"), backbones="random")
    train_all(config, log=None, progress=False)
    old = read_provenance(config.model_dir("random"))
    messages = []
    train_all(dataclasses.replace(config, margin=0.3), log=messages.append, progress=False)  # a profile edit
    assert read_provenance(config.model_dir("random"))["config"]["margin"] == 0.3
    kept = sorted(config.models_root.glob("ausil-random.replaced-*"))
    assert len(kept) == 1 and read_provenance(kept[0]) == old
    assert any("moved to" in m and "ausil-random" in m for m in messages)
    with pytest.raises(ValueError, match="checkpoint.pt: made with"):  # training itself still refuses to mix runs
        train(load_triplet_source(next(config.model_dir("random").glob("triplets-*.npz"))),
              dataclasses.replace(config.training_config(), margin=0.1), config.model_dir("random"), progress=False)
    ids = set(FeatureStore(config.store_dir("random")).ids())
    with pytest.raises(StoreError, match="made with"):  # the store itself still refuses other descriptors
        FeatureStore(config.store_dir("random")).bind(dataclasses.replace(
            train_all(config, log=None, progress=False).runs["random"].extraction, seed=1))
    reseeded = train_all(dataclasses.replace(config, seed=1), log=messages.append, progress=False).runs["random"]
    assert reseeded.extraction.seed == 1 and reseeded.extraction_summary.extracted == len(ids)
    kept_stores = sorted(config.features_root.glob("random.replaced-*"))
    assert len(kept_stores) == 1 and set(FeatureStore(kept_stores[0]).ids()) == ids  # set aside, not lost


@pytest.mark.slow
def test_other_selfsup_settings_set_the_backbone_and_its_descriptors_aside(benchmark):
    config = tiny_config(benchmark, models_dir=str(benchmark / "models-c"), features_dir=str(benchmark / "features-c"),
                         backbones="selfsup")
    first = train_all(config, log=None, progress=False)
    messages = []
    second = train_all(dataclasses.replace(config, selfsup_steps=3), log=messages.append, progress=False)
    assert second.selfsup_weights != first.selfsup_weights
    assert len(read_selfsup_loss(config.selfsup_dir).query("split == 'train'")) == 3
    kept = sorted(config.models_root.glob("selfsup.replaced-*"))
    assert len(kept) == 1 and (kept[0] / first.selfsup_weights.name).is_file()
    for store in ("selfsup", "selfsup-speeds"):
        assert len(sorted(config.features_root.glob(f"{store}.replaced-*"))) == 1
        assert FeatureStore(config.store_dir(store)).mismatch(second.runs["selfsup"].extraction) is None
    assert second.runs["selfsup"].extraction_summary.extracted == len(first.runs["selfsup"].store.ids())
    assert any("selfsup/checkpoint.pt: made with other settings ['steps_per_epoch']" in m for m in messages)


@pytest.mark.slow
def test_a_benchmark_with_missing_media_is_refused_before_extraction(benchmark, tmp_path):
    import shutil

    copy = tmp_path / "bench"
    shutil.copytree(benchmark / "bench", copy)
    victim = sorted((copy / "media").iterdir())[0]
    victim.unlink()
    config = tiny_config(benchmark, benchmark_dir=str(copy), features_dir=str(tmp_path / "features"), backbones="random")
    with pytest.raises(FileNotFoundError, match=f"1 videos have no media \\(e.g. {victim.stem}\\)"):
        train_all(config, log=None, progress=False)
    assert not (tmp_path / "features" / "random").exists()


def test_a_track_whose_clip_is_silent_is_left_out_and_the_rest_still_load(tmp_path, capsys):
    rate = 44_100
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(5 * rate) / rate)).astype(np.float32)
    paused = np.concatenate([tone, np.zeros(20 * rate, np.float32), tone])  # a sound effect with a long pause
    tracks = [TrainingTrack("paused", write_media(tmp_path / "paused.wav", paused, rate), 30.0),
              TrainingTrack("tone", write_media(tmp_path / "tone.wav", np.tile(tone, 6), rate), 30.0)]
    clips = training_clips(TrainingPool(tracks), clip_s=10.0, progress=False)
    assert list(clips) == ["tone"] and clips["tone"].size == 10 * rate
    assert "left out paused" in capsys.readouterr().out


@pytest.mark.slow
def test_a_finished_backbone_is_reused_without_decoding_its_clips_until_its_settings_change(benchmark, monkeypatch):
    config = tiny_config(benchmark, models_dir=str(benchmark / "models-d"))
    first = train_backbone(config, log=None)
    offered = json.loads((config.selfsup_dir / OFFERED_CLIPS_FILE).read_text())
    assert offered["clips"] == offered["offered"] == sorted(t.id for t in TrainingPool.from_benchmark(benchmark / "bench").tracks)

    def decode(*args, **kwargs):
        raise AssertionError("decoded the training clips")

    monkeypatch.setattr(pipeline_module, "training_clips", decode)
    messages = []
    assert train_backbone(config, log=messages.append) == first
    assert messages == [f"self-supervised backbone: reusing the finished run in {config.selfsup_dir}"]
    for changed in (dict(selfsup_clip_s=15.0), dict(selfsup_epochs=2), dict(selfsup_steps=3)):
        with pytest.raises(AssertionError, match="decoded"):  # another clip length or more training: clips needed
            train_backbone(dataclasses.replace(config, **changed), log=None)
    (config.selfsup_dir / OFFERED_CLIPS_FILE).unlink()  # a run from before the record: its clips decide, as before
    with pytest.raises(AssertionError, match="decoded"):
        train_backbone(config, log=None)


@pytest.mark.slow
def test_train_all_extracts_the_released_backbone_beside_the_trained_ones(benchmark, released_model):
    config = tiny_config(benchmark, features_dir=str(benchmark / "features-r"), models_dir=str(benchmark / "models-r"),
                         backbones="released", speed_hypotheses=2)
    run = train_all(config, log=None, progress=False).runs["released"]
    bench = D.load_davr_mini(config.benchmark_root)
    assert set(run.store.ids()) == set(bench.queries()) | set(bench.database())
    assert run.model_dir is None and run.curve is None and run.train_s == 0.0
    assert FeatureStore(config.store_dir("released-speeds")).ids()  # the queries' speed variants, for ausil-released-speeds
    assert not config.models_root.exists()  # nothing trained, nothing written beside the study's models


@pytest.mark.slow
def test_the_release_recipe_trains_on_any_tracks_folder_and_a_rerun_reuses_it(benchmark):
    tiny = dict(device="cpu", selfsup_epochs=1, selfsup_steps=2, selfsup_batch_size=4, selfsup_clip_s=20.0,
                train_pairs=4, train_negatives=3, train_clip_s=6.0, speed_pairs=2, epochs=2, batch_size=4)
    pipeline = release_pipeline(benchmark / "bench", benchmark / "models-recipe", seed=2, **tiny)
    assert (pipeline.benchmark_root, pipeline.backbone_names, pipeline.seed) == (benchmark / "bench", ("selfsup",), 2)
    assert release_pipeline(benchmark, benchmark).learning_rate == RELEASE_SIZES["learning_rate"]  # not the profiles'
    assert all(getattr(pipeline, k) == v for k, v in RELEASE_OPTIONS.items())
    first = train_recipe(pipeline, log=None)
    assert first.weights.parent == pipeline.selfsup_dir and first.triplets["training_tracks"] == 2
    assert list(first.curve["epoch"]) == [1, 2]
    assert load_model(pipeline.model_dir("selfsup"), "cpu") is not None
    again = train_recipe(pipeline, log=None)
    assert again.weights == first.weights and again.curve.equals(first.curve) and again.triplets == first.triplets
    # the penalty is the trained network's, measured on the triplets it trained on: a fraction of its score gap,
    # small after two steps of training
    assert 0 < recipe_penalty(first) < PENALTY_FRACTION


@pytest.mark.slow
def test_a_release_on_a_shipped_backbone_trains_only_the_network_on_that_versions_descriptors(benchmark, released_model):
    tiny = dict(device="cpu", train_pairs=3, train_negatives=2, train_clip_s=6.0, speed_pairs=0, epochs=1, batch_size=4)
    pipeline = release_pipeline(benchmark / "bench", benchmark / "models-shipped", seed=4, **tiny)
    trained = train_recipe(pipeline, log=None, backbone_of=RELEASED_VERSION)
    assert trained.weights == released_model / "backbone.pt"
    assert trained.model_dir == pipeline.model_dir("released") and not pipeline.selfsup_dir.exists()
    extraction = read_provenance(trained.model_dir)["data"]["extraction"]
    assert (extraction["backbone"], extraction["model_version"]) == ("released", RELEASED_VERSION)
    assert read_provenance(trained.model_dir)["config"]["identity_weight"] == RELEASE_OPTIONS["identity_weight"]
    assert 0 < recipe_penalty(trained) < PENALTY_FRACTION
