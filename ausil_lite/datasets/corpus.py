"""The released model's training corpus: every real recording we can reach that we may train on.

Debian packages carry music, speech prompts and sound effects (``../shared/reference/audio-sources.md``).
The corpus takes them all except two groups, and refuses those by name:

* **Reserved packages** (:data:`RESERVED_PACKAGES`), kept for an independent evaluation of the released model:
  never for training, tuning or choosing settings.
* **Evaluation audio of the study**: DAVR-mini's four packages enter with their *training* tracks only
  (the split of :func:`ausil_lite.datasets.davr_mini.split_tracks`, seed 0, as the study builds it), and the
  packages of the unseen-audio benchmark (:data:`EVALUATION_PACKAGES`) not at all. The other codecs of
  DAVR-mini's speech and music-on-hold packages carry the same recordings, so they stay out too.

A track is one music file, or consecutive speech prompts or sound effects of one folder joined into a
30-60 s clip (:func:`ausil_lite.datasets.sources.scan_package`). Music inside a zip archive (``ufoai-music``'s
``.pk3``) is unpacked once into the corpus folder; its manifest path is ``<archive>!<member>``.

The manifest ``data_manifests/release_corpus.csv`` has the source pool's columns (track, package, version,
licence, kind, path, sha256, duration, sample rate, channels, why excluded). :func:`build_corpus` checks the
installed files against it and writes ``train.csv`` (one single-file track a row, joined clips as wav) in
the layout :class:`ausil_lite.datasets.training.TrainingPool` reads, so self-supervised and triplet training
draw from the corpus exactly as they draw from DAVR-mini's training tracks.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import av

from ausil_lite.datasets.sources import (
    DEFAULT_PACKAGES,
    MANIFEST as DAVR_MINI_MANIFEST,
    PackageSpec,
    SourceFile,
    SourcePoolError,
    Track,
    package_version,
    read_manifest,
    scan_package,
    tracks_from_rows,
    verify_files,
    write_manifest,
)
from ausil_lite.digests import file_digest
from ausil_lite.media import write_media
from ausil_lite.paths import REPO_ROOT

CORPUS_MANIFEST = REPO_ROOT / "data_manifests" / "release_corpus.csv"

RESERVED_PACKAGES = ("hyperrogue-music", "drascula-music", "colobot-common-sounds")
RESERVED_PREFIXES = ("asterisk-core-sounds-fr", "asterisk-core-sounds-es")
"""Every codec of the French and Spanish prompts (``-wav``, ``-gsm``, ``-g722``, the metapackage)."""

EVALUATION_PACKAGES = ("nexuiz-music", "planetblupi-music-ogg", "asterisk-core-sounds-ru-wav")
"""The unseen-audio benchmark's sources: outside the corpus, so its figures measure audio never trained on."""

SAME_RECORDINGS = ("asterisk-core-sounds-en-g722", "asterisk-core-sounds-en-gsm", "asterisk-moh-opsound-g722",
                   "asterisk-moh-opsound-gsm", "asterisk-core-sounds-ru")
"""Other codecs of the study's evaluation recordings: refused like them."""

DAVR_MINI_SPLIT = (0.25, 0)
"""(train_fraction, seed) of the study's DAVR-mini: its training tracks are the only ones the corpus takes."""


class CorpusError(SourcePoolError):
    """A corpus that would train on reserved or evaluation audio, or that differs from its manifest."""


def refusal(package: str) -> str:
    """Why ``package`` may not enter the corpus ('' when it may)."""
    if package in RESERVED_PACKAGES or package.startswith(RESERVED_PREFIXES):
        return "reserved for the independent evaluation of the released model"
    if package in EVALUATION_PACKAGES or package.startswith(SAME_RECORDINGS):
        return "evaluation audio of the study (the unseen-audio benchmark or DAVR-mini's recordings)"
    return ""


def refuse_reserved(packages: Iterable[str]) -> None:
    """Raise :class:`CorpusError` naming every package the corpus must not train on."""
    refused = {p: why for p in packages if (why := refusal(p))}
    if refused:
        raise CorpusError("the training corpus refuses " + "; ".join(f"{p} ({why})" for p, why in sorted(refused.items())))


@dataclass(frozen=True)
class ArchiveSpec:
    """Recordings inside a zip archive of a package (members ending in ``suffixes``)."""

    package: str
    archive: str
    suffixes: tuple[str, ...]
    licence: str


def _spec(package, kind, roots, suffixes, licence, **kw) -> PackageSpec:
    return PackageSpec(package, kind, tuple(roots), tuple(suffixes), licence, **kw)


