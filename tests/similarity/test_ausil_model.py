import numpy as np
import pytest
import torch

from ausil_lite.descriptors.whitening import PCAWhitening
from ausil_lite.errors import InputError
from ausil_lite.similarity.model import AuSiL, load_model, model_chamfer_rule, read_provenance, repeat_short

DIM = 24


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    whitening = PCAWhitening.fit(rng.random((200, DIM), dtype=np.float32))
    m = AuSiL(whitening).eval()
    with torch.no_grad():
        m.attention.context.normal_(0, 0.3)  # visible attention weights, not the near-0.5 start
    return m


def _videos(seed: int, lengths):
    rng = np.random.default_rng(seed)
    return [rng.random((n, DIM), dtype=np.float32) for n in lengths]


def test_repeat_short_doubles_like_the_original():
    x = np.arange(3)[:, None]
    assert repeat_short(x).ravel().tolist() == [0, 1, 2] * 4
    assert len(repeat_short(np.zeros((10, 2)))) == 10
    assert len(repeat_short(torch.zeros(5, 2))) == 10
    with pytest.raises(ValueError):
        repeat_short(np.zeros((0, 2)))


def test_batched_scores_equal_one_by_one(model):
    query = _videos(1, [23])[0]
    database = _videos(2, [3, 10, 41, 9, 17, 64, 2])  # includes videos repeated to >= 10
    q = model.prepare(query, "query")
    batched = model.score_many(q, [model.prepare(d) for d in database])
    single = np.array([model.similarity(query, d) for d in database])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    assert np.all(np.abs(batched) <= 1.0)


def test_short_database_video_equals_its_repetition(model):
    query, short = _videos(3, [12, 3])
    assert model.similarity(query, short) == pytest.approx(model.similarity(query, np.tile(short, (4, 1))), abs=1e-6)


def test_query_too_short_raises(model):
    query, other = _videos(4, [3, 20])
    with pytest.raises(ValueError, match="at least 4 segments"):
        model.similarity(query, other)


def test_identical_videos_score_higher_than_unrelated(model):
    query, unrelated = _videos(5, [30, 30])
    assert model.similarity(query, query) > model.similarity(query, unrelated)


def test_similarity_maps_for_figures(model):
    query, candidate = _videos(6, [16, 5])
    before, after = model.similarity_maps(query, candidate)
    assert before.shape == (16, 10) and after.shape == (4, 2)
    assert np.abs(after).max() <= 1.0
    np.testing.assert_allclose(before[:, :5], before[:, 5:10], atol=1e-6)  # the repetition is visible


def test_saved_model_reloads_to_identical_outputs(model, tmp_path):
    query, candidate = _videos(7, [14, 25])
    model.save(tmp_path / "m", {"config": {"epochs": 1}, "seed": 3, "git_commit": "abc"})
    loaded = load_model(tmp_path / "m", device="cpu")
    assert loaded.similarity(query, candidate) == model.similarity(query, candidate)
    assert read_provenance(tmp_path / "m")["seed"] == 3
    (tmp_path / "m" / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="model.pt"):
        load_model(tmp_path / "m")


def test_a_model_scores_by_the_chamfer_rule_its_folder_records(model, tmp_path):
    """A copy cut from the query: the symmetric rule finds all of it, and a folder's rule survives save and load."""
    query = _videos(8, [32])[0]
    crop = query[8:20]
    asked = model.similarity(query, crop)
    model.save(tmp_path / "q", {"seed": 0})
    assert "chamfer_rule" not in read_provenance(tmp_path / "q") and load_model(tmp_path / "q", "cpu").chamfer_rule == "query"
    symmetric = AuSiL(model.whitening, model.attention, model.comparator, chamfer_rule="symmetric").eval()
    assert symmetric.similarity(query, crop) > asked
    symmetric.save(tmp_path / "s", {"seed": 0})
    loaded = load_model(tmp_path / "s", "cpu")
    assert loaded.chamfer_rule == "symmetric" and loaded.similarity(query, crop) == pytest.approx(symmetric.similarity(query, crop))
    (tmp_path / "s" / "model.pt").unlink()  # the rule is read from config.json alone, no weights loaded
    assert model_chamfer_rule(tmp_path / "s") == "symmetric" and model_chamfer_rule(tmp_path / "q") == "query"
    (tmp_path / "s" / "config.json").write_text('{"chamfer_rule": "longest"}')
    with pytest.raises(InputError, match=r"s/config.json: chamfer_rule must be one of \['either', 'query', 'symmetric'\], got 'longest'"):
        model_chamfer_rule(tmp_path / "s")
    with pytest.raises(ValueError, match="unknown chamfer rule"):
        AuSiL(model.whitening, chamfer_rule="longest")
