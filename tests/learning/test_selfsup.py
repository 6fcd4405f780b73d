import numpy as np
import pandas as pd
import pytest
import torch

from ausil_lite.descriptors.backbone import MAC_DIMS, load_backbone
from ausil_lite.learning.selfsup import (
    InitialAnchor,
    SelfSupConfig,
    SelfSupError,
    checkpoint_mismatch,
    draw_batch,
    nt_xent,
    train_selfsup,
    transforms_augment,
)


def tones(seed: int, seconds: float = 5.0, rate: int = 44_100) -> np.ndarray:
    """A clip of random notes (0.1-0.3 s, 150-2000 Hz, two harmonics) over faint noise."""
    rng = np.random.default_rng(seed)
    parts = []
    while sum(p.size for p in parts) < seconds * rate:
        t = np.arange(int(rng.uniform(0.1, 0.3) * rate)) / rate
        f0 = rng.uniform(150, 2000)
        parts.append((np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(4 * np.pi * f0 * t)) * np.exp(-4 * t))
    x = np.concatenate(parts)[: int(seconds * rate)] + 0.01 * rng.standard_normal(int(seconds * rate))
    return (0.9 * x / np.abs(x).max()).astype(np.float32)


def gain_and_noise(samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A cheap stand-in augmentation: level change and white noise."""
    return (samples * rng.uniform(0.3, 1.0) + rng.uniform(0.01, 0.05) * rng.standard_normal(samples.size)).astype(np.float32)


CLIPS = {f"clip{i}": tones(10 + i) for i in range(8)}
# 10 steps of 4 windows: enough for the fixed probe batch's loss to fall on this seed (measured 3.8 -> 2.4)
TINY = SelfSupConfig(
    epochs=2, steps_per_epoch=5, batch_size=4, learning_rate=1e-3, temperature=0.2,
    projection_hidden=64, projection_dim=32, probe_size=16,
)


def test_nt_xent_prefers_matching_pairs():
    a = torch.eye(4, 8)
    assert nt_xent(a, a.clone(), 0.1) < nt_xent(a, a.roll(1, dims=0), 0.1)
    assert nt_xent(a, a.clone(), 0.1) < 0.01


@pytest.mark.slow
def test_short_run_lowers_the_loss_and_saves_a_loadable_backbone(tmp_path):
    backbone = train_selfsup(TINY, CLIPS, tmp_path, augment=gain_and_noise, log=None)
    curve = pd.read_csv(tmp_path / "loss.csv")
    probe = curve[curve["split"] == "probe"]["loss"].tolist()
    assert len(probe) == 3 and len(curve[curve["split"] == "train"]) == 10
    assert probe[-1] < probe[0], probe
    model = load_backbone(weights=backbone, device="cpu")
    state = torch.load(backbone, weights_only=True)
    assert "layer1.0.weight" in state
    assert torch.equal(model.state_dict()["layer18.0.weight"], state["layer18.0.weight"])
    assert not torch.equal(state["layer1.0.weight"], load_backbone(device="cpu").state_dict()["layer1.0.weight"])
    # frozen batch norm (the default): extraction normalises with the initial statistics, as training did
    assert torch.equal(state["layer5.1.running_var"], torch.ones(32)) and not state["layer5.1.running_mean"].any()
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["config"]["learning_rate"] == TINY.learning_rate and checkpoint["seed"] == TINY.seed
    assert checkpoint["git_commit"] and checkpoint["clip_ids"] == sorted(CLIPS)


def test_resume_continues_and_refuses_other_settings(tmp_path):
    one = SelfSupConfig(epochs=1, steps_per_epoch=1, batch_size=2, projection_hidden=16, projection_dim=8, probe_size=2)
    train_selfsup(one, CLIPS, tmp_path, augment=gain_and_noise, log=None)
    first = torch.load(tmp_path / "backbone.pt", weights_only=True)
    two = SelfSupConfig(**{**one.__dict__, "epochs": 2})
    train_selfsup(two, CLIPS, tmp_path, augment=gain_and_noise, log=None)
    curve = pd.read_csv(tmp_path / "loss.csv")
    assert curve["epoch"].tolist() == [0, 1, 1, 2, 2] and curve["step"].tolist() == [0, 1, 1, 2, 2]
    assert not torch.equal(first["layer2.0.weight"], torch.load(tmp_path / "backbone.pt", weights_only=True)["layer2.0.weight"])
    with pytest.raises(SelfSupError, match="learning_rate"):
        train_selfsup(SelfSupConfig(**{**two.__dict__, "learning_rate": 1e-2}), CLIPS, tmp_path, augment=gain_and_noise)
    with pytest.raises(SelfSupError, match="a run exists"):
        train_selfsup(two, CLIPS, tmp_path, augment=gain_and_noise, resume=False)
    # what a caller checks first, to set such a run aside rather than fail
    assert checkpoint_mismatch(tmp_path, two, list(CLIPS)) is None
    assert checkpoint_mismatch(tmp_path, SelfSupConfig(**{**two.__dict__, "epochs": 5}), list(CLIPS)) is None
    assert "['learning_rate']" in checkpoint_mismatch(tmp_path, SelfSupConfig(**{**two.__dict__, "learning_rate": 1e-2}), list(CLIPS))
    assert "other training clips" in checkpoint_mismatch(tmp_path, two, list(CLIPS)[:-1])
    assert checkpoint_mismatch(tmp_path / "none", two, list(CLIPS)) is None


def test_bad_training_input_is_refused(tmp_path):
    with pytest.raises(SelfSupError, match="short"):
        train_selfsup(TINY, {"short": np.ones(1000, np.float32)}, tmp_path, augment=gain_and_noise)
    with pytest.raises(SelfSupError, match="silent"):
        train_selfsup(TINY, {"quiet": np.zeros(5 * 44_100, np.float32)}, tmp_path, augment=gain_and_noise)
    with pytest.raises(ValueError, match="batch_size"):
        SelfSupConfig(batch_size=1)
    with pytest.raises(ValueError, match="freeze_batch_norm"):
        SelfSupConfig(bn_batches=2)


def test_default_augment_uses_the_dataset_transforms():
    augment = transforms_augment(CLIPS, families=("speed",), max_transforms=1)
    window = CLIPS["clip0"][: 3 * 44_100]
    out = augment(window, 44_100, np.random.default_rng(0))
    assert out.dtype == np.float32 and out.size != window.size  # speed changes the length
    with pytest.raises(ValueError, match="unknown transformation"):
        transforms_augment(CLIPS, families=("warp",))


def test_batches_do_not_depend_on_augmentation_threads():
    serial = draw_batch(CLIPS, TINY, gain_and_noise, np.random.default_rng(3), torch.device("cpu"))
    threaded_config = SelfSupConfig(**{**TINY.__dict__, "augment_workers": 3})
    threaded = draw_batch(CLIPS, threaded_config, gain_and_noise, np.random.default_rng(3), torch.device("cpu"))
    assert serial[0].shape == (TINY.batch_size, 1, 174, 128)
    assert torch.equal(serial[0], threaded[0]) and torch.equal(serial[1], threaded[1])
    assert not torch.equal(serial[0], serial[1])


def test_unfrozen_batch_norm_is_recalibrated(tmp_path):
    config = SelfSupConfig(epochs=1, steps_per_epoch=1, batch_size=2, projection_hidden=16, projection_dim=8,
                           probe_size=2, freeze_batch_norm=False, bn_batches=1)
    state = torch.load(train_selfsup(config, CLIPS, tmp_path, augment=gain_and_noise, log=None), weights_only=True)
    assert not torch.equal(state["layer5.1.running_var"], torch.ones(32))


def test_checkpoint_from_an_older_version_is_refused_by_name(tmp_path):
    one = SelfSupConfig(epochs=1, steps_per_epoch=1, batch_size=2, projection_hidden=16, projection_dim=8, probe_size=2)
    train_selfsup(one, CLIPS, tmp_path, augment=gain_and_noise, log=None)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    del state["config"]["freeze_batch_norm"]  # a setting the older version did not have
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(SelfSupError, match="freeze_batch_norm"):
        train_selfsup(SelfSupConfig(**{**one.__dict__, "epochs": 2}), CLIPS, tmp_path, augment=gain_and_noise, log=None)


def test_initial_anchor_is_zero_for_the_initial_network_and_grows_as_it_moves():
    config = SelfSupConfig(keep_initial=2.0, keep_from=13)
    model = load_backbone(seed=config.seed, device="cpu")
    anchor = InitialAnchor(model, config)
    assert anchor.start == sum(MAC_DIMS[:8]) and anchor.layers == 4  # layers 13, 14, 16, 18
    segments = torch.randn(3, 1, 174, 128)
    with torch.no_grad():
        assert float(anchor.penalty(segments, model.mac(segments))) == pytest.approx(0.0, abs=1e-5)
        model.layer13[0].weight.add_(0.05 * torch.randn_like(model.layer13[0].weight))
        moved = model.mac(segments)
    penalty = float(anchor.penalty(segments, moved))
    assert 0 < penalty <= 2.0 * 2  # weight x (1 - cosine), cosines of ReLU features are >= 0
    earlier = InitialAnchor(load_backbone(seed=config.seed, device="cpu"), SelfSupConfig(keep_initial=2.0, keep_from=16))
    with torch.no_grad():  # layer 13 moved, so the layers after it moved too, but a part covering fewer layers differs
        assert float(earlier.penalty(segments, moved)) != pytest.approx(penalty)
    with pytest.raises(ValueError, match="keep_from"):
        SelfSupConfig(keep_from=3)


@pytest.mark.slow
def test_keeping_the_initial_network_keeps_its_deep_descriptors(tmp_path):
    """The same short run with and without the anchor: with it, the deep MAC layers stay nearer the
    initial network's (what keeps the random initialisation's robustness to an added background)."""
    config = SelfSupConfig(epochs=1, steps_per_epoch=4, batch_size=4, learning_rate=3e-3, probe_size=4, keep_initial=0.0)
    segments = draw_batch(CLIPS, config, gain_and_noise, np.random.default_rng(9), torch.device("cpu"))[0]
    with torch.no_grad():
        initial = load_backbone(seed=config.seed, device="cpu").mac(segments)
    start = sum(MAC_DIMS[:6])

    def deep_cosine(run: SelfSupConfig, folder) -> float:
        weights = train_selfsup(run, CLIPS, folder, augment=gain_and_noise, log=None)
        with torch.no_grad():
            mac = load_backbone(weights, device="cpu").mac(segments)
        return float((mac[:, start:] * initial[:, start:]).sum(dim=1).mean() / 6)

    free = deep_cosine(config, tmp_path / "free")
    kept = deep_cosine(SelfSupConfig(**{**config.__dict__, "keep_initial": 5.0}), tmp_path / "kept")
    assert free < 0.999 and kept > free, (free, kept)