CORPUS_PACKAGES: tuple[PackageSpec, ...] = (
    _spec("singularity-music", "music", ["/usr/share/games/singularity/music"], [".ogg"], "CC-BY-SA-3.0"),
    _spec("asc-music", "music", ["/usr/share/games/asc/music"], [".mp3"], "GPL-2+"),
    _spec("pushover-data", "music", ["/usr/share/pushover"], [".ogg"], "GPL-3+"),
    _spec("boswars-data", "effects", ["/usr/share/games/boswars"], [".wav", ".ogg"], "GPL-2+"),
    _spec("tecnoballz-data", "effects", ["/usr/share/games/tecnoballz/sounds"], [".wav"], "GPL-3+"),
    _spec("heroes-sound-effects", "effects", ["/usr/share/games/heroes/sfx"], [".wav"], "GPL-2+"),
    _spec("moon-lander-data", "effects", ["/usr/share/games/moon-lander/sounds"], [".wav"], "BSD-2-Clause"),
    _spec("oxygen-sounds", "effects", ["/usr/share/sounds"], [".ogg"], "LGPL-3.0-or-later"),
    _spec("sound-theme-freedesktop", "effects", ["/usr/share/sounds/freedesktop"], [".oga"], "CC-BY-SA-3.0 OR GPL-2+"),
    _spec("ktuberling-data", "speech", ["/usr/share/ktuberling/sounds"], [".ogg", ".opus", ".wav"], "GPL-2+ / CC-BY / CC0 (per file)"),
    *(
        _spec(f"asterisk-core-sounds-it-{codec}", "speech", ["/usr/share/asterisk/sounds/it_IT_m_Carlo"], [f".{codec}"],
              "CC-BY-3.0", excluded=(("/silence/", "silent"),))
        for codec in ("wav", "g722", "gsm")
    ),
)
"""File-based packages beyond DAVR-mini's (whose training tracks join through :func:`davr_mini_training_rows`).
Tracker modules (``.xm``, ``.mod``, ``.it``: fb-music-high, heroes-sound-tracks, tomatoes-data, tecnoballz's
music) and raw PCM (xblast-tnt) are left out: FFmpeg as PyAV ships it cannot decode them."""

ARCHIVES: tuple[ArchiveSpec, ...] = (
    ArchiveSpec("ufoai-music", "/usr/share/games/ufoai/base/0music.pk3", (".ogg",), "GPL-2+ / CC-BY-3.0 (per file)"),
)


def davr_mini_training_rows(manifest: str | Path = DAVR_MINI_MANIFEST) -> list[SourceFile]:
    """DAVR-mini's manifest rows, its evaluation tracks marked excluded (seed 0 split, as the study)."""
    from ausil_lite.datasets.davr_mini import split_tracks

    rows = read_manifest(manifest)
    train, _ = split_tracks(tracks_from_rows(rows), *DAVR_MINI_SPLIT)
    keep = {t.id for t in train}
    return [r if r.track in keep or r.excluded else replace(r, excluded="DAVR-mini evaluation track") for r in rows]


def unpacked_path(member_path: str, root: str | Path) -> Path:
    """Where ``<archive>!<member>`` is unpacked under the corpus folder ``root``."""
    archive, member = member_path.split("!", 1)
    return Path(root) / "unpacked" / Path(archive).name / member


def _unpack(spec: ArchiveSpec, root: Path) -> list[tuple[str, Path]]:
    """(manifest path, unpacked file) of each recording in the archive, unpacking what is missing."""
    if not Path(spec.archive).is_file():
        raise CorpusError(f"{spec.package}: {spec.archive} not found; install it (tools/system_packages.sh --release)")
    out = []
    with zipfile.ZipFile(spec.archive) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir() or not info.filename.lower().endswith(spec.suffixes):
                continue
            name = f"{spec.archive}!{info.filename}"
            target = unpacked_path(name, root)
            if not target.is_file() or target.stat().st_size != info.file_size:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_bytes(archive.read(info))
                tmp.replace(target)
            out.append((name, target))
    return out


