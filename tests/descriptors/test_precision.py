import sys

import numpy as np
import pytest
import torch

from ausil_lite.descriptors.backbone import fold_batchnorm, load_backbone
from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor, describe_extraction, same_descriptors
from ausil_lite.descriptors.precision import BFLOAT16_MIN_COSINE, BFLOAT16_TOLERANCE, at_precision, compiler_found
from tests.conftest import noise


def test_unknown_precisions_are_rejected():
    with pytest.raises(ValueError, match="unknown precision 'int8'"):
        ExtractionConfig(precision="int8")
    with pytest.raises(ValueError, match="unknown precision 'float16'"):
        at_precision(fold_batchnorm(load_backbone(device="cpu")), "float16")


def test_the_compiler_is_the_one_cxx_names(monkeypatch):
    monkeypatch.setenv("CXX", sys.executable)  # any executable stands in for a compiler on the PATH
    assert compiler_found()
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    assert not compiler_found()


def test_float32_is_the_full_network_itself():
    folded = fold_batchnorm(load_backbone(device="cpu"))
    model, mac = at_precision(folded, "float32")
    assert model is folded and mac == folded.mac


def test_a_record_without_precision_is_float32_and_precisions_never_mix():
    before = {"backbone": "released", "weights": None, "seed": 0, "model_version": "ausil-lite-v1", "device": None}
    full = ExtractionConfig(backbone="released", model_version="ausil-lite-v1", device="cuda", batch_size=8)
    fast = ExtractionConfig(backbone="released", model_version="ausil-lite-v1", precision="bfloat16")
    assert same_descriptors(before, vars(full))  # device and batch size do not change descriptors
    assert not same_descriptors(before, vars(fast))
    assert describe_extraction(vars(fast)) == "the released model ausil-lite-v1 at bfloat16 (the fast network)"
    assert describe_extraction(before) == "the released model ausil-lite-v1"
    assert ExtractionConfig(backbone="released", seed=5).seed == 0  # no seed to vary: any matches the shipped record


@pytest.mark.slow
def test_fast_descriptors_stay_within_tolerance_of_the_full_network():
    """One compile (about a minute) covers a full batch, a short last batch and a one-segment clip."""
    signal = noise(70.0, seed=3) + 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(70.0 * 44_100)) / 44_100)
    signal = (signal / np.abs(signal).max()).astype(np.float32)
    full = FeatureExtractor(ExtractionConfig(backbone="released", device="cpu"))
    fast = FeatureExtractor(ExtractionConfig(backbone="released", device="cpu", precision="bfloat16"))
    assert fast.model.layer1[0].weight.dtype == torch.bfloat16
    for seconds in (70.0, 1.5):  # 69 segments (batches of 64 and 5), then a single one
        expected = full.from_waveform(signal[: int(seconds * 44_100)])
        got = fast.from_waveform(signal[: int(seconds * 44_100)])
        assert got.dtype == np.float32 and got.shape == expected.shape
        deviation = np.abs(got - expected).max()
        assert 0 < deviation <= BFLOAT16_TOLERANCE, seconds  # bfloat16, yet close to float32
        cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
        assert cosine.min() >= BFLOAT16_MIN_COSINE, seconds
