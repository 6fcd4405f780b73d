import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import numpy as np
import torch

from ausil_lite.cli import build_parser, main
from ausil_lite.commands.model_choice import extraction_choice
from ausil_lite.descriptors import precision
from ausil_lite.descriptors.extraction import ExtractionConfig, FeatureExtractor
from ausil_lite.descriptors.precision import default_precision
from ausil_lite.descriptors.store import FeatureStore
from ausil_lite.evaluation.protocol import read_similarities
from ausil_lite.models.released import RELEASED_VERSION
from tests.conftest import noise, tone

REPO = Path(__file__).resolve().parents[1]


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


def test_fast_option_asks_for_bfloat16_and_a_store_keeps_its_precision(make_media, tmp_path, capsys):
    """``--fast`` reaches the config; extracting it into a float32 store is refused before any compiling."""
    parser = build_parser()
    args = parser.parse_args(["extract", "--videos", "v.txt", "--output", "o", "--fast"])
    assert extraction_choice(args).precision == "bfloat16"
    recorded = {"backbone": "random", "seed": 0, "precision": "bfloat16"}
    plain = parser.parse_args(["index", "x", "--index", "i"])
    assert extraction_choice(plain, recorded).precision == "bfloat16"  # an index goes on at its own precision
    assert extraction_choice(plain, {"backbone": "released"}).precision == "float32"  # a record from before precisions
    with pytest.raises(SystemExit):
        parser.parse_args(["extract", "--videos", "v.txt", "--output", "o", "--fast", "--full"])
    help_text = " ".join(parser._subparsers._group_actions[0].choices["extract"].format_help().split())
    assert "--fast" in help_text and "--full" in help_text and "bfloat16" in help_text and "at most 0.05" in help_text
    make_media("a.mp4", noise(3.0))
    videos = tmp_path / "videos.txt"
    videos.write_text("a a.mp4\n")
    base = ["extract", "--videos", str(videos), "--output", str(tmp_path / "features"), "--workers", "0", "--backbone", "random"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--fast"]) == 2
    err = capsys.readouterr().err
    assert "asked for the random backbone (seed 0) at bfloat16 (the fast network)" in err and "use another --output" in err


@pytest.mark.parametrize("native", [True, False])
def test_the_default_precision_is_the_fast_network_for_the_released_model_on_a_cpu_that_runs_it(native, monkeypatch):
    """Told nothing, the released backbone runs at bfloat16 on a CPU with native bfloat16 (its gate passed);
    ``--full``, another backbone, CUDA and a CPU without it get float32; a model's training precision does not bind."""
    monkeypatch.setattr(precision, "native_bfloat16", lambda: native)
    parser = build_parser()
    extract = ["extract", "--videos", "v.txt", "--output", "o"]
    fast = "bfloat16" if native else "float32"
    assert extraction_choice(parser.parse_args(extract), device="cpu").precision == fast
    assert extraction_choice(parser.parse_args([*extract, "--full"]), device="cpu").precision == "float32"
    assert extraction_choice(parser.parse_args([*extract, "--backbone", "random"]), device="cpu").precision == "float32"
    assert extraction_choice(parser.parse_args([*extract, "--fast"]), device="cpu").precision == "bfloat16"
    if torch.cuda.is_available():
        assert extraction_choice(parser.parse_args(extract), device="cuda").precision == "float32"
    model_record = {"backbone": "released", "seed": 0, "precision": "float32"}
    assert extraction_choice(parser.parse_args(extract), model_record, "cpu", keep_precision=False).precision == fast
    assert extraction_choice(parser.parse_args(extract), model_record, "cpu").precision == "float32"
    monkeypatch.setattr(precision, "compiler_found", lambda: False)
    assert extraction_choice(parser.parse_args(extract), device="cpu").precision == "float32"


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
    assert f"scored with ausil (the released model {RELEASED_VERSION}" in capsys.readouterr().out
    assert main([*base, "--output", str(tmp_path / "explicit.json"), "--model", str(released_model)]) == 0
    assert main([*base, "--output", str(tmp_path / "chamfer.json"), "--backbone", "random"]) == 0
    default, explicit, chamfer = (read_similarities(tmp_path / f"{name}.json") for name in ("default", "explicit", "chamfer"))
    assert default == explicit and set(default["q"]) == {"copy", "other"} and default != chamfer
    assert main(["extract", "--videos", str(tmp_path / "q.txt"), "--output", str(tmp_path / "store"), "--workers", "0"]) == 0
    store = FeatureStore(tmp_path / "store")
    assert json.loads(store.config_path.read_text())["config"]["model_version"] == RELEASED_VERSION
    default = ExtractionConfig(backbone="released", device="cpu", precision=default_precision("released", "cpu"))
    np.testing.assert_allclose(store.load("q"), FeatureExtractor(default).from_file(tmp_path / "q.wav"), atol=1e-6)


def _run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    """The CLI in a child whose stdout is strict UTF-8, as on a desktop's en_US.UTF-8 locale."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "ausil_lite.cli", *args], capture_output=True, cwd=cwd, env=env,
                          timeout=300)


def test_file_names_that_are_not_utf8_are_indexed_and_extracted(make_media, tmp_path):
    folder = tmp_path / "disk"
    make_media("disk/plain.wav", noise(3.0))
    make_media("disk/odd.wav", noise(3.0, seed=5))
    odd = os.fsencode(folder) + b"/caf\xe9 \xff.wav"  # Latin-1 bytes, as copied from an old disk
    try:
        os.rename(os.fsencode(folder / "odd.wav"), odd)
    except OSError:
        pytest.skip("this filesystem only takes UTF-8 names")
    (tmp_path / "bad.mp4").write_bytes(b"not media" * 50)
    os.rename(os.fsencode(tmp_path / "bad.mp4"), os.fsencode(folder) + b"/bad \xff.mp4")
    done = _run_cli("index", str(folder), "--index", str(tmp_path / "idx"), "--workers", "0", "--backbone", "random",
                    cwd=tmp_path)
    assert done.returncode == 1, done.stderr.decode(errors="replace")  # the bad file, named with its reason
    assert b"added 2" in done.stdout and b"FAILED " in done.stdout and b"bad \\udcff.mp4: FFmpeg" in done.stdout
    videos = (tmp_path / "idx" / "versions" / "v000001" / "videos.csv").read_bytes()
    assert odd in videos  # the source recorded as the bytes that open it
    listed = tmp_path / "videos.txt"
    listed.write_bytes(b"plain disk/plain.wav\nodd " + odd + b"\n")
    done = _run_cli("extract", "--videos", str(listed), "--output", str(tmp_path / "f"), "--workers", "1",
                    "--backbone", "random", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert FeatureStore(tmp_path / "f").ids() == ["plain", "odd"]


def test_plain_misuse_is_one_line_and_exit_code_2(make_media, tmp_path, capsys):
    make_media("a.wav", noise(3.0))
    (tmp_path / "videos.txt").write_text("a a.wav\n")
    taken = tmp_path / "taken.txt"
    taken.write_text("a file, not a folder\n")
    assert main(["extract", "--videos", str(tmp_path / "videos.txt"), "--output", str(taken)]) == 2
    assert f"{taken}: an existing file, not a feature store folder" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "a.wav"), "--index", str(taken)]) == 2
    assert f"error: {taken}: an existing file, not an index folder" in capsys.readouterr().err
    for top in ("0", "-1", "many"):
        with pytest.raises(SystemExit) as exited:
            main(["query", str(tmp_path / "a.wav"), "--index", str(tmp_path), "--top", top])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "argument --top" in err and "Traceback" not in err
    sims, notes, ids = tmp_path / "s.json", tmp_path / "a.json", tmp_path / "ids.txt"
    sims.write_text('{"q": {"a": 0.9, "b": 0.1}}')
    notes.write_text('{"q": {"DA": ["a"]}}')
    ids.write_text("q\na\nb\n")
    code = main(["evaluate", "--similarities", str(sims), "--annotations", str(notes), "--dataset-ids", str(ids),
                 "--per-query", str(taken / "ap.csv")])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"ausil-lite evaluate: error: {taken}: File exists"


def test_evaluate_says_what_it_left_out_and_fails_on_missing_queries(tmp_path, capsys):
    sims, notes, ids = tmp_path / "s.json", tmp_path / "a.json", tmp_path / "ids.txt"
    sims.write_text('{"q": {"a": 0.9, "b": 0.1}}')
    notes.write_text('{"q": {"DA": ["a", "A1"]}, "lost": {"DA": ["b"]}}')
    ids.write_text("q\na\nb\nlost\n")
    args = ["evaluate", "--similarities", str(sims), "--annotations", str(notes), "--dataset-ids", str(ids)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "mAP=1.0000" in captured.out  # still printed, over the one query there is
    assert f"1 relevant id(s) of 1 queries are not in {ids}" in captured.err and "query q: A1" in captured.err
    assert f"1 of 2 annotated queries are missing from {sims} (e.g. lost)" in captured.err
    assert main([*args, "--allow-missing-queries"]) == 0


def test_a_list_starting_with_a_byte_order_mark_reads_its_first_id(make_media, tmp_path):
    make_media("a.wav", noise(3.0))
    listed = tmp_path / "videos.txt"
    listed.write_text("a a.wav\n", encoding="utf-8-sig")  # as Windows Notepad saves UTF-8
    assert main(["extract", "--videos", str(listed), "--output", str(tmp_path / "f"), "--workers", "0",
                 "--backbone", "random"]) == 0
    assert FeatureStore(tmp_path / "f").ids() == ["a"]


def _descendants(pid: int) -> set[int]:
    """Live processes started by ``pid``, their children, and so on (from /proc; zombies count as gone)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                alive.add(pid)
        except OSError:
            pass
    return alive


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "Ctrl-C"])
def test_extraction_workers_end_with_their_parent_and_an_interrupt_is_one_line(make_media, tmp_path, how):
    import signal
    import time

    make_media("long.wav", noise(20.0))
    listed = tmp_path / "videos.txt"
    listed.write_text("".join(f"v{i:03d} long.wav\n" for i in range(200)))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.Popen([sys.executable, "-m", "ausil_lite.cli", "extract", "--videos", str(listed), "--output",
                            str(tmp_path / "f"), "--workers", "2", "--backbone", "random"], cwd=tmp_path, env=env,
                           start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           # a job started in the background by a shell inherits SIGINT ignored, and Python then
                           # keeps ignoring it: give the command a terminal's default so Ctrl-C reaches it
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while not ((tmp_path / "f" / "index.csv").is_file() and len(_descendants(run.pid)) >= 3):
            if run.poll() is not None:
                pytest.fail(f"the extraction ended (code {run.returncode}) before it was interrupted: {run.stderr.read()[-2000:]}")
            assert time.monotonic() < deadline, "no stored video and extraction workers within 240 s"
            time.sleep(0.2)
        workers = _descendants(run.pid)  # the forkserver and two extraction workers
        if how == "Ctrl-C":
            os.killpg(run.pid, signal.SIGINT)  # a terminal sends it to the whole foreground group
        else:
            os.kill(run.pid, getattr(signal, how))
        _, err = run.communicate(timeout=120)
        deadline = time.monotonic() + 20
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(workers), f"orphaned extraction workers: {_alive(workers)}"
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        for pid in _alive(workers):  # a failed check leaves no orphans behind
            os.kill(pid, signal.SIGKILL)
    if how != "SIGKILL":
        assert run.returncode == 130
        lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not line.startswith("extract")]
        assert lines == ["ausil-lite extract: interrupted (finished videos stay stored; a rerun goes on from there)"]


