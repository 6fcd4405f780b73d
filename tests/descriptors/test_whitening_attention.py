import numpy as np
import torch

from ausil_lite.descriptors.attention import AttentionWeighting
from ausil_lite.descriptors.whitening import PCAWhitening


def test_whitening_decorrelates_training_data_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((16, 16))
    x = rng.standard_normal((2000, 16)) @ mixing + 3.0
    white = PCAWhitening.fit(x)
    y = white.transform(x)
    assert y.shape == (2000, 16)
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    # before the final L2 normalisation the projected training data has identity covariance
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    z = (xn - white.mean.numpy()) @ white.projection.numpy()
    assert np.allclose(np.cov(z.T), np.eye(16), atol=0.05)
    loaded = PCAWhitening.load(white.save(tmp_path / "white.npz"))
    assert np.allclose(loaded.transform(x[:5]), y[:5], atol=1e-6)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_whitening_keeps_fewer_components():
    x = np.random.default_rng(1).standard_normal((100, 8))
    assert PCAWhitening.fit(x, n_components=3).transform(x).shape == (100, 3)


def test_attention_weights_follow_the_context_vector():
    att = AttentionWeighting(dim=4)
    with torch.no_grad():
        att.context.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    x = torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    assert torch.allclose(att.weights(x), torch.tensor([1.0, 0.0, 0.5]))
    assert torch.allclose(att(x), torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, 0], [0, 0.5, 0, 0]]))
