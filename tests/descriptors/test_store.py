import numpy as np
import pytest

from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor
from ausil_lite.descriptors.store import FeatureStore, StoreError, extract_videos
from tests.conftest import noise


@pytest.fixture
def videos(make_media, tmp_path):
    items = [(f"v{i}", make_media(f"v{i}.mp4", noise(2.0 + i, seed=i))) for i in range(4)]
    bad = tmp_path / "bad.webm"
    bad.write_bytes(b"\x00garbage" * 64)
    items.insert(2, ("bad", bad))
    items.append(("gone", tmp_path / "gone.mp4"))
    return items


@pytest.mark.parametrize("workers", [0, 1])
def test_batch_records_failures_and_finishes_the_rest(videos, tmp_path, workers):
    store = FeatureStore(tmp_path / f"store{workers}")
    summary = extract_videos(videos, store, workers=workers, progress=False)
    assert summary.extracted == 4
    assert set(summary.failed) == {"bad", "gone"}
    assert "bad.webm" in summary.failed["bad"] and "gone.mp4" in summary.failed["gone"]
    index = store.index.set_index("id")
    assert index.loc["bad", "status"] == "failed" and "bad.webm" in index.loc["bad", "error"]
    assert store.ids() == ["v0", "v1", "v2", "v3"]
    assert store.load("v3").shape == (4, 2528)  # 5 s -> 2-s windows starting at 0, 1, 2, 3 s
    assert index.loc["v3", "segments"] == 4 and index.loc["v3", "duration"] == pytest.approx(5.0, abs=0.1)
    assert "FAILED bad" in str(summary)


