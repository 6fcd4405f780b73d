import subprocess
import sys

from ausil_lite.cli import main
from ausil_lite.store import FeatureStore
from tests.conftest import noise


def test_help_documents_every_command():
    out = subprocess.run([sys.executable, "-m", "ausil_lite.cli", "--help"], capture_output=True, text=True, check=True)
    from ausil_lite.cli import COMMANDS

    for module in COMMANDS:
        name = __import__(module, fromlist=["register"]).__name__.rsplit(".", 1)[-1].replace("_", "-")
        assert name in out.stdout


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
