"""The released model's folder: export, checksums on load, float16 against float32, an absent version."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from ausil_lite.cli import main
from ausil_lite.descriptors.backbone import MAC_DIM
from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor
from ausil_lite.descriptors.speeds import calibrate_variant_penalty
from ausil_lite.digests import SUMS_FILE, ChecksumError
from ausil_lite.learning.triplets import TripletSource
from ausil_lite.models import released
from ausil_lite.models.export import MAX_BYTES, export_released_model, portable_paths, record_chamfer_rule
from ausil_lite.models.released import (
    EVALUATION_FILE,
    MODEL_FILES,
    RELEASED_VERSION,
    ReleasedModelError,
    StaleCardError,
    load_released_backbone,
    load_released_scorer,
    read_card_evaluation,
    read_release,
    weights_stamp,
)
from ausil_lite.similarity import ChamferScorer, load_model
from tests.conftest import noise, tone

FLOAT16_TOLERANCE = 1e-3
"""Largest change of a similarity score (units of [-1, 1]) that storing the weights in float16 may make
on the fixed clips below (the bar the issue sets for evaluation figures); measured about 1e-5 on them."""


def test_export_writes_float16_files_their_checksums_and_the_record(exported_release):
    folder = exported_release
    assert sorted(p.name for p in folder.iterdir()) == sorted([*MODEL_FILES, SUMS_FILE])
    assert sum(p.stat().st_size for p in folder.iterdir()) < min(MAX_BYTES, 11 * 2**20)  # ~5M float16 parameters
    sums = dict(reversed(line.split("  ")) for line in (folder / SUMS_FILE).read_text().splitlines())
    assert sums == {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in MODEL_FILES}
    backbone = torch.load(folder / "backbone.pt", weights_only=True)
    assert {v.dtype for v in backbone.values()} == {torch.float16, torch.int64}  # BatchNorm counters stay integers
    with np.load(folder / "whitening.npz") as whitening:
        assert whitening["projection"].dtype == np.float16 and whitening["projection"].shape == (MAC_DIM, 16)
    record = json.loads((folder / "config.json").read_text())
    assert record["version"] == RELEASED_VERSION and record["whitening_dims"] == 16 and record["trained_whitening_dims"] == 32
    assert record["extra"] == {"training_data": "tests"} and record["variant_penalty"] == 0.12  # carried from the source
    assert record["data"]["extraction"] == {"backbone": "released", "weights": None, "seed": 0, "model_version": RELEASED_VERSION}
    assert record["export"]["git_commit"] and record["made_from"]["ausil_provenance"]["seed"] == 0


def test_loaders_check_the_sums_and_give_float32(released_model):
    backbone = load_released_backbone(device="cpu")
    assert {p.dtype for p in backbone.parameters()} == {torch.float32}
    scorer = load_released_scorer(device="cpu")
    assert scorer.whitening.projection.dtype == torch.float32 and scorer.whitening.projection.shape == (MAC_DIM, 16)
    assert scorer.attention.context.shape == (16,)
    assert read_release()["version"] == RELEASED_VERSION


@pytest.mark.parametrize("name", ["backbone.pt", "model.pt", "whitening.npz", "config.json"])
def test_an_altered_or_missing_file_is_refused_naming_it_and_both_digests(exported_release, tmp_path, monkeypatch, name):
    copy = tmp_path / RELEASED_VERSION
    shutil.copytree(exported_release, copy)
    monkeypatch.setattr(released, "MODELS_ROOT", tmp_path)
    expected = hashlib.sha256((copy / name).read_bytes()).hexdigest()
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 1
    (copy / name).write_bytes(bytes(data))
    found = hashlib.sha256(bytes(data)).hexdigest()
    for load in (load_released_backbone, load_released_scorer, lambda: load_model(copy, "cpu"),
                 lambda: FeatureExtractor(ExtractionConfig(backbone="released"))):
        with pytest.raises(ChecksumError, match=rf"{name}: altered or damaged: .*{expected}.*{found}"):
            load()
    (copy / name).unlink()
    with pytest.raises(ChecksumError, match=rf"{name}: missing: .*{expected}, found no file"):
        load_released_scorer()


def test_float16_weights_score_within_tolerance_of_float32(exported_release, tmp_path):
    """The exported (float16) backbone and network against their float32 sources, on three fixed clips:
    the network's scores, and the chamfer similarity of its embedded segments (which, unlike the untrained
    comparator's near-constant output, tells the clips apart)."""
    sources = exported_release.parent.parent
    half = export_released_model(sources / "backbone.pt", sources / "ausil", tmp_path / "v", "v", None, {})
    clip = tone(440, 5.0) + 0.1 * noise(5.0, seed=1)
    rising = tone(1760, 5.0) * np.linspace(0, 1, len(clip), dtype=np.float32)
    clips = [clip, clip + 0.1 * noise(5.0, seed=2), rising + 0.1 * noise(5.0, seed=3)]
    scores = {}
    for name, weights, model_dir in (("16", half / "backbone.pt", half), ("32", sources / "backbone.pt", sources / "ausil")):
        extractor = FeatureExtractor(ExtractionConfig(backbone="selfsup", weights=str(weights), device="cpu"))
        model, chamfer = load_model(model_dir, "cpu"), ChamferScorer("cpu")
        a, noisy, other = (extractor.from_waveform(x) for x in clips)
        embedded = [model.embed(torch.as_tensor(x)).detach() for x in (a, noisy, other)]
        scores[name] = np.array([model.similarity(a, noisy), model.similarity(a, other),
                                 *chamfer.score_many(embedded[0], embedded[1:])])
    assert scores["32"][2] - scores["32"][3] > 0.02  # the embeddings rank the noisy copy above the other clip
    assert np.abs(scores["16"] - scores["32"]).max() <= FLOAT16_TOLERANCE, scores


