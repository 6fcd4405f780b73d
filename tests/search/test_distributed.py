"""Extraction on a Dask cluster: two local worker processes, the same descriptors as local extraction."""

from __future__ import annotations

import numpy as np
import pytest
from distributed import LocalCluster

from ausil_lite.cli import main
from ausil_lite.descriptors.extraction import ExtractionConfig
from ausil_lite.descriptors.store import FeatureStore, extract_videos
from ausil_lite.search.collection import discover
from ausil_lite.search.distributed import extract_on_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local


def test_cluster_extraction_matches_local_and_is_idempotent(collection, cluster, tmp_path):
    videos = [(f.id, f.path) for f in discover([collection / "db"]).files]
    remote = FeatureStore(tmp_path / "remote")
    summary = extract_on_cluster(videos, remote, ExtractionConfig(), cluster.scheduler_address, progress=False)
    assert summary.extracted == 4 and len(summary.failed) == 1
    assert "broken.mp4" in next(iter(summary.failed.values()))
    local = FeatureStore(tmp_path / "local")
    extract_videos(videos, local, ExtractionConfig(), workers=0, progress=False)
    for vid in remote.ids():
        np.testing.assert_allclose(remote.load(vid), local.load(vid), rtol=1e-5, atol=1e-6)
    rows = len(remote.index)
    again = extract_on_cluster(videos, remote, ExtractionConfig(), cluster.scheduler_address, progress=False)
    assert (again.extracted, again.skipped) == (0, 5) and len(remote.index) == rows


def test_index_command_with_scheduler(collection, cluster, tmp_path, capsys):
    index = tmp_path / "idx"
    code = main(["index", str(collection / "db"), "--index", str(index), "--scheduler", cluster.scheduler_address,
                 "--backbone", "random"])
    out = capsys.readouterr().out
    assert code == 1 and f"to extract on {cluster.scheduler_address}" in out and "added 4" in out
    assert main(["query", str(collection / "query.m4a"), "--index", str(index), "--top", "1"]) == 0
    assert "a.mp4" in capsys.readouterr().out