def scan_archive(spec: ArchiveSpec, root: Path) -> list[SourceFile]:
    """Manifest rows of an archive's recordings (one track each), unpacking them under ``root``."""
    from ausil_lite.datasets.sources import MIN_TRACK_S, probe_file

    rows = []
    version = package_version(spec.package)
    for name, path in _unpack(spec, root):
        try:
            duration, rate, channels = probe_file(path)
            excluded = "" if duration >= MIN_TRACK_S else f"shorter than {MIN_TRACK_S:g} s"
        except (av.error.FFmpegError, SourcePoolError) as exc:
            duration, rate, channels, excluded = 0.0, 0, 0, f"undecodable: {exc}"
        rows.append(SourceFile(
            track=f"{spec.package}:{Path(name.split('!', 1)[1]).stem}", package=spec.package, version=version,
            licence=spec.licence, kind="music", path=name, sha256=file_digest(path), duration_s=duration,
            sample_rate=rate, channels=channels, excluded=excluded,
        ))
    return rows


def scan_corpus(root: str | Path) -> list[SourceFile]:
    """Every manifest row of the corpus as installed now (slow: decodes every file once)."""
    specs = [s.package for s in CORPUS_PACKAGES] + [a.package for a in ARCHIVES]
    refuse_reserved(specs)
    rows = davr_mini_training_rows()
    for spec in CORPUS_PACKAGES:
        rows += scan_package(spec)
    for archive in ARCHIVES:
        rows += scan_archive(archive, Path(root))
    return rows


def read_corpus_manifest(path: str | Path = CORPUS_MANIFEST) -> list[SourceFile]:
    """The committed corpus manifest; refuses one that names a reserved or evaluation package."""
    rows = read_manifest(path)
    refuse_reserved({r.package for r in rows if not r.excluded})
    return rows


def _resolve(rows: Sequence[SourceFile], root: Path) -> list[SourceFile]:
    """Rows whose archive members point at their unpacked files, checked against the manifest's sha256."""
    out, changed = [], []
    members = [r for r in rows if "!" in r.path and not r.excluded]
    for spec in ARCHIVES:
        if any(r.package == spec.package for r in members):
            _unpack(spec, root)
    for row in rows:
        if "!" in row.path and not row.excluded:
            path = unpacked_path(row.path, root)
            if file_digest(path) != row.sha256:
                changed.append(row.path)
            row = replace(row, path=str(path))
        out.append(row)
    if changed:
        raise CorpusError(f"{len(changed)} archive members differ from the corpus manifest (first: {changed[:3]})")
    verify_files([r for r in out if not r.excluded])
    return out


@dataclass(frozen=True)
class CorpusSummary:
    """What a built corpus holds: tracks and hours by kind and by package."""

    root: Path
    tracks: int
    hours_by_kind: dict[str, float]
    hours_by_package: dict[str, float]

    @property
    def hours(self) -> float:
        return round(sum(self.hours_by_kind.values()), 2)


def _track_path(track: Track, root: Path) -> Path:
    """The one file a training pool reads for ``track``: its own file, or the joined clip as wav."""
    if len(track.files) == 1:
        return Path(track.files[0].path)
    target = root / "joined" / (track.id.replace(":", "_").replace("/", "_") + ".wav")
    if not target.is_file():
        rate = track.files[0].sample_rate
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name("." + target.name)
        write_media(tmp, track.read(0.0, track.duration_s + 1.0, rate), rate, picture=False)
        tmp.replace(target)
    return target


def build_corpus(root: str | Path, manifest: str | Path = CORPUS_MANIFEST) -> CorpusSummary:
    """Check the installed recordings against ``manifest`` and write ``root/train.csv`` (TrainingPool's layout).

    Idempotent: unpacked and joined files already there are reused.
    """
    root = Path(root)
    rows = _resolve(read_corpus_manifest(manifest), root)
    tracks = tracks_from_rows(rows)
    refuse_reserved({t.package for t in tracks})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("id", "package", "kind", "licence", "duration_s", "path"))
    for t in tracks:
        writer.writerow((t.id.replace(" ", "_"), t.package, t.kind, t.licence, f"{t.duration_s:.3f}", _track_path(t, root)))
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / ".train.csv"
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    tmp.replace(root / "train.csv")
    by_kind, by_package = Counter(), Counter()
    for t in tracks:
        by_kind[t.kind] += t.duration_s / 3600
        by_package[t.package] += t.duration_s / 3600
    return CorpusSummary(root, len(tracks), {k: round(v, 2) for k, v in sorted(by_kind.items())},
                         {k: round(v, 2) for k, v in sorted(by_package.items())})


def manifest_digest(path: str | Path = CORPUS_MANIFEST) -> str:
    """SHA-1 of the manifest text: what a trained model records as the corpus it saw."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


def rescan_manifest(root: str | Path, path: str | Path = CORPUS_MANIFEST) -> Path:
    """Regenerate the committed manifest from the installed packages."""
    return write_manifest(scan_corpus(root), path)
