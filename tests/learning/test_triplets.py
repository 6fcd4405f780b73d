import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ausil_lite.errors import SilentAudioError
from ausil_lite.learning.triplets import (
    CHECKPOINT_FILE,
    CURVE_FILE,
    SILENT_REDRAWS,
    TrainingConfig,
    TripletSource,
    _batch_loss,
    load_triplet_source,
    mine_hard_negatives,
    redraw_silent,
    save_triplet_source,
    similarity_regularisation,
    train,
    triplet_source_from_pool,
)
from ausil_lite.similarity import load_model

DIM = 32


def _song(rng, n):
    """A random walk of segment descriptors: neighbouring segments alike, as overlapping 2-s windows are."""
    steps = rng.normal(size=(n, DIM)).astype(np.float32)
    return np.cumsum(steps, axis=0) / np.sqrt(np.arange(1, n + 1))[:, None] + 3.0


def _duplicate(rng, x, noise=0.6):
    """A distorted copy: noise, and every 5th segment dropped (a faster playback)."""
    kept = np.delete(x, np.arange(0, len(x), 5), axis=0)
    return kept + noise * rng.normal(size=kept.shape).astype(np.float32)


def _source(seed=0, pairs=10, negatives=12):
    rng = np.random.default_rng(seed)
    anchors = [_song(rng, int(rng.integers(12, 24))) for _ in range(pairs)]
    negs = [_song(rng, int(rng.integers(8, 24))) for _ in range(negatives)]
    return TripletSource([(a, _duplicate(rng, a)) for a in anchors], negs)


CONFIG = TrainingConfig(epochs=4, batch_size=8, learning_rate=3e-3, hard_pool=4, negatives_per_anchor=2,
                        max_segments=16, seed=0, device="cpu")


def test_short_run_lowers_the_loss_and_writes_a_loadable_model(tmp_path):
    source = _source()
    model, curve = train(source, CONFIG, tmp_path / "m", progress=False)
    assert curve["epoch"].tolist() == list(range(1, 5))
    assert curve["loss"].iloc[-2:].mean() < curve["loss"].iloc[:2].mean()
    assert pd.read_csv(tmp_path / "m" / CURVE_FILE)["loss"].tolist() == pytest.approx(curve["loss"].tolist())
    stored = json.loads((tmp_path / "m" / "config.json").read_text())
    assert stored["config"] == dataclasses.asdict(CONFIG) and stored["seed"] == 0 and stored["git_commit"]
    loaded = load_model(tmp_path / "m", device="cpu")
    anchor, positive = source.pairs[0]
    assert loaded.similarity(anchor, positive) == model.similarity(anchor, positive)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    source = _source(1, pairs=6, negatives=6)
    config = dataclasses.replace(CONFIG, epochs=3)
    full, full_curve = train(source, config, tmp_path / "full", progress=False)
    train(source, dataclasses.replace(config, epochs=1), tmp_path / "crash", progress=False)  # "crashes" after 1
    resumed, resumed_curve = train(source, config, tmp_path / "crash", progress=False)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)
    pd.testing.assert_frame_equal(full_curve.drop(columns="seconds"), resumed_curve.drop(columns="seconds"))
    assert torch.load(tmp_path / "crash" / CHECKPOINT_FILE, weights_only=True)["provenance"]["epoch"] == 3


def test_resume_with_another_config_raises(tmp_path):
    source = _source(2, pairs=4, negatives=4)
    train(source, dataclasses.replace(CONFIG, epochs=1), tmp_path / "m", progress=False)
    with pytest.raises(ValueError, match="another model folder"):
        train(source, dataclasses.replace(CONFIG, epochs=2, margin=0.9), tmp_path / "m", progress=False)
    with pytest.raises(ValueError, match="other training data"):
        train(_source(3, pairs=4, negatives=4), dataclasses.replace(CONFIG, epochs=2), tmp_path / "m", progress=False)