def test_files_decoded_only_in_part_are_counted_named_and_set_the_exit_code(make_media, tmp_path, capsys):
    make_media("disk/whole.wav", noise(6.0))
    full = make_media("full.mkv", noise(8.0, seed=3)).read_bytes()
    (tmp_path / "disk" / "cut.mkv").write_bytes(full[: len(full) // 2])  # a download that stopped half-way
    listed = tmp_path / "videos.txt"
    listed.write_text("whole disk/whole.wav\ncut disk/cut.mkv\n")
    random = ["--backbone", "random"]  # reliability, not a model, is tested: the smallest backbone there is
    assert main(["extract", "--videos", str(listed), "--output", str(tmp_path / "f"), "--workers", "0", *random]) == 3
    out = capsys.readouterr().out
    assert "extracted 2 (1 in part)" in out and "failed 0" in out
    assert "PARTIAL cut: " in out and "cut.mkv: damaged audio, decoded 3.9" in out and " of 8.05 s (4" in out
    assert main(["extract", "--videos", str(listed), "--output", str(tmp_path / "f"), "--workers", "0", *random]) == 0

    assert main(["index", str(tmp_path / "disk"), "--index", str(tmp_path / "idx"), "--workers", "0", *random]) == 3
    out = capsys.readouterr().out
    assert "1 file(s) indexed in part" in out and f"PARTIAL {tmp_path / 'disk' / 'cut.mkv'}: damaged audio" in out
    assert main(["query", str(tmp_path / "disk" / "cut.mkv"), "--index", str(tmp_path / "idx")]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"WARNING: {tmp_path / 'disk' / 'cut.mkv'}: damaged audio") and "Warning" not in err
