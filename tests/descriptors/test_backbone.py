import pytest
import torch

from ausil_lite.descriptors.backbone import MAC_DIM, MAC_DIMS, KumarCNN, load_backbone, mac_descriptors
from ausil_lite.errors import BackboneWeightsError


@pytest.fixture(scope="module")
def model():
    return load_backbone(seed=0, device="cpu")


def test_mac_is_2528_dimensional_with_unit_norm_blocks(model):
    macs = mac_descriptors(model, torch.randn(3, 1, 174, 128))
    assert macs.shape == (3, MAC_DIM) == (3, 2528)
    for block in torch.split(macs, list(MAC_DIMS), dim=1):
        assert torch.allclose(block.norm(dim=1), torch.ones(3), atol=1e-5)


def test_inference_reads_out_in_place_yet_gives_trainings_descriptors_bit_for_bit(model):
    x = torch.randn(3, 1, 174, 128).contiguous(memory_format=torch.channels_last)
    given = x.clone()
    with torch.inference_mode():
        fast = model.mac(x)  # each layer's output overwritten by its readout
    recorded = model.mac(x)  # autograd on: each layer read out as made, out of place
    assert recorded.requires_grad and not fast.requires_grad
    assert torch.equal(fast, recorded.detach())
    assert torch.equal(x, given)  # the segments themselves are never overwritten


def test_head_gives_audioset_probabilities(model):
    with torch.no_grad():
        probs = model(torch.randn(2, 1, 174, 128).contiguous(memory_format=torch.channels_last))
    assert probs.shape == (2, 527) and torch.all((probs >= 0) & (probs <= 1))


def test_seeded_initialisation_is_reproducible(model):
    x = torch.randn(2, 1, 174, 128)
    assert torch.equal(mac_descriptors(model, x), mac_descriptors(load_backbone(seed=0, device="cpu"), x))
    assert not torch.allclose(mac_descriptors(model, x), mac_descriptors(load_backbone(seed=1, device="cpu"), x))


def _original_like_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return KumarCNN().state_dict()


@pytest.mark.parametrize("prefix", ["", "module."])
def test_loader_round_trips_original_key_names(tmp_path, prefix):
    state = _original_like_state(7)
    assert "layer1.0.weight" in state and "layer18.1.running_var" in state and "layer19.0.bias" in state
    path = tmp_path / "mx-h64-1024_0d3-1.17.pkl"
    torch.save({prefix + k: v for k, v in state.items()}, path)
    loaded = load_backbone(path, device="cpu")
    for key, value in state.items():
        assert torch.equal(loaded.state_dict()[key].cpu(), value), key


def test_loader_names_missing_and_unexpected_keys(tmp_path):
    state = _original_like_state(0)
    del state["layer5.1.weight"]
    state["layer20.weight"] = torch.zeros(3)
    path = tmp_path / "wrong.pkl"
    torch.save(state, path)
    with pytest.raises(BackboneWeightsError, match=r"wrong\.pkl.*missing keys \['layer5\.1\.weight'\].*unexpected keys \['layer20\.weight'\]"):
        load_backbone(path)


def test_loader_names_shape_mismatch_and_garbage(tmp_path):
    state = _original_like_state(0)
    state["layer19.0.weight"] = torch.zeros(10, 1024, 1, 1)
    torch.save(state, tmp_path / "shape.pkl")
    with pytest.raises(BackboneWeightsError, match="layer19.0.weight"):
        load_backbone(tmp_path / "shape.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(BackboneWeightsError, match="junk.pkl"):
        load_backbone(tmp_path / "junk.pkl")
    with pytest.raises(BackboneWeightsError, match="absent.pkl"):
        load_backbone(tmp_path / "absent.pkl")


def test_folded_batchnorm_gives_the_same_descriptors(model):
    from torch import nn

    from ausil_lite.descriptors.backbone import fold_batchnorm

    trained_like = load_backbone(seed=3, device="cpu")
    generator = torch.Generator().manual_seed(0)
    for module in trained_like.modules():  # give BatchNorm non-trivial statistics, as trained weights have
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.uniform_(-0.2, 0.2, generator=generator)
    folded = fold_batchnorm(trained_like)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(4, 1, 174, 128)
    assert torch.allclose(mac_descriptors(trained_like, x), mac_descriptors(folded, x), atol=1e-5)