def test_a_checkpoint_from_before_the_identity_term_resumes_at_weight_zero_only(tmp_path):
    source = _source(2, pairs=4, negatives=4)
    train(source, dataclasses.replace(CONFIG, epochs=1), tmp_path / "m", progress=False)
    path = tmp_path / "m" / CHECKPOINT_FILE
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["provenance"]["config"]["identity_weight"]  # as a run made before the field existed wrote it
    torch.save(checkpoint, path)
    _, curve = train(source, dataclasses.replace(CONFIG, epochs=2), tmp_path / "m", progress=False)
    assert curve["epoch"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="another model folder"):
        train(source, dataclasses.replace(CONFIG, epochs=3, identity_weight=0.5), tmp_path / "m", progress=False)


def test_the_identity_term_asks_an_anchor_to_outscore_its_negative_against_itself(tmp_path):
    rng = np.random.default_rng(6)
    model, _ = train(_source(6, pairs=4, negatives=4), dataclasses.replace(CONFIG, epochs=1), tmp_path / "m",
                     progress=False)
    whiten = lambda x: model.whitening(torch.as_tensor(x))  # noqa: E731
    anchor, far = _song(rng, 16), _song(rng, 16)
    margin, weight = CONFIG.margin, 2.0
    with_identity = dataclasses.replace(CONFIG, identity_weight=weight)
    # the anchor as its own negative: s(a, n) = s(a, a), so the term is exactly the margin
    terms = _batch_loss(model, [(whiten(anchor), whiten(far), whiten(anchor))], with_identity)
    assert terms["identity_loss"].item() == pytest.approx(margin, abs=1e-6)
    assert terms["self_similarity"].item() == pytest.approx(terms["negative_similarity"].item(), abs=1e-6)
    plain = _batch_loss(model, [(whiten(anchor), whiten(far), whiten(anchor))], CONFIG)
    assert "identity_loss" not in plain
    # the loss adds w * margin, and the regularisation also covers the anchor's map against itself
    three_maps = plain["loss"] - CONFIG.regularisation * plain["regularisation"] \
        + CONFIG.regularisation * terms["regularisation"] + weight * margin
    assert terms["loss"].item() == pytest.approx(three_maps.item(), abs=1e-5)
    # an unrelated negative scored far below the anchor's self-score asks nothing
    terms = _batch_loss(model, [(whiten(anchor), whiten(anchor), whiten(far))], with_identity)
    expected = max(0.0, terms["negative_similarity"].item() - terms["self_similarity"].item() + margin)
    assert terms["identity_loss"].item() == pytest.approx(expected, abs=1e-6)


def test_training_with_the_identity_term_raises_the_anchors_self_scores(tmp_path):
    source = _source(7, pairs=8, negatives=8)
    config = dataclasses.replace(CONFIG, epochs=6)
    plain, _ = train(source, config, tmp_path / "plain", progress=False)
    model, curve = train(source, dataclasses.replace(config, identity_weight=1.0), tmp_path / "identity", progress=False)
    assert {"identity_loss", "self_similarity"} <= set(curve.columns)

    def self_scores(m):
        return np.array([m.similarity(a, a) for a, _ in source.pairs])

    assert self_scores(model).mean() > self_scores(plain).mean()

def test_config_rejects_unknown_keys_and_bad_values():
    assert TrainingConfig.from_dict({"epochs": 2, "margin": 1}).margin == 1
    with pytest.raises(ValueError, match="unknown"):
        TrainingConfig.from_dict({"epoch": 2})
    with pytest.raises(ValueError):
        TrainingConfig(max_segments=3)


def test_similarity_regularisation_by_hand():
    logits = torch.tensor([[[1.5, -3.0], [0.2, 9.0]], [[2.0, 0.0], [0.0, 0.0]]])
    # map 0 uses only its first row (1 row valid): 0.5 + 2.0; map 1 everything: 1.0
    value = similarity_regularisation(logits, torch.tensor([1, 2]), torch.tensor([2, 2]))
    assert value.item() == pytest.approx((2.5 + 1.0) / 2)


