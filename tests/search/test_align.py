import numpy as np

from ausil_lite.search.align import aligned_span


def background(shape, seed=0):
    return 0.1 * np.random.default_rng(seed).standard_normal(shape)


def test_diagonal_copy_gives_both_spans():
    sim = background((20, 40))
    for i in range(5, 15):  # query seconds 5..16 copy match seconds 22..33
        sim[i, i + 17] = 0.9
    span = aligned_span(sim)
    assert span.query == (5.0, 16.0)
    assert span.match == (22.0, 33.0)
    assert span.pairs == 10


def test_speed_change_still_one_span():
    sim = background((30, 40), 1)
    for i in range(0, 24):  # the match runs 1.25 times slower: column advances 1.25 per row
        sim[i, int(round(3 + 1.25 * i))] = 0.8
    span = aligned_span(sim)
    assert span.query == (0.0, 25.0)
    assert span.match[0] == 3.0 and span.match[1] == float(round(3 + 1.25 * 23)) + 2


def test_isolated_chance_match_does_not_stretch_the_span():
    sim = background((30, 30), 2)
    for i in range(10, 20):
        sim[i, i] = 0.9
    sim[28, 2] = 0.95  # backwards in the match: not part of the chain
    span = aligned_span(sim)
    assert span.query == (10.0, 21.0) and span.match == (10.0, 21.0)


def test_no_structure_no_span_and_clipping():
    sim = -np.abs(background((10, 10), 3))
    assert aligned_span(sim) is None
    sim = background((6, 6), 4)
    for i in range(6):
        sim[i, i] = 1.0
    assert aligned_span(sim, query_duration=6.3, match_duration=6.3).query == (0.0, 6.3)
