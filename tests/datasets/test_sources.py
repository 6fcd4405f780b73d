"""The source pool: windowed decoding, scanning a folder, the manifest, speech joining, verification."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ausil_lite.datasets import sources as S
from ausil_lite.datasets.media import write_media
from ausil_lite.descriptors.audio import SAMPLE_RATE, decode_audio


def chirp(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * (200 + 150 * t) * t)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".ogg", ".flac"])
def test_read_window_matches_a_full_decode(tmp_path, suffix):
    rate = 16_000 if suffix != ".ogg" else 48_000
    path = write_media(tmp_path / f"a{suffix}", chirp(12.0, rate), rate)
    full, full_rate = decode_audio(path)
    for start in (0.0, 4.25, 9.0):
        window = S.read_window(path, start, 2.0, full_rate)
        first = int(round(start * full_rate))
        expected = full[first : first + window.size]
        assert window.size == 2 * full_rate
        scale = np.dot(window, expected) / np.dot(window, window)  # FFmpeg's downmix scale is not ours
        assert np.max(np.abs(window * scale - expected)) < 1e-3
    tail = S.read_window(path, 11.0, 5.0, full_rate)
    assert tail.size == pytest.approx(1.0 * full_rate, abs=0.05 * full_rate)


def test_read_window_resamples_to_the_analysis_rate(tmp_path):
    path = write_media(tmp_path / "a.wav", chirp(3.0, 8000), 8000)
    assert S.read_window(path, 1.0, 1.0).size == SAMPLE_RATE


def test_read_window_errors_name_the_file(tmp_path):
    with pytest.raises(S.SourcePoolError, match="not found"):
        S.read_window(tmp_path / "gone.wav", 0.0, 1.0)
    path = write_media(tmp_path / "a.wav", chirp(2.0, 8000), 8000)
    with pytest.raises(S.SourcePoolError, match="nothing decoded"):
        S.read_window(path, 5.0, 1.0)


def test_scan_directory_makes_one_track_per_file_and_flags_bad_ones(tmp_path):
    write_media(tmp_path / "band" / "one.ogg", chirp(25.0, 48_000), 48_000)
    write_media(tmp_path / "band" / "short.wav", chirp(5.0, 8000), 8000)
    (tmp_path / "broken.mp3").write_bytes(b"not audio at all" * 100)
    rows = {r.path.rsplit("/", 1)[-1]: r for r in S.scan_directory(tmp_path)}
    assert set(rows) == {"one.ogg", "short.wav", "broken.mp3"}
    assert rows["one.ogg"].duration_s == pytest.approx(25.0, abs=0.01) and not rows["one.ogg"].excluded
    assert rows["one.ogg"].package.endswith("/band") and rows["one.ogg"].sample_rate == 48_000
    assert "shorter" in rows["short.wav"].excluded
    assert rows["broken.mp3"].excluded.startswith("undecodable")
    assert [t.path for t in S.tracks_from_rows(rows.values())[0].files] == [rows["one.ogg"].path]


def test_manifest_round_trips_byte_for_byte(tmp_path):
    write_media(tmp_path / "src" / "a.wav", chirp(21.0, 8000), 8000)
    rows = S.scan_directory(tmp_path / "src")
    first = S.write_manifest(rows, tmp_path / "m1.csv")
    again = S.write_manifest(S.read_manifest(first), tmp_path / "m2.csv")
    assert first.read_bytes() == again.read_bytes()
    assert S.read_manifest(again) == sorted(rows, key=lambda r: (r.track, r.path))


def test_manifest_with_wrong_columns_is_refused(tmp_path):
    (tmp_path / "m.csv").write_text("track,path\nx,y\n")
    with pytest.raises(S.SourcePoolError, match="columns"):
        S.read_manifest(tmp_path / "m.csv")


def test_verify_files_reports_missing_and_changed(tmp_path):
    path = write_media(tmp_path / "a.wav", chirp(21.0, 8000), 8000)
    rows = S.scan_directory(tmp_path)
    S.verify_files(rows)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(S.SourcePoolError, match="differ"):
        S.verify_files(rows)
    path.unlink()
    with pytest.raises(S.SourcePoolError, match="missing"):
        S.verify_files(rows)


def test_speech_prompts_join_into_tracks_of_20_to_60_s(tmp_path):
    spec = S.PackageSpec("speech-pkg", "speech", (str(tmp_path),), (".wav",), "CC0")
    rows = []
    for folder in ("a", "b"):
        for i in range(30):
            rows.append(
                S.SourceFile("", "speech-pkg", "1", "CC0", "speech", f"{tmp_path}/{folder}/{i:02d}.wav", "0",
                             2.5, 8000, 1)
            )
    rows[3] = replace(rows[3], excluded="silent")
    named = S._name_tracks(spec, rows)
    tracks = S.tracks_from_rows(named)
    assert tracks and all(S.MIN_TRACK_S <= t.duration_s <= S.SPEECH_TARGET_S[1] for t in tracks)
    for t in tracks:  # consecutive prompts of one folder
        folders = {f.path.rsplit("/", 2)[1] for f in t.files}
        assert len(folders) == 1
    used = {f.path for t in tracks for f in t.files}
    assert rows[3].path not in used
    assert all(r.track for r in named)


def test_committed_manifest_describes_the_debian_pool():
    rows = S.read_manifest(S.MANIFEST)
    assert {r.package for r in rows} == {p.package for p in S.DEFAULT_PACKAGES}
    assert all(len(r.sha256) == 64 and r.licence and r.version for r in rows)
    tracks = S.tracks_from_rows(rows)
    assert sum(t.duration_s for t in tracks) > 3600 * 5
    excluded = {r.path.rsplit("/", 1)[-1] for r in rows if r.excluded}
    assert {"silence.ogg", "frantic-old.ogg", "track3_enhanced.opus"} <= excluded
