"""The released model's training corpus: refusals, the committed manifest, archives and the built pool."""

from __future__ import annotations

import csv
import fnmatch
import zipfile
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from ausil_lite.datasets import corpus as C
from ausil_lite.datasets import davr_mini as D
from ausil_lite.datasets import sources as S
from ausil_lite.datasets.media import write_media
from ausil_lite.datasets.training import TrainingPool
from ausil_lite.digests import file_digest


def tone(seconds: float, rate: int, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("package", ["hyperrogue-music", "drascula-music", "colobot-common-sounds",
                                     "asterisk-core-sounds-fr-wav", "asterisk-core-sounds-es-g722",
                                     "asterisk-core-sounds-fr", "nexuiz-music", "asterisk-core-sounds-en-gsm",
                                     "nexuiz-data", "planetblupi-music-midi"])
def test_the_corpus_refuses_reserved_and_evaluation_packages(package):
    with pytest.raises(C.CorpusError, match=package):
        C.refuse_reserved(["singularity-music", package])


def test_the_corpus_takes_ordinary_packages():
    C.refuse_reserved(["singularity-music", "asterisk-core-sounds-it-gsm", "asterisk-core-sounds-en-wav"])
    assert not any(C.refusal(spec.package) for spec in C.CORPUS_PACKAGES)


def test_every_package_licence_allows_a_trained_model():
    C.refuse_unlicensed(spec.licence for spec in C.CORPUS_PACKAGES)
    C.refuse_unlicensed(licence for spec in C.CORPUS_PACKAGES for _, licence in spec.licence_by_prefix)


def test_a_spec_naming_a_reserved_package_cannot_be_made():
    with pytest.raises(S.SourcePoolError, match="hyperrogue-music"):
        S.PackageSpec("hyperrogue-music", "music", ("/usr/share/games/hyperrogue",), (".ogg",), "GPL-2+")


def test_the_committed_manifest_has_no_refused_or_evaluation_audio():
    rows = C.read_corpus_manifest()
    usable = [r for r in rows if not r.excluded]
    assert usable and not any(C.refusal(r.package) for r in usable)
    # DAVR-mini's evaluation tracks stay out: only its training split joins
    _, evaluation = __import__("ausil_lite.datasets.davr_mini", fromlist=["split_tracks"]).split_tracks(
        S.tracks_from_rows(S.read_manifest()), *C.DAVR_MINI_SPLIT)
    assert not {t.id for t in evaluation} & {r.track for r in usable}
    assert sum(r.duration_s for r in usable) > 5 * 3600


def test_a_manifest_naming_a_reserved_package_is_refused(tmp_path):
    row = S.SourceFile("drascula-music:x", "drascula-music", "1", "GPL", "music", "/x.ogg", "0" * 64, 30.0, 44100, 2)
    S.write_manifest([row], tmp_path / "m.csv")
    with pytest.raises(C.CorpusError, match="drascula-music"):
        C.read_corpus_manifest(tmp_path / "m.csv")


def test_manifest_round_trips(tmp_path):
    rows = C.read_corpus_manifest()[:50]
    again = S.read_manifest(S.write_manifest(rows, tmp_path / "m.csv"))
    assert sorted(again, key=lambda r: (r.track, r.path)) == sorted(rows, key=lambda r: (r.track, r.path))


def test_archive_members_are_scanned_and_built_into_a_pool(tmp_path, monkeypatch):
    songs = tmp_path / "songs"
    songs.mkdir()
    archive = tmp_path / "music.pk3"
    with zipfile.ZipFile(archive, "w") as z:
        for name, freq in (("a", 300.0), ("b", 500.0)):
            z.write(write_media(songs / f"{name}.ogg", tone(22.0, 44_100, freq), 44_100), f"music/{name}.ogg")
        z.writestr("music/readme.txt", "not audio")
    spec = S.PackageSpec("some-music", "music", (str(tmp_path),), (".ogg",), "GPL-2+", archives=(".pk3",))
    monkeypatch.setattr(S.shutil, "which", lambda name: None)  # no dpkg: read the folder
    rows = [r for r in S.scan_package(spec) if "!/" in r.path]
    assert [r.track for r in rows] == ["some-music:a", "some-music:b"]
    assert all(r.path.startswith(f"{archive}!/music/") and not r.excluded for r in rows)
    assert rows[0].sha256 == file_digest(songs / "a.ogg")

    root = tmp_path / "corpus"
    summary = C.build_corpus(root, S.write_manifest(rows, tmp_path / "corpus.csv"), renders=None, log=lambda _: None)
    assert summary.tracks == 2 and summary.hours == pytest.approx(44.0 / 3600, abs=0.01)
    pool = TrainingPool.from_benchmark(root)
    assert pool.ids == ["some-music:a", "some-music:b"]
    assert pool.draw_clip(np.random.default_rng(0), 5.0).samples.size == 5 * 44_100

    changed = [replace(rows[0], sha256="1" * 64), rows[1]]
    with pytest.raises(S.SourcePoolError, match="differ"):
        C.build_corpus(root, S.write_manifest(changed, tmp_path / "changed.csv"), renders=None)


def test_a_games_voices_are_speech_beside_its_music(tmp_path, monkeypatch):
    for name, seconds in (("music/theme.ogg", 25.0), *((f"voices/v{i}.ogg", 3.0) for i in range(8))):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_media(tmp_path / name, tone(seconds, 22_050, 300.0), 22_050)
    spec = S.PackageSpec("some-game", "music", (str(tmp_path),), (".ogg",), "GPL-2+",
                         licence_by_prefix=(("/voices/", "CC0"),), kind_by_prefix=(("/voices/", "speech"),))
    monkeypatch.setattr(S.shutil, "which", lambda name: None)  # no dpkg: read the folder
    tracks = S.tracks_from_rows(S.scan_package(spec))
    assert [(t.id, t.kind, t.licence, len(t.files)) for t in tracks] == [
        ("some-game:speech000", "speech", "CC0", 8), ("some-game:theme", "music", "GPL-2+", 1)]


def test_short_effects_are_joined_into_tracks(tmp_path, monkeypatch):
    folder = tmp_path / "sfx"
    folder.mkdir()
    for i in range(12):
        write_media(folder / f"s{i:02d}.wav", tone(2.5, 22_050, 200.0 + 50 * i), 22_050)
    spec = S.PackageSpec("some-effects", "effects", (str(folder),), (".wav",), "CC0")
    monkeypatch.setattr(S.shutil, "which", lambda name: None)  # no dpkg: read the folder
    rows = S.scan_package(spec)
    tracks = S.tracks_from_rows(rows)
    # files join until a clip reaches 30 s: eleven make one track; the twelfth alone is too short to use
    assert [t.id for t in tracks] == ["some-effects:effects000"]
    assert tracks[0].duration_s == pytest.approx(11 * 2.5 + 10 * S.SPEECH_GAP_S, abs=0.05)
    assert [r.excluded for r in rows if r.track == "some-effects:effects001"] == ["joined clip shorter than 20 s"]


def test_the_release_install_list_names_every_corpus_package():
    import re

    from ausil_lite.datasets.renders import SOUNDFONTS
    from ausil_lite.paths import REPO_ROOT

    script = (REPO_ROOT / "tools" / "system_packages.sh").read_text(encoding="utf-8")
    needed = {s.package for s in C.CORPUS_PACKAGES} | {s.package for s in SOUNDFONTS} | {"fluidsynth"}
    listed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", script))
    assert needed <= listed, sorted(needed - listed)


def test_davr_dev_is_cut_from_the_corpus_and_from_nothing_else(tmp_path):
    """DAVR-dev, where scoring choices are made, holds training audio only: its committed manifest is exactly the
    corpus manifest's rows of its packages, and it shares no package with the benchmarks that measure the model."""
    rows = S.read_manifest(C.DEV_MANIFEST)
    assert rows == C.dev_manifest_rows()
    assert S.write_manifest(rows, tmp_path / "again.csv").read_bytes() == C.DEV_MANIFEST.read_bytes()
    assert {r.package for r in rows} == set(C.DEV_PACKAGES) == {s.package for s in C.DEV_SOURCES.packages}
    assert all(not C.refusal(p) for p in C.DEV_PACKAGES)
    assert set(C.DEV_PACKAGES).isdisjoint(p.package for p in S.UNSEEN_PACKAGES)
    assert D.BENCHMARKS["davr-dev"].sources is C.DEV_SOURCES


def test_planned_davr_dev_has_the_unseen_benchmarks_sizes_from_music_and_speech():
    """Planned from data_manifests/ alone: no audio is read."""
    plan = D.plan_benchmark(S.tracks_from_rows(S.read_manifest(C.DEV_MANIFEST)), D.BENCHMARKS["davr-dev"].config("ci"), seed=0)
    assert Counter(i.role for i in plan.items)["query"] == 100 and Counter(i.label for i in plan.items)["DA"] == 900
    by_track = {t.id: (t.package, t.kind) for t in plan.evaluation}
    queries = [by_track[i.source.track] for i in plan.items if i.role == "query"]
    assert set(queries) >= {("asterisk-core-sounds-it-wav", "speech")} and {k for _, k in queries} >= {"music", "speech"}
    assert {p for p, _ in queries} == set(C.DEV_PACKAGES)


def test_the_held_out_corpus_lists_no_davr_dev_recording_in_any_codec(tmp_path):
    """The chooser model of benchmarks/held_out_dev.py must never hear DAVR-dev: its packages and the other codecs of
    its prompts leave the track list; every other row is kept, its path resolving from the new folder."""
    corpus = tmp_path / "corpus"
    (corpus / "joined").mkdir(parents=True)
    rows = [("a:1", "supertux-data", "/usr/share/games/supertux2/music/x.ogg"),
            ("b:1", "asterisk-core-sounds-it-gsm", "joined/b_1.wav"),
            ("c:1", "widelands-data", "joined/c_1.wav"),
            ("d:1", "ufoai-music", "/usr/share/games/ufoai/base/0music.pk3!/music/y.ogg"),
            ("e:1", "hedgewars-data", "/usr/share/games/hedgewars/Data/Music/z.ogg")]
    lines = ["id,package,kind,licence,duration_s,path,group"] + [f"{i},{p},music,GPL-2+,60.000,{path}," for i, p, path in rows]
    (corpus / "train.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert C.write_held_out_tracks(corpus, tmp_path / "held") == (2, 3)
    with open(tmp_path / "held" / "train.csv", newline="", encoding="utf-8") as fh:
        kept = list(csv.DictReader(fh))
    assert [(r["id"], r["path"]) for r in kept] == [
        ("c:1", str(corpus.resolve() / "joined" / "c_1.wav")), ("d:1", "/usr/share/games/ufoai/base/0music.pk3!/music/y.ogg")]
    same_recordings = [*C.DEV_PACKAGES, *(s.package for s in C.CORPUS_PACKAGES if s.package.startswith("asterisk-core-sounds-it"))]
    assert all(any(fnmatch.fnmatchcase(p, h) for h in C.DEV_HELD_OUT) for p in same_recordings)
    with pytest.raises(C.CorpusError, match="no track is left"):
        C.write_held_out_tracks(corpus, tmp_path / "none", patterns=["*"])