def test_an_absent_version_is_named_with_the_ways_out_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(released, "MODELS_ROOT", tmp_path / "empty")
    with pytest.raises(ReleasedModelError, match=rf"{RELEASED_VERSION} is not in this copy.*--backbone random"):
        load_released_backbone()
    (tmp_path / "videos.txt").write_text("a a.wav\n")
    assert main(["extract", "--videos", str(tmp_path / "videos.txt"), "--output", str(tmp_path / "store")]) == 2
    assert main(["similarity", "--queries", str(tmp_path / "videos.txt"), "--database", str(tmp_path / "videos.txt"),
                 "--output", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err
    assert err.count(f"the released model {RELEASED_VERSION} is not in this copy") == 2 and "Traceback" not in err
    assert not (tmp_path / "store").exists() and not (tmp_path / "s.json").exists()


def test_export_refuses_a_misnamed_folder_a_wider_whitening_and_extra_that_is_not_json(exported_release, tmp_path):
    sources = (exported_release.parent.parent / "backbone.pt", exported_release.parent.parent / "ausil")
    with pytest.raises(ValueError, match="named after its version"):
        export_released_model(*sources, tmp_path / "other", "v", None, {})
    with pytest.raises(ValueError, match=r"whitening_dims must be in \[1, 32\]"):
        export_released_model(*sources, tmp_path / "v", "v", 64, {})
    with pytest.raises(TypeError):
        export_released_model(*sources, tmp_path / "v", "v", None, {"when": object()})
    assert not (tmp_path / "v").exists() and not (tmp_path / "other").exists()


def test_export_calibrates_the_variant_penalty_on_the_weights_it_ships(exported_release, tmp_path):
    rng = np.random.default_rng(0)
    anchors = [rng.random((8, MAC_DIM), dtype=np.float32) for _ in range(4)]
    source = TripletSource([(a, a + 0.01 * rng.random(a.shape, dtype=np.float32)) for a in anchors],
                           [rng.random((8, MAC_DIM), dtype=np.float32) for _ in range(4)])
    sources = (exported_release.parent.parent / "backbone.pt", exported_release.parent.parent / "ausil")
    out = export_released_model(*sources, tmp_path / "v", "v", 16, {}, calibration=source)
    record = json.loads((out / "config.json").read_text())
    assert record["variant_penalty"] == calibrate_variant_penalty(load_model(out, "cpu"), source) != 0.12
    assert record["calibration"]["pairs"] == 4 and load_model(out, "cpu")  # the rewritten config.json is in SHA256SUMS


def test_the_card_is_read_only_for_the_weights_it_measured(exported_release, tmp_path, monkeypatch):
    copy = tmp_path / RELEASED_VERSION
    shutil.copytree(exported_release, copy)
    monkeypatch.setattr(released, "MODELS_ROOT", tmp_path)
    with pytest.raises(StaleCardError, match=f"{EVALUATION_FILE}.*--write-card"):
        read_card_evaluation()  # no card yet
    (copy / "card").mkdir()
    (copy / "card" / EVALUATION_FILE).write_text(json.dumps({"queries": 3, "measured_weights": weights_stamp(copy)}))
    assert read_card_evaluation()["queries"] == 3
    # retrained: the same files with other weights, and the card kept beside them
    sources = exported_release.parent.parent
    state = torch.load(sources / "backbone.pt", weights_only=True)
    state["layer1.0.weight"] += 1.0
    torch.save(state, tmp_path / "retrained.pt")
    card = (copy / "card" / EVALUATION_FILE).read_bytes()
    export_released_model(tmp_path / "retrained.pt", sources / "ausil", copy, RELEASED_VERSION, 16, {})
    (copy / "card").mkdir()
    (copy / "card" / EVALUATION_FILE).write_bytes(card)
    with pytest.raises(StaleCardError, match="measured on other weights"):
        read_card_evaluation()


def test_provenance_paths_name_the_data_root_and_the_repository_not_the_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("AUSIL_DATA", str(tmp_path / "data"))
    from ausil_lite.paths import REPO_ROOT

    record = {"a": str(tmp_path / "data" / "models" / "x.pt"), "b": [str(REPO_ROOT / "data_manifests" / "m.csv")],
              "c": "/elsewhere/y.pt", "d": 3, "e": "relative/z"}
    assert portable_paths(record) == {"a": "$AUSIL_DATA/models/x.pt", "b": ["data_manifests/m.csv"],
                                      "c": "/elsewhere/y.pt", "d": 3, "e": "relative/z"}


def test_recording_a_chamfer_rule_renews_the_sums_and_makes_the_card_stale(exported_release, tmp_path, monkeypatch):
    copy = tmp_path / RELEASED_VERSION
    shutil.copytree(exported_release, copy)
    monkeypatch.setattr(released, "MODELS_ROOT", tmp_path)
    before = weights_stamp(copy)
    assert "chamfer_rule" not in before and load_model(copy, "cpu").chamfer_rule == "query"
    (copy / "card").mkdir()
    (copy / "card" / EVALUATION_FILE).write_text(json.dumps({"queries": 3, "measured_weights": before}))
    record_chamfer_rule(copy, "symmetric", {"benchmark": "davr-dev ci", "figures": {"query": {"mAP": 0.5}}})
    assert load_model(copy, "cpu").chamfer_rule == "symmetric"  # the rewritten config.json passes its checksum
    assert read_release()["chamfer_rule_choice"]["benchmark"] == "davr-dev ci"
    assert weights_stamp(copy) == {**before, "chamfer_rule": "symmetric"}
    with pytest.raises(StaleCardError, match="measured on other weights"):
        read_card_evaluation()  # measured with the rule it no longer scores by
    with pytest.raises(ValueError, match="unknown chamfer rule"):
        record_chamfer_rule(copy, "longest", {})
    again = export_released_model(exported_release.parent.parent / "backbone.pt", copy, tmp_path / "v", "v", 16, {})
    assert json.loads((again / "config.json").read_text())["chamfer_rule"] == "symmetric"  # a re-export keeps it


def test_held_out_tables_keep_the_rule_choosers_names_for_ci_and_give_each_other_profile_its_own():
    assert released.held_out_files("ci") == (released.HELD_OUT_TABLE, released.HELD_OUT_FILE)
    severe = released.held_out_files("severe")
    assert severe[0] == released.HELD_OUT_SEVERE_TABLE and severe[1].endswith("_severe.json")
    assert not set(severe) & set(released.held_out_files("ci"))
