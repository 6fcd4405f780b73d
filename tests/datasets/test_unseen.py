"""DAVR-unseen: reserved packages refused, its manifest, recordings inside archives, and the planned sizes."""

from __future__ import annotations

import hashlib
import zipfile
from collections import Counter

import numpy as np
import pytest

from ausil_lite.cli import main as run_cli
from ausil_lite.datasets import davr_mini as D
from ausil_lite.datasets import sources as S
from ausil_lite.datasets import transforms as T
from ausil_lite.datasets.media import write_media


def row(package: str, track: str = "t", path: str = "/nowhere/a.ogg") -> S.SourceFile:
    return S.SourceFile(f"{package}:{track}", package, "1", "CC0", "music", path, "0" * 64, 100.0, 44100, 2)


@pytest.mark.parametrize(
    "package", ["hyperrogue-music", "drascula-music", "colobot-common-sounds", "asterisk-core-sounds-fr-wav",
                "asterisk-core-sounds-es-g722"],
)
def test_a_reserved_package_is_refused_by_name(package):
    with pytest.raises(S.SourcePoolError, match=f"{package}: reserved for an independent evaluation"):
        S.PackageSpec(package, "music", ("/nowhere",), (".ogg",), "GPL-2+")


def test_the_builder_refuses_a_pool_holding_a_reserved_package(tmp_path):
    rows = [row(f"pkg{p}", f"t{i}", f"/nowhere/{p}/{i}.ogg") for p in range(3) for i in range(6)]
    rows.append(row("asterisk-core-sounds-es-wav", "speech000", "/usr/share/asterisk/sounds/es/1.wav"))
    with pytest.raises(S.SourcePoolError, match="asterisk-core-sounds-es-wav: reserved"):
        D.build_davr_mini("tiny", 0, root=tmp_path / "bench", pool_rows=rows, benchmark="davr-unseen")
    assert not (tmp_path / "bench").exists()  # refused before anything is written
    S.write_manifest(rows, tmp_path / "sources.csv")
    with pytest.raises(S.SourcePoolError, match="reserved"):
        S.SourceSet("edited", (), tmp_path / "sources.csv").rows()


def test_unseen_packages_are_outside_davr_mini_and_the_reserved_list():
    unseen = {p.package for p in S.UNSEEN_PACKAGES}
    assert unseen == {"nexuiz-music", "planetblupi-music-ogg", "asterisk-core-sounds-ru-wav"}
    assert unseen.isdisjoint(p.package for p in S.DEFAULT_PACKAGES)
    assert D.BENCHMARKS["davr-unseen"].sources.packages == S.UNSEEN_PACKAGES


def test_committed_unseen_manifest_round_trips_and_describes_its_packages(tmp_path):
    rows = S.read_manifest(S.UNSEEN_MANIFEST)
    again = S.write_manifest(rows, tmp_path / "again.csv")
    assert again.read_bytes() == S.UNSEEN_MANIFEST.read_bytes()
    assert {r.package for r in rows} == {p.package for p in S.UNSEEN_PACKAGES}
    assert all(len(r.sha256) == 64 and r.licence and r.version and r.sample_rate > 0 for r in rows)
    assert {r.licence for r in rows} == {"GPL-2+", "GPL-3+", "CC-BY-3.0"}
    assert all("music.pk3!/sound/cdtracks/" in r.path for r in rows if r.package == "nexuiz-music")
    excluded = {r.path.rsplit("/", 1)[-1]: r.excluded for r in rows if r.excluded}
    assert "hidden duplicate" in excluded["sixtyfour_revisited.ogg"] and "hidden duplicate" in excluded["infight.ogg"]
    kinds = Counter(t.kind for t in S.tracks_from_rows(rows))
    assert kinds["music"] >= 25 and kinds["speech"] >= 40


def test_recordings_inside_a_zip_are_scanned_read_and_verified(tmp_path):
    t = np.arange(22 * 16_000) / 16_000
    plain = write_media(tmp_path / "plain" / "song.wav", (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16_000)
    archive = tmp_path / "game" / "music.pk3"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.write(plain, "sound/song.wav")
        zf.writestr("sound/readme.txt", "not a recording")
    spec = S.PackageSpec("not-a-debian-package", "music", (str(archive.parent),), (".wav",), "CC0", archives=(".pk3",))
    [member] = S.scan_package(spec)
    assert member.path == f"{archive}!/sound/song.wav" and member.track == "not-a-debian-package:song"
    assert member.sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()
    assert member.duration_s == pytest.approx(22.0, abs=0.01) and member.sample_rate == 16_000
    np.testing.assert_array_equal(S.read_window(member.path, 3.0, 2.0), S.read_window(plain, 3.0, 2.0))
    S.verify_files([member])
    with pytest.raises(S.SourcePoolError, match="missing"):
        S.verify_files([S.SourceFile(**{**member.__dict__, "path": f"{archive}!/sound/gone.wav"})])


def test_planned_unseen_benchmark_has_100_queries_800_pairs_and_every_family():
    """Planned from data_manifests/ alone: no audio is read."""
    config = D.BENCHMARKS["davr-unseen"].config("ci")
    plan = D.plan_benchmark(S.tracks_from_rows(S.read_manifest(S.UNSEEN_MANIFEST)), config, seed=0)
    roles = Counter(i.role for i in plan.items)
    assert roles["query"] >= 100 and Counter(i.label for i in plan.items)["DA"] >= 800
    families = Counter(i.transform["family"] for i in plan.items if i.role == "positive")
    assert set(families) == set(T.FAMILIES) and min(families.values()) >= 70
    assert not plan.train  # every track evaluates
    by_track = {t.id: t.package for t in plan.evaluation}
    packages = Counter(by_track[i.source.track] for i in plan.items if i.role == "query")
    assert set(packages) == {p.package for p in S.UNSEEN_PACKAGES} and min(packages.values()) >= 30


def test_cli_names_the_profiles_a_benchmark_has(capsys):
    assert run_cli(["build-benchmark", "--benchmark", "davr-unseen", "--profile", "full"]) == 2
    assert "davr-unseen has no profile 'full'" in capsys.readouterr().err
