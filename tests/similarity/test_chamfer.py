import numpy as np
import pytest
import torch

from ausil_lite.similarity.chamfer import ChamferScorer, chamfer_similarity, directed_chamfer


def test_identity_map_scores_one():
    assert chamfer_similarity(torch.eye(6)).item() == pytest.approx(1.0)


def test_shifted_diagonal_scores_by_rows_with_a_match():
    # query rows 0..5, candidate shifted by 2: rows 4 and 5 find nothing (0), the rest find 1
    sim = torch.diag(torch.ones(4), diagonal=2)[:6, :6]
    assert chamfer_similarity(sim).item() == pytest.approx(4 / 6)


def test_zeros_score_zero_and_max_is_over_candidate_axis():
    assert chamfer_similarity(torch.zeros(3, 5)).item() == 0.0
    sim = torch.tensor([[0.1, 0.9, -1.0], [0.5, 0.2, 0.3]])
    assert chamfer_similarity(sim).item() == pytest.approx((0.9 + 0.5) / 2)
    assert chamfer_similarity(sim.T).item() == pytest.approx((0.5 + 0.9 + 0.3) / 3)


def test_masked_batch_equals_each_map_alone():
    torch.manual_seed(0)
    maps = [torch.randn(3, 7), torch.randn(5, 2), torch.randn(1, 4)]
    batch = torch.full((3, 5, 7), 99.0)  # padding must never win the max or enter the mean
    for i, m in enumerate(maps):
        batch[i, : m.shape[0], : m.shape[1]] = m
    rows = torch.tensor([3, 5, 1])
    cols = torch.tensor([7, 2, 4])
    expected = torch.stack([chamfer_similarity(m) for m in maps])
    torch.testing.assert_close(chamfer_similarity(batch, rows, cols), expected)


def test_empty_map_raises():
    with pytest.raises(ValueError, match="empty"):
        chamfer_similarity(torch.zeros(2, 3, 3), torch.tensor([3, 0]), torch.tensor([3, 3]))


def test_chamfer_scorer_is_cosine_chamfer():
    rng = np.random.default_rng(1)
    query = rng.normal(size=(4, 8)).astype(np.float32)
    same, other = query * 3.0, rng.normal(size=(6, 8)).astype(np.float32)
    scorer = ChamferScorer("cpu")
    scores = scorer.score_many(scorer.prepare(query, "query"), [scorer.prepare(same), scorer.prepare(other)])
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    qn = query / np.linalg.norm(query, axis=1, keepdims=True)
    on = other / np.linalg.norm(other, axis=1, keepdims=True)
    assert scores[1] == pytest.approx((qn @ on.T).max(axis=1).mean(), abs=1e-6)


def test_chamfer_scorer_applies_an_embedding_after_normalising_and_keeps_its_scale():
    rng = np.random.default_rng(2)
    query, other = rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=(5, 8)).astype(np.float32)
    weigh = ChamferScorer("cpu", embed=lambda x: x * torch.arange(1, len(x) + 1)[:, None], name="weighted")
    assert weigh.name == "weighted"
    qn = query / np.linalg.norm(query, axis=1, keepdims=True) * np.arange(1, 5)[:, None]
    on = other / np.linalg.norm(other, axis=1, keepdims=True) * np.arange(1, 6)[:, None]
    assert weigh.score_many(weigh.prepare(query), [weigh.prepare(other)])[0] == pytest.approx(
        (qn @ on.T).max(axis=1).mean(), rel=1e-5)


def test_the_two_way_rules_count_a_crop_of_the_query_as_found():
    # a 12-segment query and a copy of its segments 4..7: a third of the query is found, all of the copy is
    sim = torch.zeros(12, 4)
    sim[torch.arange(4, 8), torch.arange(4)] = 1.0
    assert directed_chamfer(sim, rule="query").item() == pytest.approx(4 / 12)
    assert directed_chamfer(sim, rule="symmetric").item() == pytest.approx((4 / 12 + 1.0) / 2)
    assert directed_chamfer(sim.T, rule="symmetric").item() == pytest.approx((4 / 12 + 1.0) / 2)  # either way round
    assert directed_chamfer(sim, rule="either").item() == pytest.approx(1.0)  # the crop is found whole
    assert directed_chamfer(sim.T, rule="either").item() == pytest.approx(1.0)  # and so is the query inside a longer copy
    with pytest.raises(ValueError, match="unknown chamfer rule 'max'"):
        directed_chamfer(sim, rule="max")


def test_the_two_way_rules_mask_a_padded_batch_both_ways():
    torch.manual_seed(1)
    maps = [torch.randn(3, 7), torch.randn(5, 2), torch.randn(1, 4)]
    batch = torch.full((3, 5, 7), 99.0)
    for i, m in enumerate(maps):
        batch[i, : m.shape[0], : m.shape[1]] = m
    rows, cols = torch.tensor([m.shape[0] for m in maps]), torch.tensor([m.shape[1] for m in maps])
    alone = [(chamfer_similarity(m) + chamfer_similarity(m.T)) / 2 for m in maps]
    torch.testing.assert_close(directed_chamfer(batch, rows, cols, "symmetric"), torch.stack(alone))
    larger = [torch.maximum(chamfer_similarity(m), chamfer_similarity(m.T)) for m in maps]
    torch.testing.assert_close(directed_chamfer(batch, rows, cols, "either"), torch.stack(larger))
    torch.testing.assert_close(directed_chamfer(batch, rows, cols, "query"), chamfer_similarity(batch, rows, cols))