def test_mining_ranks_by_similarity_and_respects_groups(tmp_path):
    rng = np.random.default_rng(3)
    anchor = _song(rng, 16)
    near, far = anchor + 0.05 * rng.normal(size=anchor.shape).astype(np.float32), _song(rng, 16)
    same_group = anchor.copy()  # a duplicate of the anchor that is not labelled as its positive
    source = TripletSource([(anchor, anchor)], [far, near, same_group], pair_groups=["a"], negative_groups=["b", "c", "a"])
    model, _ = train(source, dataclasses.replace(CONFIG, epochs=1, hard_pool=3), tmp_path / "m", progress=False)
    hard = mine_hard_negatives(model, source, hard_pool=3)
    assert hard[0, 0] == 1 and 2 not in hard[0]


def test_source_validation():
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="segments"):
        TripletSource([(_song(rng, 3), _song(rng, 10))], [_song(rng, 10)])
    with pytest.raises(ValueError, match="both"):
        TripletSource([(_song(rng, 10), _song(rng, 10))], [_song(rng, 10)], pair_groups=["a"])


def test_triplet_source_round_trips_through_npz(tmp_path):
    rng = np.random.default_rng(5)
    source = TripletSource([(_song(rng, 5), _song(rng, 7)), (_song(rng, 6), _song(rng, 2))], [_song(rng, 4)],
                           pair_groups=["a", "b"], negative_groups=["c"])
    loaded = load_triplet_source(save_triplet_source(source, tmp_path / "s.npz"))
    for (a, p), (la, lp) in zip(source.pairs, loaded.pairs):
        np.testing.assert_array_equal(a, la)
        np.testing.assert_array_equal(p, lp)
    np.testing.assert_array_equal(source.negatives[0], loaded.negatives[0])
    assert list(loaded.pair_groups) == ["a", "b"] and list(loaded.negative_groups) == ["c"]


@pytest.mark.slow
def test_source_from_real_training_pool_with_transforms(tmp_path, capsys):
    from ausil_lite.datasets.training import TrainingPool, TrainingTrack
    from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor

    moh = sorted(Path("/usr/share/asterisk/moh").glob("*.wav"))[:3]
    if len(moh) < 3:
        pytest.skip("needs the Debian package asterisk-moh-opsound-wav")
    pool = TrainingPool([TrainingTrack(p.stem, p, 20.0) for p in moh])
    extractor = FeatureExtractor(ExtractionConfig(device="cpu"))
    source, records = triplet_source_from_pool(pool, extractor, pairs=2, negatives=2, duration_s=6.0, seed=0,
                                               families=("speed", "noise"), progress=True)
    err = capsys.readouterr().err  # a slow machine shows progress, not minutes of silence
    assert "triplet clips" in err and "/4 [" in err  # of 4 clips (tqdm refreshes by time: the last count may not show)
    assert len(source.pairs) == 2 and len(source.negatives) == 4  # anchors join the negatives
    assert {r["family"] for r in records} <= {"speed", "noise"}
    assert source.pairs[0][0].shape[1] == 2528
    assert source.allowed_negatives()[0, 0] == False  # noqa: E712 - an anchor is never its own negative


def test_a_silent_draw_is_drawn_again_and_a_silent_pool_is_an_error():
    outcomes = iter([SilentAudioError("a.ogg", "peak 0"), SilentAudioError("b.ogg", "peak 0"), "clip"])

    def draw():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert redraw_silent(draw) == "clip"
    calls = []

    def silent():
        calls.append(1)
        raise SilentAudioError("pause.ogg", "peak 0")

    with pytest.raises(SilentAudioError, match="pause.ogg"):
        redraw_silent(silent)
    assert len(calls) == SILENT_REDRAWS


