"""Index mechanics on synthetic descriptors: build, update, atomic replace, integrity, concurrency."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import pytest

from ausil_lite.descriptors.extraction import ExtractionConfig
from ausil_lite.descriptors.speeds import VARIANT_PENALTY
from ausil_lite.errors import InputError
from ausil_lite.models.released import RELEASED_VERSION

from ausil_lite.search import update as update_module
from ausil_lite.search.index import IndexCorruptError, NoIndexError, SearchIndex, current_version
from ausil_lite.search.query import QueryConfig, Searcher, single_threaded
from ausil_lite.search.update import IndexConfig, update_index


def query_of(tracks, vid, start=15, stop=35, seed=0):
    noise = 0.3 * np.random.default_rng(seed).standard_normal((stop - start, tracks[vid].shape[1]))
    return (tracks[vid][start:stop] + noise).astype(np.float32)


def answers(searcher, queries):
    return [[(m.id, round(m.score, 5), m.query_span, m.match_span) for m in searcher.search(q).matches] for q in queries]


def test_build_query_and_nothing_to_do_again(synthetic, tmp_path):
    store, entries, tracks = synthetic
    summary = update_index(tmp_path / "idx", entries, store)
    assert summary.version == "v000001" and summary.added == 30 and summary.segments == 30 * 40
    again = update_index(tmp_path / "idx", entries, store)
    assert again.version is None and again.unchanged == 30 and "nothing to do" in str(again)
    assert current_version(tmp_path / "idx") == "v000001"
    result = Searcher(SearchIndex.open(tmp_path / "idx")).search(query_of(tracks, "v07"), QueryConfig(top=3))
    best = result.matches[0]
    assert best.id == "v07" and best.score > 2 * result.matches[1].score
    # query segment i is track segment 15 + i; stored segment j is track segment 10 + j
    assert best.query_span[0] <= 2 and best.query_span[1] >= 18
    assert best.match_span[0] == pytest.approx(best.query_span[0] + 5) and best.match_span[1] >= 23


def test_adding_later_keeps_old_videos_and_changed_files_replace_theirs(synthetic, tmp_path):
    store, entries, tracks = synthetic
    update_index(tmp_path / "idx", entries[:20], store)
    summary = update_index(tmp_path / "idx", entries[20:], store)
    assert (summary.added, summary.videos, summary.rebuilt) == (10, 30, "")
    index = SearchIndex.open(tmp_path / "idx")
    assert len(index.manifest["shards"]) == 2 and index.stage1.ntotal == 30 * 40
    assert Searcher(index).search(query_of(tracks, "v25")).matches[0].id == "v25"
    # v03's file changed: a new id for its path, the old one is dropped and stage 1 rebuilt
    store.save("v03b", tracks["v03"][:30], "/collection/v03.mp4", 31.0)
    from ausil_lite.search.collection import MediaFile
    from pathlib import Path

    summary = update_index(tmp_path / "idx", [MediaFile("v03b", Path("/collection/v03.mp4"), 9, 9)], store, drop=["v03"])
    assert (summary.added, summary.removed, summary.videos, summary.rebuilt) == (1, 1, 30, "stage 1")
    index = SearchIndex.open(tmp_path / "idx")
    assert "v03" not in set(index.videos["id"]) and index.stage1.ntotal == 29 * 40 + 30
    assert Searcher(index).search(query_of(tracks, "v03", 5, 25)).matches[0].id == "v03b"


def test_stale_ids_are_the_edited_and_the_gone_files_of_a_collection_keyed_by_id(synthetic, tmp_path):
    from dataclasses import replace

    from ausil_lite.search.update import stale_ids

    store, entries, tracks = synthetic
    assert stale_ids(tmp_path / "idx", entries) == []  # no index yet
    update_index(tmp_path / "idx", entries, store)
    assert stale_ids(tmp_path / "idx", entries) == []
    # v01 re-rendered (same id, new time), v02 gone from the collection
    now = [replace(e, mtime_ns=e.mtime_ns + 1) if e.id == "v01" else e for e in entries if e.id != "v02"]
    assert sorted(stale_ids(tmp_path / "idx", now)) == ["v01", "v02"]
    store.save("v01", tracks["v01"][:35], "/collection/v01.mp4", 36.0)
    summary = update_index(tmp_path / "idx", now, store, drop=stale_ids(tmp_path / "idx", now))
    assert (summary.added, summary.removed, summary.videos) == (1, 2, 29)
    index = SearchIndex.open(tmp_path / "idx")
    assert "v02" not in set(index.videos["id"]) and index.embeddings(int(index.videos.index[index.videos["id"] == "v01"][0])).shape[0] == 35
    assert stale_ids(tmp_path / "idx", now) == []


def test_growth_refits_the_whitening(tmp_path, synthetic_store):
    tracks = {f"w{i}": synthetic_store.track(100 + i, 30) for i in range(12)}
    store, entries = synthetic_store(tmp_path / "store", tracks)
    update_index(tmp_path / "idx", entries[:2], store, config=IndexConfig(refit_growth=3.0))
    first = SearchIndex.open(tmp_path / "idx").manifest["whitening"]
    summary = update_index(tmp_path / "idx", entries, store)
    second = SearchIndex.open(tmp_path / "idx").manifest["whitening"]
    assert summary.rebuilt == "all"
    assert (first["fitted_segments"], second["fitted_segments"]) == (60, 360)


def test_crash_while_indexing_leaves_the_previous_index(synthetic, tmp_path, monkeypatch):
    store, entries, tracks = synthetic
    update_index(tmp_path / "idx", entries[:20], store)
    queries = [query_of(tracks, v) for v in ("v02", "v11")]
    before = answers(Searcher(SearchIndex.open(tmp_path / "idx")), queries)

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while writing stage 1")

    monkeypatch.setattr(update_module.faiss, "write_index", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        update_index(tmp_path / "idx", entries, store)
    monkeypatch.undo()
    assert current_version(tmp_path / "idx") == "v000001"
    assert answers(Searcher(SearchIndex.open(tmp_path / "idx", verify="full")), queries) == before
    assert list((tmp_path / "idx" / "versions").glob(".tmp-*"))  # the crashed writer's leftovers ...
    update_index(tmp_path / "idx", entries, store)
    assert not list((tmp_path / "idx" / "versions").glob(".tmp-*"))  # ... are removed by the next one
    assert len(SearchIndex.open(tmp_path / "idx").videos) == 30


@pytest.mark.parametrize("damage", ["truncate", "flip"])
@pytest.mark.parametrize("name", ["stage1.faiss", "videos.csv", "whitening.npz", "shard"])
def test_damaged_file_is_named(synthetic, tmp_path, damage, name):
    store, entries, _ = synthetic
    update_index(tmp_path / "idx", entries, store)
    index = SearchIndex.open(tmp_path / "idx")
    path = (tmp_path / "idx" / "shards" / next(iter(index.manifest["shards"]))) if name == "shard" else index.folder / name
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=str(path).replace(".", r"\.")):
        SearchIndex.open(tmp_path / "idx")


def test_missing_or_unreadable_index(synthetic, tmp_path):
    with pytest.raises(NoIndexError, match="no search index"):
        SearchIndex.open(tmp_path / "nothing")
    store, entries, _ = synthetic
    update_index(tmp_path / "idx", entries, store)
    manifest = SearchIndex.open(tmp_path / "idx").folder / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    with pytest.raises(IndexCorruptError, match="manifest.json"):
        SearchIndex.open(tmp_path / "idx")
    (tmp_path / "idx" / "current").write_text("garbage\n")
    with pytest.raises(IndexCorruptError, match="current"):
        SearchIndex.open(tmp_path / "idx")


def test_concurrent_queries_match_sequential_ones(synthetic, tmp_path):
    store, entries, tracks = synthetic
    update_index(tmp_path / "idx", entries, store)
    searcher = Searcher(SearchIndex.open(tmp_path / "idx"))
    queries = [query_of(tracks, f"v{i:02d}", seed=i) for i in range(0, 30, 3)]
    with single_threaded():  # as the query command runs; concurrency comes from the 4 threads below
        sequential = answers(searcher, queries)
        with ThreadPoolExecutor(4) as pool:
            concurrent = list(pool.map(lambda q: answers(searcher, [q])[0], queries * 3))
    assert concurrent == sequential * 3
    assert [a[0][0] for a in sequential] == [f"v{i:02d}" for i in range(0, 30, 3)]


def test_readers_see_a_whole_version_while_a_writer_publishes(synthetic, tmp_path):
    store, entries, tracks = synthetic
    update_index(tmp_path / "idx", entries[:15], store)
    seen = []
    with ThreadPoolExecutor(2) as pool:
        writer = pool.submit(update_index, tmp_path / "idx", entries, store)
        while not writer.done():
            index = SearchIndex.open(tmp_path / "idx", verify="full")
            seen.append(len(index.videos))
        writer.result()
    seen.append(len(SearchIndex.open(tmp_path / "idx").videos))
    assert set(seen) <= {15, 30} and seen[-1] == 30


def test_manifest_records_configs_and_provenance(synthetic, tmp_path):
    store, entries, _ = synthetic
    update_index(tmp_path / "idx", entries, store, config=IndexConfig(stage1_dim=32, stage2_dim=48))
    manifest = json.loads((SearchIndex.open(tmp_path / "idx").folder / "manifest.json").read_text())
    assert manifest["dims"] == {"stage1": 32, "stage2": 48}
    assert manifest["extraction"]["backbone"] == "random" and manifest["provenance"]["git_commit"]
    with pytest.raises(Exception, match="--rebuild"):
        update_index(tmp_path / "idx", entries, store, config=IndexConfig(stage1_dim=16))


def test_model_whitening_and_reranking(synthetic, tmp_path):
    from ausil_lite.search.rerank import ModelReranker
    from ausil_lite.similarity import AuSiL
    from ausil_lite.descriptors.whitening import PCAWhitening

    store, entries, tracks = synthetic
    training = np.concatenate([t for t in tracks.values()])
    torch.manual_seed(0)  # the untrained comparator's weights: unseeded, the ranking changed from run to run
    model_dir = AuSiL(PCAWhitening.fit(training)).save(tmp_path / "model", {"config": {}, "seed": 0})
    update_index(tmp_path / "idx", entries, store, model_dir=model_dir)
    index = SearchIndex.open(tmp_path / "idx")
    assert index.manifest["whitening"]["source"] == "model" and index.manifest["dims"]["stage2"] == training.shape[1]
    searcher = Searcher(index)
    assert isinstance(searcher.reranker, ModelReranker)
    result = searcher.search(query_of(tracks, "v12"), QueryConfig(top=3))
    assert result.reranker == "ausil" and result.matches[0].id == "v12"
    with pytest.raises(Exception, match="at least 4"):
        searcher.search(query_of(tracks, "v12", 15, 18))
    other = AuSiL(PCAWhitening.fit(training[::2])).save(tmp_path / "other", {"config": {}, "seed": 0})
    with pytest.raises(Exception, match="whitening"):
        Searcher(index, other)
    # the model retrained in place (the training chapter does this): the next update whitens everything again
    assert update_index(tmp_path / "idx", entries, store).version is None  # unchanged model: nothing to do
    AuSiL(PCAWhitening.fit(training[::3])).save(model_dir, {"config": {}, "seed": 0})
    summary = update_index(tmp_path / "idx", entries, store)
    assert summary.version is not None and summary.videos == len(entries) and summary.rebuilt == "all"
    assert Searcher(SearchIndex.open(tmp_path / "idx")).search(query_of(tracks, "v12"), QueryConfig(top=3)).matches[0].id == "v12"


def test_a_speed_variant_finds_what_the_query_as_played_misses(synthetic, tmp_path):
    """The query as played matches nothing; its 1.23x variant is v05's recording: v05 comes first,
    found by stage 1 through the variant, scored by it, with the span back in the query's time."""
    store, entries, tracks = synthetic
    update_index(tmp_path / "idx", entries, store)
    searcher = Searcher(SearchIndex.open(tmp_path / "idx"))
    unrelated = np.abs(np.random.default_rng(99).standard_normal((30, tracks["v05"].shape[1]))).astype(np.float32)
    plain = searcher.search(unrelated, QueryConfig(top=5, candidates=3))
    assert "v05" not in plain.candidate_ids
    variant = query_of(tracks, "v05", 10, 34)  # 24 segments: a 1.2311x play of the 30-segment query
    found = searcher.search(unrelated, QueryConfig(top=5, candidates=3), variants={1.2311: variant, 0.7: variant[:2]})
    best = found.matches[0]
    assert best.id == "v05" and best.speed == 1.2311 and "v05" in found.candidate_ids
    assert best.score > max(m.score for m in plain.matches)
    # the variant's span (up to its 25 s) scaled by 1.23 into the query's own 31 s
    assert 26.0 < best.query_span[1] <= plain.query_duration
    assert all(m.speed == 1.0 for m in plain.matches)
    # the variant's score counts VARIANT_PENALTY lower than the variant alone scores
    unpenalised = searcher.search(unrelated, QueryConfig(top=5, candidates=3, variant_penalty=0.0),
                                  variants={1.2311: variant})
    assert unpenalised.matches[0].id == "v05"
    assert best.score == pytest.approx(unpenalised.matches[0].score - VARIANT_PENALTY, abs=1e-5)


