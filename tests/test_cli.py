import argparse
import json
import subprocess
import sys

import numpy as np

from ausil_lite.cli import build_parser, main
from ausil_lite.evaluation import read_similarities
from ausil_lite.features import ExtractionConfig, FeatureExtractor
from ausil_lite.models.released import RELEASED_VERSION
from ausil_lite.store import FeatureStore
from tests.conftest import noise, tone


def test_help_documents_every_command():
    out = subprocess.run([sys.executable, "-m", "ausil_lite.cli", "--help"], capture_output=True, text=True, check=True)
    from ausil_lite.cli import COMMANDS

    for module in COMMANDS:
        name = __import__(module, fromlist=["register"]).__name__.rsplit(".", 1)[-1].replace("_", "-")
        assert name in out.stdout
    assert f"Default model: the released model {RELEASED_VERSION}" in " ".join(out.stdout.split())
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in ("extract", "similarity", "index", "query"):
        assert f"released model {RELEASED_VERSION}" in " ".join(commands[command].format_help().split()), command


def test_extract_command_over_an_id_path_list(make_media, tmp_path, capsys):
    make_media("a.mp4", noise(3.0))
    make_media("b b.webm", noise(2.0, seed=2))
    videos = tmp_path / "videos.txt"
    videos.write_text("a a.mp4\nb " + str(tmp_path / "b b.webm") + "\nc missing.mkv\n")
    code = main(["extract", "--videos", str(videos), "--output", str(tmp_path / "features"), "--workers", "0",
                 "--backbone", "random"])
    assert code == 1  # one video failed
    out = capsys.readouterr().out
    assert "extracted 2" in out and "FAILED c" in out and "missing.mkv" in out
    assert FeatureStore(tmp_path / "features").ids() == ["a", "b"]


def test_malformed_list_is_a_clear_error(tmp_path, capsys):
    videos = tmp_path / "videos.txt"
    videos.write_text("a a.mp4\nonly-an-id\n")
    assert main(["extract", "--videos", str(videos), "--output", str(tmp_path / "f")]) == 2
    assert "videos.txt:2" in capsys.readouterr().err


def test_the_default_model_is_the_released_one(released_model, make_media, tmp_path, capsys):
    """No model option gives the scores of the released model passed explicitly, and stores record its version."""
    clip = tone(440, 5.0) + 0.1 * noise(5.0, seed=1)
    make_media("q.wav", clip)
    make_media("copy.wav", clip + 0.1 * noise(5.0, seed=2))
    make_media("other.wav", tone(1760, 5.0) + 0.1 * noise(5.0, seed=3))
    (tmp_path / "q.txt").write_text("q q.wav\n")
    (tmp_path / "d.txt").write_text("copy copy.wav\nother other.wav\n")
    base = ["similarity", "--queries", str(tmp_path / "q.txt"), "--database", str(tmp_path / "d.txt"), "--device", "cpu"]
    assert main([*base, "--output", str(tmp_path / "default.json")]) == 0
    assert f"scored with ausil (the released model {RELEASED_VERSION})" in capsys.readouterr().out
    assert main([*base, "--output", str(tmp_path / "explicit.json"), "--model", str(released_model)]) == 0
    assert main([*base, "--output", str(tmp_path / "chamfer.json"), "--backbone", "random"]) == 0
    default, explicit, chamfer = (read_similarities(tmp_path / f"{name}.json") for name in ("default", "explicit", "chamfer"))
    assert default == explicit and set(default["q"]) == {"copy", "other"} and default != chamfer
    assert main(["extract", "--videos", str(tmp_path / "q.txt"), "--output", str(tmp_path / "store"), "--workers", "0"]) == 0
    store = FeatureStore(tmp_path / "store")
    assert json.loads(store.config_path.read_text())["config"]["model_version"] == RELEASED_VERSION
    released = FeatureExtractor(ExtractionConfig(backbone="released", device="cpu")).from_file(tmp_path / "q.wav")
    np.testing.assert_allclose(store.load("q"), released, atol=1e-6)