def test_a_negative_cut_from_an_anchors_own_track_serves_that_anchor_alone_among_its_tracks_anchors(tmp_path):
    rng = np.random.default_rng(6)
    pairs = [(_song(rng, 8), _song(rng, 8)) for _ in range(3)]  # anchors 0 and 1 from track "t", 2 from "u"
    negatives = [_song(rng, 8) for _ in range(3)]  # another moment of t cut for anchor 1; a clip of t; one of "v"
    plain = TripletSource(pairs, negatives, ["t", "t", "u"], ["t", "t", "v"])
    owned = dataclasses.replace(plain, negative_owners=[1, -1, -1])
    assert owned.allowed_negatives().tolist() == [[False, False, True], [True, False, True], [True, True, True]]
    assert plain.allowed_negatives()[1, 0] == False  # noqa: E712 - without an owner the same track is refused
    assert owned.digest() != plain.digest() and plain.digest() == TripletSource(pairs, negatives, ["t", "t", "u"], ["t", "t", "v"]).digest()
    loaded = load_triplet_source(save_triplet_source(owned, tmp_path / "s.npz"))
    assert list(loaded.negative_owners) == [1, -1, -1] and loaded.digest() == owned.digest()
    assert load_triplet_source(save_triplet_source(plain, tmp_path / "p.npz")).negative_owners is None
    joined = owned.concat(owned)  # the second source's owners follow its pairs
    assert list(joined.negative_owners) == [1, -1, -1, 4, -1, -1] and len(joined.pairs) == 6
    assert list(plain.concat(owned).negative_owners) == [-1, -1, -1, 4, -1, -1] and plain.concat(plain).negative_owners is None
    with pytest.raises(ValueError, match="owner"):
        TripletSource(pairs, negatives, negative_owners=[1, -1, -1])


def _noise_pool(tmp_path, looped: bool = False):
    """Two 20-s tracks of noise (no stretch repeats another), or with ``looped`` the first one a 4-s loop."""
    from ausil_lite.datasets.media import write_media
    from ausil_lite.datasets.training import TrainingPool, TrainingTrack

    rng = np.random.default_rng(7)
    waves = [rng.normal(scale=0.2, size=20 * 16000).astype(np.float32) for _ in range(2)]
    if looped:
        waves[0] = np.tile(waves[0][: 4 * 16000], 5)
    paths = [write_media(tmp_path / f"t{i}.wav", wave, 16000) for i, wave in enumerate(waves)]
    return TrainingPool([TrainingTrack(f"t{i}", Path(path), 20.0) for i, path in enumerate(paths)])


def test_another_moment_of_a_clips_track_avoids_its_window_and_its_repeats(tmp_path):
    pool = _noise_pool(tmp_path)
    rng = np.random.default_rng(0)
    for _ in range(5):
        clip = pool.draw_clip(rng, 6.0)
        other = pool.draw_elsewhere(rng, clip)
        assert other.track == clip.track and other.samples.size == clip.samples.size
        assert other.start_s + 6.0 <= clip.start_s or other.start_s >= clip.start_s + 6.0
    (tmp_path / "loop").mkdir()
    looped = _noise_pool(tmp_path / "loop", looped=True)
    clip = next(c for c in (looped.draw_clip(rng, 6.0) for _ in range(50)) if c.track == "t0")
    assert looped.draw_elsewhere(rng, clip) is None  # every other window repeats the clip's audio


def test_same_track_negatives_join_the_source_owned_by_their_anchor(tmp_path):
    from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor

    extractor = FeatureExtractor(ExtractionConfig(device="cpu"))
    source, records = triplet_source_from_pool(_noise_pool(tmp_path), extractor, pairs=2, negatives=1, duration_s=6.0,
                                               seed=0, families=("noise",), same_track=True)
    # the anchors, then another moment of each anchor's own track, then one clip
    assert len(source.negatives) == 5 and list(source.negative_owners) == [-1, -1, 0, 1, -1]
    assert list(source.negative_groups[2:4]) == [r["track"] for r in records]
    allowed = source.allowed_negatives()
    assert allowed[0, 2] and allowed[1, 3] and not allowed[0, 0] and not allowed[1, 1]
    if records[0]["track"] == records[1]["track"]:  # another anchor's moment of the same track may hold this window
        assert not allowed[0, 3] and not allowed[1, 2]
