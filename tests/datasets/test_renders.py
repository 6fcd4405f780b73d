"""Renders of one score: the manifest, its errors, groups in the training pool and deterministic rendering."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ausil_lite.datasets import corpus as C
from ausil_lite.datasets import renders as R
from ausil_lite.datasets import sources as S
from ausil_lite.datasets.media import write_media
from ausil_lite.datasets.training import TrainingPool, TrainingTrack
from ausil_lite.digests import file_digest


def tone(seconds: float, freq: float, rate: int = 22_050) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def render_rows(root: Path, scores=("bach/a", "bach/b"), soundfonts=("sfA", "sfB")) -> list[R.Render]:
    """Fake renders (tones) under ``root``, two soundfonts per score, as the render manifest lists them."""
    rows = []
    for i, score in enumerate(scores):
        for j, font in enumerate(soundfonts):
            path = f"renders/{font}/{score.replace('/', '_')}.wav"
            write_media(root / path, tone(21.0 + i, 200.0 * (i + 1) + 7 * j), 22_050)
            rows.append(R.Render(f"music21:{score}@{font}", f"music21:{score}", f"{score}.mxl", font, f"{font}-pkg",
                                 "music21 10; 1", "public domain + MIT", path, file_digest(root / path), 21.0 + i,
                                 22_050, 1))
    return rows


def test_the_render_manifest_round_trips(tmp_path):
    rows = render_rows(tmp_path)
    again = R.read_render_manifest(R.write_render_manifest(rows, tmp_path / "renders.csv"))
    assert again == sorted(rows, key=lambda r: r.track)


@pytest.mark.parametrize("edit, message", [
    (lambda line: line.replace(",21.000,", ",long,"), "could not convert"),
    (lambda line: line.rsplit(",", 3)[0], "expected 13 fields"),
    (lambda line: line.replace("music21:bach/a@sfA", "music21:bach/z@sfA"), "not a render of group"),
])
def test_a_malformed_render_row_names_the_file_and_line(tmp_path, edit, message):
    path = R.write_render_manifest(render_rows(tmp_path), tmp_path / "renders.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = edit(lines[1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(S.SourcePoolError, match=rf"{path}:2: bad row \(.*{message}"):
        R.read_render_manifest(path)


def test_a_malformed_source_row_names_the_file_and_line(tmp_path):
    row = S.SourceFile("pkg:x", "pkg", "1", "GPL-2+", "music", "/x.ogg", "0" * 64, 30.0, 44100, 2)
    path = S.write_manifest([row, replace(row, track="pkg:y", path="/y.ogg")], tmp_path / "m.csv")
    path.write_text(path.read_text(encoding="utf-8").replace("/y.ogg,", "/y.ogg,extra,"), encoding="utf-8")
    with pytest.raises(S.SourcePoolError, match=rf"{path}:3: bad row"):
        C.read_corpus_manifest(path)


def test_changed_renders_are_named(tmp_path):
    rows = render_rows(tmp_path)
    R.ensure_renders(rows, tmp_path)  # all present and unchanged: nothing to do
    with pytest.raises(S.SourcePoolError, match="1 renders .* differ"):
        R.ensure_renders([replace(rows[0], sha256="1" * 64), *rows[1:]], tmp_path)


def test_renders_join_the_corpus_as_groups_of_their_score(tmp_path):
    root = tmp_path / "corpus"
    rows = render_rows(root)
    empty = S.write_manifest([], tmp_path / "sources.csv")
    summary = C.build_corpus(root, empty, R.write_render_manifest(rows, tmp_path / "renders.csv"), log=lambda _: None)
    assert summary.tracks == 4 and summary.hours_by_kind == {"renders": round((2 * 21 + 2 * 22) / 3600, 2)}
    assert summary.hours_by_licence == {"public domain + MIT": summary.hours}
    pool = TrainingPool.from_benchmark(root)
    assert {t.id: t.group for t in pool.tracks} == {r.track: r.group for r in rows}


def pool_of_groups(root: Path) -> TrainingPool:
    rows = render_rows(root)
    alone = root / "alone.wav"
    write_media(alone, tone(30.0, 900.0), 22_050)
    return TrainingPool([TrainingTrack(r.track, root / r.path, r.duration_s, r.group) for r in rows]
                        + [TrainingTrack("alone", alone, 30.0)])


def test_a_group_is_never_drawn_as_its_own_other_audio(tmp_path):
    pool = pool_of_groups(tmp_path)
    rng = np.random.default_rng(0)
    drawn = {pool.draw_clip(rng, 2.0, exclude="music21:bach/a@sfA").track for _ in range(40)}
    assert drawn and not drawn & {"music21:bach/a@sfA", "music21:bach/a@sfB"}
    assert "music21:bach/b@sfA" in drawn  # other groups still come


def test_siblings_are_the_same_moment_of_another_render(tmp_path):
    pool = pool_of_groups(tmp_path)
    rng = np.random.default_rng(1)
    anchor = pool.draw_clip(rng, 3.0, exclude="alone")
    sibling = pool.draw_sibling(rng, anchor)
    group = anchor.track.split("@")[0]
    assert sibling.track.startswith(group + "@") and sibling.track != anchor.track
    assert sibling.start_s == anchor.start_s and sibling.samples.size == anchor.samples.size
    state = rng.bit_generator.state
    assert pool.draw_sibling(rng, replace(anchor, track="alone")) is None
    assert rng.bit_generator.state == state  # a track without siblings draws nothing: old pools draw as before


def test_unknown_licences_are_refused():
    C.refuse_unlicensed(["GPL-2+ / CC-BY (per file)", "public domain + CC-BY-SA-4.0", "CC-BY-SA-3.0 OR GPL-2+"])
    assert C.licence_terms("GPL-2+ / CC-BY-3.0 (per file)") == ("GPL-2+", "CC-BY-3.0")
    with pytest.raises(C.CorpusError, match="non-commercial"):
        C.refuse_unlicensed(["GPL-2+", "CC-BY-NC-3.0 OR non-commercial"])


def test_the_licence_summary_sums_the_table():
    tracks = [C.CorpusTrack("a", "p", "music", "GPL-2+", 1800.0), C.CorpusTrack("b", "p", "music", "GPL-2+", 1800.0),
              C.CorpusTrack("c", "q", "renders", "public domain + CC-BY-SA-4.0", 900.0, "music21:x")]
    table = C.corpus_table(tracks)
    assert table[0] == {"package": "p", "kind": "music", "licence": "GPL-2+", "tracks": 2, "hours": 1.0}
    assert C.hours_by(table, "kind") == {"music": 1.0, "renders": 0.25}
    assert C.licence_obligations(table) == {"attribution": ["CC-BY-SA-4.0"], "copyleft": ["CC-BY-SA-4.0", "GPL-2+"],
                                            "permissive": ["public domain"]}


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not Path(R.SOUNDFONTS[1].path).is_file(),
                    reason="needs fluidsynth and timgm6mb-soundfont (tools/system_packages.sh --release)")
def test_rendering_is_deterministic_and_resumable(tmp_path):
    pytest.importorskip("music21")
    config = R.RenderConfig(scores=1, soundfonts=(R.SOUNDFONTS[1],))
    rows = R.render_corpus(tmp_path / "a", config, log=lambda _: None)
    again = R.render_corpus(tmp_path / "b", config, log=lambda _: None)
    assert [r.sha256 for r in rows] == [r.sha256 for r in again] and rows[0].duration_s > 20
    target = tmp_path / "a" / rows[0].path
    stamp = target.stat().st_mtime_ns
    R.ensure_renders(rows, tmp_path / "a", config)  # present and unchanged: not rendered again
    assert target.stat().st_mtime_ns == stamp
    target.unlink()
    R.ensure_renders(rows, tmp_path / "a", config)  # missing: rendered again, the same bytes
    assert file_digest(target) == rows[0].sha256
