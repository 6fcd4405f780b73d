import numpy as np
import pytest

from ausil_lite.baselines.descriptors import ChamferBaseline, PooledBaseline
from ausil_lite.descriptors.backbone import MAC_DIM


@pytest.mark.parametrize("cls", [ChamferBaseline, PooledBaseline])
def test_duplicate_scores_above_unrelated(cls, duplicate_scores):
    duplicate, unrelated = duplicate_scores(cls())
    assert duplicate > unrelated


def test_chamfer_is_the_mean_best_cosine():
    rng = np.random.default_rng(0)
    query, candidate = rng.standard_normal((3, MAC_DIM)), rng.standard_normal((5, MAC_DIM))
    baseline = ChamferBaseline()
    q, c = baseline.from_descriptors(query), baseline.from_descriptors(candidate)
    expected = np.mean([max(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) for b in candidate) for a in query])
    assert baseline.score(q, c) == pytest.approx(expected, abs=1e-5)
    candidate_with_copy = baseline.from_descriptors(np.vstack([candidate, query]))
    assert baseline.score(q, candidate_with_copy) == pytest.approx(1.0, abs=1e-5)


def test_pooled_is_a_unit_vector_and_symmetric():
    rng = np.random.default_rng(1)
    baseline = PooledBaseline()
    a, b = baseline.from_descriptors(rng.random((4, MAC_DIM))), baseline.from_descriptors(rng.random((7, MAC_DIM)))
    assert a.shape == (MAC_DIM,) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert baseline.score(a, b) == pytest.approx(baseline.score(b, a))


@pytest.mark.parametrize("shape", [(0, MAC_DIM), (3, 10), (MAC_DIM,)])
def test_wrong_descriptor_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="MAC descriptors"):
        ChamferBaseline().from_descriptors(np.zeros(shape, np.float32))
