import numpy as np
import pytest

from ausil_lite.descriptors.extraction import ExtractionConfig
from ausil_lite.descriptors.store import FeatureStore, extract_videos
from ausil_lite.descriptors.workers import ExtractionWorkers, default_workers, usable_cores
from tests.conftest import noise


@pytest.fixture
def videos(make_media, tmp_path):
    items = [(f"v{i}", make_media(f"v{i}.mp4", noise(3.0 + i, seed=10 + i))) for i in range(4)]
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"\x1aE\xdf\xa3 not a matroska file" * 32)
    items.insert(1, ("bad", bad))
    return items


def _stored(store: FeatureStore) -> dict[str, np.ndarray]:
    return {vid: store.load(vid) for vid in store.ids()}


@pytest.mark.parametrize("whole_files", [True, False])
def test_workers_give_the_descriptors_of_extraction_in_one_process(videos, tmp_path, whole_files):
    here = FeatureStore(tmp_path / "here")
    extract_videos(videos, here, workers=0, progress=False)
    store = FeatureStore(tmp_path / "workers")
    with ExtractionWorkers(ExtractionConfig(), 2, whole_files=whole_files) as workers:
        summary = extract_videos(videos, store, workers=workers, progress=False)
    assert summary.extracted == 4 and list(summary.failed) == ["bad"] and "bad.mkv" in summary.failed["bad"]
    expected, got = _stored(here), _stored(store)
    assert list(got) == ["v0", "v1", "v2", "v3"]
    for vid in expected:  # the float32 network gives the same numbers on any number of threads
        assert np.array_equal(got[vid], expected[vid]), vid
    assert store.index.set_index("id").loc["v2", "duration"] == pytest.approx(5.0, abs=0.1)


def test_workers_serve_several_batches_and_refuse_another_config(videos, tmp_path):
    store = FeatureStore(tmp_path / "store")
    with ExtractionWorkers(ExtractionConfig(), 1) as workers:
        first = extract_videos(videos[:2], store, workers=workers, progress=False)
        second = extract_videos(videos, store, workers=workers, progress=False)
        with pytest.raises(ValueError, match="seed=3"):
            extract_videos(videos, FeatureStore(tmp_path / "other"), ExtractionConfig(seed=3), workers=workers,
                           progress=False)
    assert (first.extracted, second.extracted, second.skipped) == (1, 3, 2)
    assert store.ids() == ["v0", "v1", "v2", "v3"]


def test_default_workers_use_each_core_up_to_a_limit():
    assert 1 <= default_workers() <= min(usable_cores(), 8)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        ExtractionWorkers(ExtractionConfig(), 0)
