"""The release step refuses to describe a corpus the model did not learn from."""

from __future__ import annotations

import pytest

from ausil_lite.datasets.corpus import manifest_digest
from ausil_lite.datasets.renders import RENDER_MANIFEST
from ausil_lite.study.release import ReleaseRun, export_release


def test_export_refuses_when_the_corpus_changed_since_training(tmp_path, monkeypatch):
    monkeypatch.setenv("AUSIL_DATA", str(tmp_path))
    run = ReleaseRun.make("v")
    stale = {"corpus": {"manifest_sha1": "af4e08642ebd", "renders_sha1": manifest_digest(RENDER_MANIFEST)}}
    with pytest.raises(RuntimeError, match="changed since the model was trained"):
        export_release(run, stale, tmp_path / "v")
    assert not (tmp_path / "v").exists()


def test_a_version_cannot_reuse_its_own_backbone(tmp_path, monkeypatch):
    monkeypatch.setenv("AUSIL_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="its own backbone"):
        ReleaseRun.make("v9", backbone_of="v9")
    assert ReleaseRun.make("v9", backbone_of="v8").backbone_of == "v8"
