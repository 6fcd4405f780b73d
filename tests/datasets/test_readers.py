"""FIVR-200K-alpha and SVD-alpha readers on small files of the official shapes, malformed ones included,
and on the real FIVR-200K annotations when the shared copy is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ausil_lite.datasets.benchmark import AnnotationError, Benchmark, read_id_list
from ausil_lite.datasets.fivr import load_fivr200k_alpha
from ausil_lite.datasets.svd import load_svd_alpha, read_groundtruth

SHARED_FIVR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fivr200k"


def write_fivr(root: Path, annotation, ids) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = annotation if isinstance(annotation, str) else json.dumps(annotation)
    (root / "annotation.json").write_text(text)
    (root / "youtube_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


IDS = ["q1", "q2", "q3", "a", "b", "c", "d", "e"]
GOOD = {
    "q1": {"ND": ["a"], "DA": ["a", "b"]},
    "q2": {"DA": ["c"], "CS": ["d"]},
    "q3": {"ND": ["e"]},  # no DA label: not an alpha query
}


def test_fivr_reader_builds_the_alpha_benchmark(tmp_path):
    root = write_fivr(tmp_path / "f", GOOD, IDS)
    (root / "media").mkdir()
    for vid in ("q1", "a", "c"):
        (root / "media" / f"{vid}.mp4").write_bytes(b"x")
    bench = load_fivr200k_alpha(root)
    assert bench.queries() == ["q1", "q2"]
    assert bench.database() == IDS
    assert bench.relevant("q1") == {"a", "b"} and bench.relevant("q2", ("DA", "CS")) == {"c", "d"}
    assert bench.n_pairs() == 3
    assert set(bench.missing()) == {"q2", "q3", "b", "d", "e"}
    assert bench.summary()["missing_relevant"] == 1 and bench.summary()["missing_queries"] == 1
    assert [v for v, _ in bench.videos()] == ["q1", "a", "c"]
    assert "1 of 3 annotated queries have no DA label" in bench.notes[0]
    report = bench.count_report()  # the paper's counts differ from this toy file: reported, not hidden
    assert any("queries 2 here, 76 expected" in line for line in report)


def test_fivr_video_list_and_stray_ids(tmp_path):
    root = write_fivr(tmp_path / "f", GOOD, IDS)
    (tmp_path / "v.mp4").write_bytes(b"x")
    (root / "videos.txt").write_text(f"a {tmp_path / 'v.mp4'}\nb {tmp_path / 'gone.mp4'}\n")
    assert set(load_fivr200k_alpha(root).paths) == {"a"}
    (root / "videos.txt").write_text("zz whatever.mp4\n")
    with pytest.raises(AnnotationError, match="videos.txt: names ids that are not in FIVR-200K-alpha: zz"):
        load_fivr200k_alpha(root)


@pytest.mark.parametrize(
    "annotation, message",
    [
        ('{"q1": {"DA": ["a",]}', "not valid JSON"),
        ('["q1"]', "expected an object"),
        ({"q1": {"DA": "a"}}, "list of id strings"),
        ({"q1": {"DA": ["a", "a"]}}, "repeat"),
        ({"q1": {"DA": ["a", "nope"]}}, "not in the database: nope"),
        ({"q1": {"DA": []}}, "empty DA list"),
        ({"qX": {"DA": ["a"]}}, "queries not in youtube_ids.txt"),
    ],
)
def test_fivr_malformed_files_raise_clear_errors(tmp_path, annotation, message):
    root = write_fivr(tmp_path / "f", annotation, IDS)
    with pytest.raises(AnnotationError, match=message) as info:
        load_fivr200k_alpha(root)
    assert "annotation.json" in str(info.value)


def test_repeated_ids_in_the_id_list_are_an_error(tmp_path):
    (tmp_path / "ids.txt").write_text("a\nb\na\n")
    with pytest.raises(AnnotationError, match="line 1"):
        read_id_list(tmp_path / "ids.txt")


def test_benchmark_refuses_queries_without_positives():
    with pytest.raises(AnnotationError, match="no DA positives: q"):
        Benchmark("toy", {"q": {"DA": []}}, ["q"], ["a"])


@pytest.mark.skipif(not (SHARED_FIVR / "annotation.json").is_file(), reason="shared FIVR-200K annotations absent")
def test_real_fivr200k_annotations():
    bench = load_fivr200k_alpha(annotation=SHARED_FIVR / "annotation.json", ids=SHARED_FIVR / "youtube_ids.txt",
                                media_dir=SHARED_FIVR / "no-media-here")
    assert len(bench.queries()) == 76 and len(bench.database()) == 225_960
    assert bench.n_pairs() == 3397
    assert bench.count_report() == ["FIVR-200K-alpha: pairs 3397 here, 3392 expected (+5)"]
    assert len(bench.missing()) == 225_960


def write_svd(root: Path, lines: list[str], unlabeled: list[str] | None = None) -> Path:
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "metadata" / "test_groundtruth").write_text("".join(f"{line}\n" for line in lines))
    if unlabeled is not None:
        (root / "metadata" / "unlabeled-data-id").write_text("".join(f"{u}\n" for u in unlabeled))
    return root


def test_svd_reader_builds_the_alpha_benchmark(tmp_path):
    root = write_svd(tmp_path / "s", ["q1 a 1", "q1 b 0", "q2 c 1", "q2 a 0"], ["u1", "u2", "a"])
    (root / "videos").mkdir()
    (root / "videos" / "q1.mp4").write_bytes(b"x")
    (root / "videos" / "u2.mp4").write_bytes(b"x")
    bench = load_svd_alpha(root)
    assert bench.queries() == ["q1", "q2"]
    assert bench.database() == ["a", "b", "c", "u1", "u2"]
    assert bench.relevant("q1") == {"a"} and bench.relevant("q1", ("negative",)) == {"b"}
    assert bench.relevant("q2") == {"c"} and bench.n_pairs() == 2
    assert set(bench.paths) == {"q1", "u2"} and "q2" in bench.missing()
    assert any("pairs 2 here, 1492 expected" in line for line in bench.count_report())


def test_svd_video_list_replaces_the_media_folder_and_refuses_stray_ids(tmp_path):
    root = write_svd(tmp_path / "s", ["q1 a 1", "q2 c 1"], ["u1"])
    (tmp_path / "a.mkv").write_bytes(b"x")
    listed = tmp_path / "mine.txt"
    listed.write_text(f"a {tmp_path / 'a.mkv'}\nu1 {tmp_path / 'gone.mp4'}\n")
    assert load_svd_alpha(root, video_list=listed).paths == {"a": tmp_path / "a.mkv"}
    listed.write_text("a x.mp4\nzz y.mp4\n")
    with pytest.raises(AnnotationError, match="mine.txt: names ids that are not in SVD-alpha: zz"):
        load_svd_alpha(root, video_list=listed)


def test_svd_reader_accepts_fivr_shaped_json(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    (root / "annotation.json").write_text(json.dumps({"q1": {"DA": ["a", "b"]}}))
    bench = load_svd_alpha(root)
    assert bench.database() == ["a", "b"] and any("not found" in n for n in bench.notes)


@pytest.mark.parametrize(
    "lines, message",
    [
        (["q1 a"], "expected 'query candidate 0|1'"),
        (["q1 a 2"], "expected 'query candidate 0|1'"),
        (["q1 a 1", "q1 a 0"], "already labelled on line 1"),
        (["q1 q1 1"], "against itself"),
        (["q1 a 0", "q2 b 1"], "no DA positives: q1"),
        (["q1 a 1", "a b 1"], "both queries and candidates"),
        ([], "no labelled pairs"),
    ],
)
def test_svd_malformed_files_raise_clear_errors(tmp_path, lines, message):
    root = write_svd(tmp_path / "s", lines)
    with pytest.raises(AnnotationError, match=message) as info:
        load_svd_alpha(root)
    assert "test_groundtruth" in str(info.value)


def test_svd_groundtruth_line_numbers_in_errors(tmp_path):
    root = write_svd(tmp_path / "s", ["q1 a 1", "", "q1 b x"])
    with pytest.raises(AnnotationError, match=r"test_groundtruth:3"):
        read_groundtruth(root / "metadata" / "test_groundtruth")


def test_annotation_and_id_lists_round_trip(tmp_path):
    from ausil_lite.datasets.benchmark import read_annotation_json, write_annotation_json, write_id_list

    annotations = {"q2": {"DA": ["b", "a"], "ST": ["c"]}, "q1": {"DA": ["d"]}}
    first = write_annotation_json(tmp_path / "a.json", annotations)
    again = write_annotation_json(tmp_path / "b.json", read_annotation_json(first))
    assert first.read_bytes() == again.read_bytes()
    assert read_annotation_json(again) == {"q1": {"DA": ["d"]}, "q2": {"DA": ["a", "b"], "ST": ["c"]}}
    assert read_id_list(write_id_list(tmp_path / "ids.txt", ["x", "y"])) == ["x", "y"]


def test_an_id_list_saved_with_a_byte_order_mark_reads_its_first_id_plainly(tmp_path):
    (tmp_path / "ids.txt").write_bytes("\ufeffx\ny\n".encode("utf-8"))
    assert read_id_list(tmp_path / "ids.txt") == ["x", "y"]