def test_an_index_refuses_descriptors_of_another_model_version(synthetic, synthetic_store, tmp_path):
    store, entries, tracks = synthetic
    update_index(tmp_path / "idx", entries[:20], store)
    other, more = synthetic_store(tmp_path / "other", {"w00": tracks["v00"]}, ExtractionConfig(backbone="released"))
    with pytest.raises(InputError, match=r"holds descriptors of the random backbone \(seed 0\), the store .*other "
                       f"those of the released model {RELEASED_VERSION}"):
        update_index(tmp_path / "idx", more, other)
    newer, more = synthetic_store(tmp_path / "newer", {"w00": tracks["v00"]},
                                  ExtractionConfig(backbone="released", model_version="ausil-lite-v99"))
    update_index(tmp_path / "released", more, other)
    with pytest.raises(InputError, match=f"the released model {RELEASED_VERSION}, the store .* the released model ausil-lite-v99"):
        update_index(tmp_path / "released", more, newer)


def test_speed_variants_lose_the_reranking_models_own_penalty(synthetic, tmp_path):
    """A model that records a penalty of 0 ranks as an explicit 0 does, not as the fixed 0.3."""
    from ausil_lite.similarity import AuSiL
    from ausil_lite.descriptors.whitening import PCAWhitening

    store, entries, tracks = synthetic
    torch.manual_seed(0)
    model_dir = AuSiL(PCAWhitening.fit(np.concatenate(list(tracks.values())))).save(
        tmp_path / "model", {"config": {}, "seed": 0, "variant_penalty": 0.0})
    update_index(tmp_path / "idx", entries, store, model_dir=model_dir)
    searcher = Searcher(SearchIndex.open(tmp_path / "idx"))
    assert searcher.variant_penalty == 0.0
    unrelated = np.abs(np.random.default_rng(99).standard_normal((30, tracks["v05"].shape[1]))).astype(np.float32)
    variants = {1.2311: query_of(tracks, "v05", 10, 34)}

    def ranked(penalty):
        found = searcher.search(unrelated, QueryConfig(top=5, candidates=3, variant_penalty=penalty), variants=variants)
        return [(m.id, round(m.score, 6), m.speed) for m in found.matches]

    calibrated = ranked(None)
    assert calibrated == ranked(0.0) != ranked(VARIANT_PENALTY)
    assert any(speed == 1.2311 for _, _, speed in calibrated)


