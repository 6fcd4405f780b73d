import numpy as np
import pytest

from ausil_lite.similarity import ChamferScorer
from ausil_lite.similarity.scoring import chunked, score_database, similarities_from_store


class _Store:
    def __init__(self, videos):
        self.videos = videos

    def load(self, vid):
        return self.videos[vid]


def _videos(n, seed=0):
    rng = np.random.default_rng(seed)
    return {f"v{i}": rng.normal(size=(int(rng.integers(3, 15)), 8)).astype(np.float32) for i in range(n)}


def test_chunked_scores_equal_pairwise_scores():
    videos = _videos(11)
    scorer = ChamferScorer("cpu")
    queries = [(q, scorer.prepare(videos[q], "query")) for q in ("v0", "v3")]
    database = [(v, scorer.prepare(x)) for v, x in videos.items()]
    chunked = score_database(scorer, queries, iter(database), chunk=4)
    for qid, q in queries:
        for vid, c in database:
            assert chunked[qid][vid] == pytest.approx(float(scorer.score_many(q, [c])[0]), abs=1e-6)
    assert list(chunked["v0"]) == list(videos)  # database order kept
    with pytest.raises(ValueError):
        score_database(scorer, [], iter(database))


def test_chunked_reads_lazily_and_keeps_every_item():
    read = []

    def stream():
        for i in range(10):
            read.append(i)
            yield i

    chunks = chunked(stream(), 4)
    assert next(chunks) == [0, 1, 2, 3] and read == [0, 1, 2, 3]  # no item read ahead of its chunk
    assert list(chunks) == [[4, 5, 6, 7], [8, 9]]
    assert list(chunked([], 4)) == []


def test_similarities_from_store():
    videos = _videos(5, seed=1)
    sims = similarities_from_store(ChamferScorer("cpu"), _Store(videos), ["v1"], list(videos), progress=False)
    assert set(sims) == {"v1"} and sims["v1"]["v1"] == pytest.approx(1.0, abs=1e-6)
