"""End to end: ``ausil-lite index`` and ``ausil-lite query`` on a tiny real media collection."""

from __future__ import annotations

import json
import shutil

import av
import numpy as np
import pytest

from ausil_lite.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def indexed(collection, tmp_path_factory):
    index = tmp_path_factory.mktemp("index") / "idx"
    code = main(["index", str(collection / "db"), "--index", str(index), "--workers", "0", "--backbone", "random"])
    return collection, index, code


def test_index_lists_bad_files_and_indexes_the_rest(indexed, capsys):
    collection, index, code = indexed
    assert code == 1  # one bad file
    code = main(["index", str(collection / "db"), "--index", str(index)])
    out = capsys.readouterr().out
    assert code == 1
    assert "4 already indexed" in out and "nothing to do" in out and "1 other files ignored" in out
    assert f"FAILED {collection / 'db' / 'broken.mp4'}" in out and "FFmpeg cannot open it" in out
    assert (index / "current").read_text().strip() == "v000001"


def test_query_finds_the_copy_and_where(indexed, capsys):
    collection, index, _ = indexed
    assert main(["query", str(collection / "query.m4a"), "--index", str(index), "--top", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    best = result["matches"][0]
    assert best["source"].endswith("a.mp4") and len(result["matches"]) == 3
    assert best["score"] > result["matches"][1]["score"] + 0.1
    # the query copies seconds 4-12 of a.mp4
    q0, q1 = best["query_span"]
    m0, m1 = best["match_span"]
    assert q0 <= 1 and q1 >= 7 and abs((m0 - q0) - 4) <= 1 and m1 - m0 >= 6
    # the query's own extraction is timed first, then the search's stages
    assert list(result["timings_ms"])[:2] == ["extract", "stage1"] and result["timings_ms"]["extract"] > 0
    threshold = (best["score"] + result["matches"][1]["score"]) / 2
    assert main(["query", str(collection / "query.m4a"), "--index", str(index), "--threshold", str(threshold)]) == 0
    table = capsys.readouterr().out
    assert "a.mp4" in table and "b.mp4" not in table and "query span" in table and "(extract " in table


def test_added_file_updates_and_edited_file_replaces(indexed, tmp_path, capsys):
    collection, index, _ = indexed
    copy = tmp_path / "idx"
    shutil.copytree(index, copy)
    extra = tmp_path / "more"
    extra.mkdir()
    shutil.copy(collection / "db" / "b.mp4", extra / "b2.mp4")
    assert main(["index", str(extra), "--index", str(copy), "--store", str(index / "features")]) == 0
    assert "added 1, unchanged 0" in capsys.readouterr().out
    (extra / "b2.mp4").write_bytes((collection / "db" / "sub" / "d.mp3").read_bytes())
    assert main(["index", str(extra), "--index", str(copy), "--store", str(index / "features")]) == 0
    assert "added 1, unchanged 0, removed 1" in capsys.readouterr().out
    assert main(["query", str(collection / "query.m4a"), "--index", str(copy), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["matches"]) == 5


def test_query_without_audio_gets_a_clear_message(indexed, tmp_path, capsys):
    _, index, _ = indexed
    mute = tmp_path / "mute.mp4"
    with av.open(str(mute), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for _ in range(8):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode(None))
    assert main(["query", str(mute), "--index", str(index)]) == 2
    err = capsys.readouterr().err
    assert "mute.mp4: no audio stream" in err and "Traceback" not in err


def test_corrupt_index_gets_a_clear_message(indexed, tmp_path, capsys):
    collection, index, _ = indexed
    copy = tmp_path / "idx"
    shutil.copytree(index, copy)
    stage1 = copy / "versions" / "v000001" / "stage1.faiss"
    stage1.write_bytes(stage1.read_bytes()[:-10])
    assert main(["query", str(collection / "query.m4a"), "--index", str(copy)]) == 2
    assert f"{stage1}: index file truncated" in capsys.readouterr().err


def test_query_with_speeds_finds_a_sped_up_copy_and_says_at_which_speed(indexed, tmp_path, capsys):
    from ausil_lite.descriptors.audio import SAMPLE_RATE, load_audio
    from ausil_lite.datasets.transforms import apply_speed
    from ausil_lite.datasets.media import write_media
    from ausil_lite.descriptors.speeds import speed_grid

    collection, index, _ = indexed
    original = load_audio(collection / "db" / "a.mp4")
    fast = tmp_path / "fast.m4a"  # seconds 2-14 of a.mp4 played 1.3x faster
    write_media(fast, 0.8 * apply_speed(original[2 * SAMPLE_RATE : 14 * SAMPLE_RATE], SAMPLE_RATE, factor=1.3), SAMPLE_RATE)
    assert main(["query", str(fast), "--index", str(index), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)["matches"][0]
    assert main(["query", str(fast), "--index", str(index), "--speeds", "10", "--json"]) == 0
    best = json.loads(capsys.readouterr().out)["matches"][0]
    # the best of 11 speeds scores at least what the query as played does, and says which speed it was
    assert best["source"].endswith("a.mp4") and best["speed"] in speed_grid(10) and best["score"] >= plain["score"]
    stored = tmp_path / "fast.npy"
    np.save(stored, np.ones((6, 2528), np.float32))
    assert main(["query", str(stored), "--index", str(index), "--speeds", "10"]) == 2
    assert "give the media file" in capsys.readouterr().err


def test_index_and_query_default_to_the_released_model(released_model, collection, tmp_path, capsys):
    """An index built with no model option holds released descriptors, whitened and reranked by the released
    network; a query gives the scores of an index built with the released model passed explicitly."""
    from ausil_lite.descriptors.precision import default_precision
    from ausil_lite.models.released import RELEASED_VERSION
    from ausil_lite.search.index import SearchIndex
    from ausil_lite.search.query import Searcher

    db = collection / "db" / "sub"
    assert main(["index", str(db), "--index", str(tmp_path / "default"), "--workers", "0"]) == 0
    assert main(["index", str(db), "--index", str(tmp_path / "explicit"), "--workers", "0",
                 "--backbone", "released", "--model", str(released_model)]) == 0
    manifest = SearchIndex.open(tmp_path / "default").manifest
    assert manifest["extraction"]["model_version"] == RELEASED_VERSION
    assert manifest["model"] == str(released_model.resolve()) and manifest["whitening"]["source"] == "model"
    # the index is made at the default precision; queries, seconds of audio, by the full network (no compile)
    assert manifest["extraction"]["precision"] == default_precision("released", None)
    assert Searcher(SearchIndex.open(tmp_path / "default")).query_extractor().config.precision == "float32"
    capsys.readouterr()
    results = []
    for name in ("default", "explicit"):
        assert main(["query", str(db / "c.webm"), "--index", str(tmp_path / name), "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["reranker"] == "ausil"
    assert [(m["id"], m["score"]) for m in results[0]["matches"]] == [(m["id"], m["score"]) for m in results[1]["matches"]]
