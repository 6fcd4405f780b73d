"""Inputs for the search tests: synthetic descriptor stores (index mechanics) and tiny media collections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ausil_lite.datasets.media import write_media
from ausil_lite.descriptors.audio import SAMPLE_RATE
from ausil_lite.descriptors.extraction import ExtractionConfig
from ausil_lite.descriptors.store import FeatureStore
from ausil_lite.search.collection import MediaFile

DIM = 96  # synthetic descriptor size: the index does not depend on 2528, and small fits are fast


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """FAISS on one thread: the suite runs beside other jobs, where OpenMP threads mostly wait on each other."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def track(seed: int, segments: int, dim: int = DIM) -> np.ndarray:
    """A synthetic video: non-negative descriptors drifting slowly over time, like MACs of one recording."""
    rng = np.random.default_rng(seed)
    return np.abs(np.cumsum(rng.standard_normal((segments, dim)), axis=0) + 3 * rng.random(dim)).astype(np.float32)


def fill_store(
    root: Path, videos: dict[str, np.ndarray], config: ExtractionConfig = ExtractionConfig()
) -> tuple[FeatureStore, list[MediaFile]]:
    store = FeatureStore(root)
    store.bind(config)
    entries = []
    for vid, descriptors in videos.items():
        store.save(vid, descriptors, f"/collection/{vid}.mp4", float(len(descriptors) + 1))
        entries.append(MediaFile(vid, Path(f"/collection/{vid}.mp4"), 1000, 1))
    return store, entries


@pytest.fixture
def synthetic_store():
    """``synthetic_store(root, {id: descriptors})`` -> (store, entries); ``synthetic_store.track(seed, n)``."""
    fill_store.track = track
    return fill_store


@pytest.fixture
def synthetic(tmp_path):
    """A store of 30 synthetic videos (40 segments) and their entries; ``tracks`` holds 60-segment originals."""
    tracks = {f"v{i:02d}": track(i, 60) for i in range(30)}
    store, entries = fill_store(tmp_path / "store", {vid: t[10:50] for vid, t in tracks.items()})
    return store, entries, tracks


def melody(seed: int, seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Random notes (0.1-0.6 s, 100-3000 Hz, a seed-drawn timbre) over noise bursts: distinct per seed."""
    rng = np.random.default_rng(seed)
    partials = rng.uniform(0, 1, 5) ** 2
    out = []
    while sum(map(len, out)) < seconds * rate:
        n = int(rng.uniform(0.1, 0.6) * rate)
        f = 100 * 30 ** rng.random()
        t = np.arange(n) / rate
        env = np.exp(-t * rng.uniform(1, 12))
        note = sum(p * np.sin(2 * np.pi * f * (k + 1) * t) for k, p in enumerate(partials))
        burst = rng.standard_normal(n) * (rng.random() < 0.3) * np.exp(-t * 30)
        out.append(env * note + 0.5 * burst)
    x = np.concatenate(out)[: int(seconds * rate)]
    return (0.5 * x / np.abs(x).max() + 0.005 * rng.standard_normal(len(x))).astype(np.float32)


@pytest.fixture(scope="session")
def collection(tmp_path_factory):
    """A folder of four short videos (one bad file, one non-media file) and a query that copies 8 s of ``a.mp4``."""
    root = tmp_path_factory.mktemp("collection")
    db = root / "db"
    (db / "sub").mkdir(parents=True)
    rate = SAMPLE_RATE
    original = melody(1, 16)
    write_media(db / "a.mp4", original, rate)
    write_media(db / "b.mp4", melody(2, 12), rate)
    write_media(db / "sub" / "c.webm", melody(3, 12), rate)
    write_media(db / "sub" / "d.mp3", melody(4, 10), rate)
    (db / "broken.mp4").write_text("not a video\n" * 40)
    (db / "readme.txt").write_text("not media, ignored\n")
    excerpt = original[4 * rate : 12 * rate] * 0.8 + 0.003 * np.random.default_rng(9).standard_normal(8 * rate).astype(np.float32)
    write_media(root / "query.m4a", excerpt, rate)
    return root