def test_interrupted_run_resumes_without_redoing(videos, tmp_path, monkeypatch):
    store = FeatureStore(tmp_path / "store")
    calls = []
    original = FeatureExtractor.from_file

    def crash_after_two(self, path, *args):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the machine went down mid-batch
        calls.append(path)
        return original(self, path, *args)

    monkeypatch.setattr(FeatureExtractor, "from_file", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        extract_videos(videos, store, workers=0, progress=False)
    assert store.ids() == ["v0", "v1"]
    assert store.index.set_index("id").loc["bad", "status"] == "failed"  # recorded before the crash
    first = store.load("v0")
    counted = []
    monkeypatch.setattr(
        FeatureExtractor, "from_file", lambda self, p, *a: counted.append(1) or original(self, p, *a)
    )
    summary = extract_videos(videos, store, workers=0, progress=False)
    assert len(counted) == 2 and summary.extracted == 2 and summary.skipped == 3  # v0, v1, bad
    assert store.ids() == ["v0", "v1", "v2", "v3"]
    assert np.array_equal(store.load("v0"), first)
    again = extract_videos(videos, store, workers=0, progress=False)
    assert again.extracted == 0 and again.skipped == 6 and len(counted) == 2


def test_store_refuses_another_backbones_features(videos, tmp_path):
    store = FeatureStore(tmp_path / "store")
    extract_videos(videos[:1], store, ExtractionConfig(seed=0), workers=0, progress=False)
    with pytest.raises(StoreError, match="made with"):
        extract_videos(videos[:1], store, ExtractionConfig(seed=1), workers=0, progress=False)


def test_duplicate_ids_and_unsafe_ids_are_rejected(videos, tmp_path):
    store = FeatureStore(tmp_path / "store")
    with pytest.raises(StoreError, match="duplicate"):
        extract_videos([videos[0], videos[0]], store, workers=0, progress=False)
    with pytest.raises(StoreError, match="cannot name"):
        store.feature_path("../escape")


def test_extractor_from_file_equals_from_waveform(videos):
    from ausil_lite.descriptors.audio import load_audio

    extractor = FeatureExtractor(ExtractionConfig(device="cpu"))
    path = videos[0][1]
    # the file's path scales the scan's mel power, the array's path the samples: equal to float rounding
    np.testing.assert_allclose(extractor.from_file(path), extractor.from_waveform(load_audio(path)), rtol=0, atol=1e-5)


def test_a_source_changed_after_extraction_is_extracted_again(videos, tmp_path):
    import os

    store = FeatureStore(tmp_path / "store")
    extract_videos(videos[:2], store, workers=0, progress=False)
    stored = store.feature_path("v0").stat().st_mtime
    old = stored - 100
    os.utime(store.feature_path("v0"), (old, old))  # features written long before the video was re-rendered
    summary = extract_videos(videos[:2], store, workers=0, progress=False)
    assert summary.extracted == 1 and summary.skipped == 1
    assert store.feature_path("v0").stat().st_mtime > old
    assert extract_videos(videos[:2], store, workers=0, progress=False).extracted == 0


def test_store_refuses_another_released_model_version_naming_both(tmp_path):
    store = FeatureStore(tmp_path / "store")
    store.bind(ExtractionConfig(backbone="released", model_version="ausil-lite-v0"))
    store.bind(ExtractionConfig(backbone="released", model_version="ausil-lite-v0"))  # the same version joins
    with pytest.raises(StoreError, match="made with the released model ausil-lite-v0, asked for the released model ausil-lite-v1"):
        store.bind(ExtractionConfig(backbone="released", model_version="ausil-lite-v1"))
    assert "asked for the random backbone (seed 0)" in store.mismatch(ExtractionConfig())


def test_a_torn_last_index_row_is_dropped_and_its_video_extracted_again(videos, tmp_path):
    store = FeatureStore(tmp_path / "store")
    extract_videos(videos[:2], store, workers=0, progress=False)
    whole = store.index_path.read_bytes()
    with open(store.index_path, "ab") as f:
        f.write(f"v2,{videos[3][1]},4.0,3,o".encode())  # the machine went down mid-append
    assert store.index["id"].tolist() == ["v0", "v1"]
    summary = extract_videos(videos[:4], store, workers=0, progress=False)
    assert summary.extracted == 1 and summary.skipped == 2 and set(summary.failed) == {"bad"}
    assert store.index_path.read_bytes().startswith(whole)
    assert store.index["id"].tolist() == ["v0", "v1", "bad", "v2"] and store.index["status"].tolist()[-1] == "ok"


def test_a_feature_file_cut_short_is_extracted_again(videos, tmp_path):
    store = FeatureStore(tmp_path / "store")
    extract_videos(videos[:2], store, workers=0, progress=False)
    whole = store.load("v1")
    path = store.feature_path("v1")
    path.write_bytes(path.read_bytes()[:-1000])  # renamed into place before its data reached the disk
    with pytest.raises(StoreError, match="v1.npy: damaged feature file"):
        store.load("v1")
    assert not store.intact("v1", len(whole)) and store.intact("v0", len(store.load("v0")))
    summary = extract_videos(videos[:2], store, workers=0, progress=False)
    assert summary.extracted == 1 and summary.skipped == 1
    assert np.array_equal(store.load("v1"), whole)


def test_an_index_mangled_mid_file_is_a_named_error(videos, tmp_path):
    store = FeatureStore(tmp_path / "store")
    extract_videos(videos[:2], store, workers=0, progress=False)
    lines = store.index_path.read_text().splitlines(keepends=True)
    store.index_path.write_text(lines[0] + '"v0,unterminated quote\n' + "".join(lines[1:]))
    with pytest.raises(StoreError, match="index.csv: unreadable store index"):
        extract_videos(videos[:2], store, workers=0, progress=False)


def test_store_refuses_another_precision_and_reads_old_records_as_float32(tmp_path):
    import json

    store = FeatureStore(tmp_path / "store")
    store.bind(ExtractionConfig(backbone="released", model_version="ausil-lite-v1"))
    record = json.loads(store.config_path.read_text())
    assert record["config"]["precision"] == "float32"
    del record["config"]["precision"]  # a store made before precisions were recorded
    store.config_path.write_text(json.dumps(record))
    store.bind(ExtractionConfig(backbone="released", model_version="ausil-lite-v1", device="cpu"))
    with pytest.raises(StoreError, match="made with the released model ausil-lite-v1, asked for the released model "
                                         r"ausil-lite-v1 at bfloat16 \(the fast network\)"):
        store.bind(ExtractionConfig(backbone="released", model_version="ausil-lite-v1", precision="bfloat16"))
