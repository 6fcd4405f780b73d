import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ausil_lite.similarity.chamfer import chamfer_similarity
from ausil_lite.similarity.comparator import VideoComparator, pooled_size
from ausil_lite.similarity.matrix import pad_sequences, query_similarity_batch, similarity_matrix


def _reference_forward(comparator: VideoComparator, sim: np.ndarray) -> np.ndarray:
    """The original's layer order with NumPy's symmetric padding, one map at a time."""
    x = sim.astype(np.float32)[None, None]
    convs = (comparator.conv1, comparator.conv2, comparator.conv3)
    for i, conv in enumerate(convs):
        x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="symmetric")
        t = F.relu(conv(torch.from_numpy(x)))
        if i < 2:
            t = F.max_pool2d(t, 2, 2)
        x = t.detach().numpy()
    out = comparator.fconv(torch.from_numpy(x)).detach().numpy()[0, 0]
    return np.clip(out, -1, 1)


@pytest.fixture
def comparator():
    torch.manual_seed(0)
    return VideoComparator().eval()


def test_parameter_count_matches_the_original(comparator):
    assert sum(p.numel() for p in comparator.parameters()) == 92_801


@pytest.mark.parametrize("shape", [(4, 4), (9, 13), (16, 10), (31, 7)])
def test_matches_symmetric_padding_reference(comparator, shape):
    sim = np.random.default_rng(shape[0]).uniform(-1, 1, size=shape)
    with torch.no_grad():
        out = comparator(torch.from_numpy(sim).float()[None])[0].numpy()
    assert out.shape == (shape[0] // 4, shape[1] // 4)
    np.testing.assert_allclose(out, _reference_forward(comparator, sim), atol=1e-6)


def test_output_is_hard_tanh_of_logits(comparator):
    with torch.no_grad():
        comparator.fconv.bias.fill_(5.0)  # push every output far above 1
        sim = torch.eye(12)[None]
        logits, out = comparator.logits(sim), comparator(sim)
    assert logits.min() > 1.0
    assert torch.all(out == 1.0)


def test_zero_map_gives_a_constant_map(comparator):
    with torch.no_grad():
        out = comparator(torch.zeros(1, 16, 16))[0]
    assert out.shape == (4, 4)
    assert torch.allclose(out, out[0, 0].expand_as(out))


def test_shifted_diagonal_gives_the_identity_map_shifted(comparator):
    # away from the borders the comparator is translation-equivariant; a shift of 4 input columns
    # is one output column, since the two pools align on multiples of 4
    eye = torch.eye(32)
    shifted = torch.zeros(32, 32)
    shifted[:, 4:] = eye[:, :-4]
    with torch.no_grad():
        out_eye, out_shifted = comparator(torch.stack([eye, shifted]))
    torch.testing.assert_close(out_shifted[2:6, 3:6], out_eye[2:6, 2:5])
    assert not torch.allclose(out_shifted[2:6, 2:5], out_eye[2:6, 2:5])


def test_padded_batch_equals_one_by_one(comparator):
    torch.manual_seed(1)
    shapes = [(8, 10), (13, 23), (4, 4), (17, 9), (6, 30)]
    maps = [torch.rand(x, y) * 2 - 1 for x, y in shapes]
    batch = torch.full((len(maps), 17, 30), 7.0)  # garbage padding must not leak in
    for i, m in enumerate(maps):
        batch[i, : m.shape[0], : m.shape[1]] = m
    rows = torch.tensor([s[0] for s in shapes])
    cols = torch.tensor([s[1] for s in shapes])
    with torch.no_grad():
        out = comparator(batch, rows, cols)
        batched = chamfer_similarity(out, pooled_size(rows), pooled_size(cols))
        single = torch.stack([chamfer_similarity(comparator(m[None]))[0] for m in maps])
        for i, m in enumerate(maps):
            alone = comparator(m[None])[0]
            torch.testing.assert_close(out[i, : alone.shape[0], : alone.shape[1]], alone)
    torch.testing.assert_close(batched, single)


def test_similarity_matrix_of_padded_batch():
    torch.manual_seed(2)
    q = F.normalize(torch.randn(5, 16), dim=1)
    cands = [F.normalize(torch.randn(n, 16), dim=1) for n in (3, 7)]
    batch, lengths = pad_sequences(cands)
    sim = similarity_matrix(q, batch)
    assert sim.shape == (2, 5, 7) and lengths.tolist() == [3, 7]
    torch.testing.assert_close(sim[0, :, :3], q @ cands[0].T)
    assert torch.all(sim[0, :, 3:] == 0)
    with pytest.raises(ValueError, match="descriptor sizes"):
        similarity_matrix(q, torch.zeros(2, 8))


def test_gradients_flow_through_padded_batch(comparator):
    sim = torch.rand(2, 12, 12, requires_grad=True)
    out = comparator.logits(sim, torch.tensor([12, 8]), torch.tensor([9, 12]))
    (out[0, :3, :2].sum() + out[1, :2, :3].sum()).backward()  # valid outputs only
    assert torch.isfinite(sim.grad).all() and sim.grad[0, :, :9].abs().sum() > 0
    # the padding of each map never reaches its valid outputs
    assert torch.all(sim.grad[0, :, 9:] == 0)
    assert torch.all(sim.grad[1, 8:, :] == 0)


def test_query_similarity_batch_pads_small_matrices():
    torch.manual_seed(3)
    q = torch.randn(4, 8)
    cands = [torch.randn(2, 8), torch.randn(5, 8)]
    sim, lengths = query_similarity_batch(q, cands)
    assert sim.shape == (2, 4, 5) and lengths.tolist() == [2, 5]
    torch.testing.assert_close(sim[1], q @ cands[1].T)
    torch.testing.assert_close(sim[0, :, :2], q @ cands[0].T)
    assert torch.all(sim[0, :, 2:] == 0)
