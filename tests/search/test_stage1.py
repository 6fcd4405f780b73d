import numpy as np
import pytest

from ausil_lite.search.stage1 import Stage1Config, build_stage1, candidate_videos, compact, n_lists


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def database(n_videos, segments, dim, seed=0):
    rng = np.random.default_rng(seed)
    vectors = unit(rng.standard_normal((n_videos * segments, dim)).astype(np.float32))
    offsets = np.arange(n_videos + 1) * segments
    return vectors, offsets


def test_compact_keeps_leading_components_unit_norm():
    x = np.random.default_rng(0).standard_normal((5, 32))
    c = compact(x, 8)
    assert c.shape == (5, 8) and c.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(c, unit(x[:, :8]), rtol=1e-5)


@pytest.mark.parametrize("kind", ["flat", "sq8", "pq", "ivf-pq"])
def test_planted_copy_is_the_first_candidate(kind):
    vectors, offsets = database(120, 25, 32)
    config = Stage1Config(dim=32, kind=kind, pq_bytes=8)
    index, description = build_stage1(vectors, [vectors[:1000], vectors[1000:]], len(vectors), config)
    assert index.ntotal == len(vectors)
    target = 77
    noise = 0.05 * np.random.default_rng(1).standard_normal((10, 32)).astype(np.float32)
    query = unit(vectors[offsets[target] + 5 : offsets[target] + 15] + noise)
    rows, votes = candidate_videos(index, query, offsets, neighbours=16, candidates=10, nprobe=16)
    assert rows[0] == target, description
    assert len(rows) <= 10 and np.all(np.diff(votes) <= 0)
    # a copy covering more of the query's segments gets more votes than one covering fewer
    assert votes[0] > 3 * votes[1]


def test_votes_sum_best_similarity_per_query_segment():
    vectors = unit(np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 0]])  # video 1 holds segment 0 twice
    offsets = np.array([0, 4, 6])
    index, _ = build_stage1(vectors, [vectors], 6, Stage1Config(dim=4, kind="flat", pq_bytes=1))
    rows, votes = candidate_videos(index, vectors[:2], offsets, neighbours=6, candidates=5)
    # query segment 0 matches both videos at 1.0 (video 1 counted once), segment 1 only video 0
    assert rows.tolist() == [0, 1]
    np.testing.assert_allclose(votes, [2.0, 1.0], atol=1e-6)


def test_sizes():
    assert n_lists(6_000_000) == 2048 and n_lists(100) == 64
    assert Stage1Config().resolved_kind(10) == "sq8"
    assert Stage1Config().resolved_kind(10**7) == "ivf-pq"
    with pytest.raises(ValueError, match="divisible"):
        Stage1Config(dim=60, pq_bytes=16)


def test_single_threaded_restores_thread_counts():
    import faiss
    import torch

    from ausil_lite.search.query import single_threaded

    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    with single_threaded():
        assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == (1, 1)
    assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == before
