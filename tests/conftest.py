"""Shared test inputs: small signals and media files the tests make themselves."""

from __future__ import annotations

import numpy as np
import pytest

from ausil_lite.datasets.media import write_media
from ausil_lite.descriptors.audio import SAMPLE_RATE


def tone(freq_hz: float, seconds: float, rate: int = SAMPLE_RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def noise(seconds: float, seed: int = 0, rate: int = SAMPLE_RATE) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


@pytest.fixture
def make_media(tmp_path):
    """Write a signal into a media file under tmp_path: ``make_media("a.mp4", samples)``."""

    def _make(name: str, samples: np.ndarray, rate: int = SAMPLE_RATE, **kwargs):
        return write_media(tmp_path / name, samples, rate, **kwargs)

    return _make


@pytest.fixture(scope="session")
def exported_release(tmp_path_factory):
    """A tiny released model, exported as the real one is: a seeded random backbone and an untrained AuSiL
    network on a 32-wide whitening, cut to 16 components, with a recorded variant penalty of 0.12.
    Returns its version folder; the sources sit beside it (``../../backbone.pt``, ``../../ausil``)."""
    import torch

    from ausil_lite.descriptors.backbone import MAC_DIM, KumarCNN
    from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor
    from ausil_lite.models.export import export_released_model
    from ausil_lite.models.released import RELEASED_VERSION
    from ausil_lite.similarity.model import AuSiL
    from ausil_lite.descriptors.whitening import PCAWhitening

    root = tmp_path_factory.mktemp("release")
    torch.manual_seed(0)
    torch.save(KumarCNN().state_dict(), root / "backbone.pt")
    # the whitening's mean from the backbone's own descriptors (so embeddings tell clips apart), a random projection
    extractor = FeatureExtractor(ExtractionConfig(backbone="selfsup", weights=str(root / "backbone.pt"), device="cpu"))
    descriptors = extractor.from_waveform(tone(440, 6.0) + noise(6.0, seed=5) + tone(1500, 6.0, amplitude=0.2))
    mean = (descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)).mean(axis=0)
    projection = np.random.default_rng(0).standard_normal((MAC_DIM, 32))
    AuSiL(PCAWhitening(torch.tensor(mean), torch.tensor(projection))).save(
        root / "ausil", {"config": {}, "seed": 0, "variant_penalty": 0.12})
    return export_released_model(root / "backbone.pt", root / "ausil", root / "models" / RELEASED_VERSION,
                                 RELEASED_VERSION, 16, {"training_data": "tests"})


@pytest.fixture
def released_model(exported_release, monkeypatch):
    """Make :func:`exported_release` the package's released model for one test (the one switch tests use)."""
    from ausil_lite.models import released

    monkeypatch.setattr(released, "MODELS_ROOT", exported_release.parent)
    return exported_release