def test_a_killed_writers_leftovers_go_even_when_there_is_nothing_to_add(synthetic, tmp_path):
    store, entries, _ = synthetic
    update_index(tmp_path / "idx", entries, store)
    (tmp_path / "idx" / "versions" / ".tmp-0123456789abcdef").mkdir()  # killed while writing a version
    (tmp_path / "idx" / "shards" / ".tmp-s-0123456789abcdef.npy").write_bytes(b"half a shard")
    assert update_index(tmp_path / "idx", entries, store).version is None  # nothing to do ...
    assert not list((tmp_path / "idx").glob("*/.tmp-*"))  # ... but the leftovers are gone


def test_a_second_index_run_says_it_waits_for_the_first(make_media, tmp_path, capsys):
    import subprocess
    import sys
    import time

    from ausil_lite.cli import main
    from tests.conftest import noise

    make_media("disk/a.wav", noise(3.0))
    index = tmp_path / "idx"
    index.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
         "f.write(f'pid {os.getpid()}'); f.flush(); print('held', flush=True); time.sleep(2)", str(index / ".run-lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        assert main(["index", str(tmp_path / "disk"), "--index", str(index), "--workers", "0", "--backbone", "random"]) == 0
        assert time.monotonic() - started > 1.0  # it waited for the other run
    finally:
        holder.wait(timeout=30)
    assert f"another index run (pid {holder.pid}) holds" in capsys.readouterr().err
    assert (index / ".run-lock").read_text().strip() == f"pid {os.getpid()}"
