"""Two baselines on the raw MAC descriptors, with nothing learned on top of the backbone.

``chamfer`` keeps one descriptor per 2-s segment and scores a pair with chamfer similarity of the
segment cosine matrix (every query segment looks for its best match anywhere in the candidate);
``pooled`` averages the segments into one unit vector per video and scores with a cosine, which
forgets which parts of the video matched. Their settings are the extraction settings
(:class:`ausil_lite.descriptors.extraction.ExtractionConfig`): there is nothing else to choose.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from ausil_lite.baselines.interface import AudioSource, read_source
from ausil_lite.descriptors.audio import SAMPLE_RATE
from ausil_lite.descriptors.backbone import MAC_DIM
from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor
from ausil_lite.similarity.chamfer import chamfer_similarity


class _DescriptorBaseline(ABC):
    """Shared part: descriptors of a file or waveform through a lazily loaded backbone."""

    fingerprint_type = np.ndarray

    def __init__(self, config: ExtractionConfig | None = None) -> None:
        self.config = config or ExtractionConfig()
        self._extractor: FeatureExtractor | None = None

    def descriptors(self, source: AudioSource, sample_rate: int | None = None) -> np.ndarray:
        """(N, 2528) MAC descriptors of a media file or of mono samples at ``sample_rate`` Hz."""
        if self._extractor is None:
            self._extractor = FeatureExtractor(self.config)
        return self._extractor.from_waveform(read_source(source, SAMPLE_RATE, sample_rate))

    def fingerprint(self, source: AudioSource, sample_rate: int | None = None) -> np.ndarray:
        return self.from_descriptors(self.descriptors(source, sample_rate))

    @abstractmethod
    def from_descriptors(self, descriptors: np.ndarray) -> np.ndarray:
        """Fingerprint from stored (N, 2528) descriptors, e.g. ``FeatureStore(root).load(id)``."""

    @abstractmethod
    def score(self, query: np.ndarray, candidate: np.ndarray) -> float:
        """Similarity of two fingerprints; higher means more similar."""


def _check_descriptors(descriptors: np.ndarray) -> np.ndarray:
    x = np.asarray(descriptors, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != MAC_DIM:
        raise ValueError(f"expected (N >= 1, {MAC_DIM}) MAC descriptors, got {x.shape}")
    return x


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ChamferBaseline(_DescriptorBaseline):
    """Chamfer similarity of unit-norm segment descriptors; in [-1, 1], asymmetric (query in candidate)."""

    name = "chamfer"

    def from_descriptors(self, descriptors: np.ndarray) -> np.ndarray:
        return _unit_rows(_check_descriptors(descriptors))

    def score(self, query: np.ndarray, candidate: np.ndarray) -> float:
        sim = torch.from_numpy(query) @ torch.from_numpy(candidate).T
        return float(chamfer_similarity(sim))


class PooledBaseline(_DescriptorBaseline):
    """Cosine of mean-pooled, L2-normalised video descriptors; in [-1, 1], symmetric."""

    name = "pooled"

    def from_descriptors(self, descriptors: np.ndarray) -> np.ndarray:
        return _unit_rows(_check_descriptors(descriptors).mean(axis=0))

    def score(self, query: np.ndarray, candidate: np.ndarray) -> float:
        return float(query @ candidate)
