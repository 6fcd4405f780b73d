"""The source pools of the built benchmarks: real recordings from Debian packages, or any folder of audio/video files.

A *track* is the unit of provenance and of the train/evaluation split: one music file, or a run of
consecutive speech prompts joined into a 20-60 s clip (the Asterisk prompts last ~1.4 s each). The
manifest (``data_manifests/davr_mini_sources.csv``) has one row per file: its track, package, version,
licence, absolute path, sha256, duration (s, decoded), sample rate (Hz), channels, and why it is excluded
(empty when usable). The builder checks installed files against it so a benchmark is never silently
built from different recordings.

A :class:`SourceSet` names the packages of one benchmark and the manifest that pins their files:
``davr-mini`` (the four packages DAVR-mini splits into training and evaluation tracks) and ``davr-unseen``
(three packages that no training code reads, for evaluating a model on audio it never heard,
``data_manifests/davr_unseen_sources.csv``). Packages of :data:`RESERVED_PACKAGES` are kept for an
independent evaluation of the released model: no source set, scan or build may use them.

:func:`read_window` decodes only the requested stretch of a file (seeking, with one second of
pre-roll so codecs converge) and returns mono float32 at 44.1 kHz.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

from ausil_lite.datasets.archive_members import member_paths, open_recording, recording_digest, recording_exists
from ausil_lite.descriptors.audio import SAMPLE_RATE, decode_audio, resample
from ausil_lite.digests import file_digest
from ausil_lite.errors import InputError
from ausil_lite.paths import REPO_ROOT

MANIFEST = REPO_ROOT / "data_manifests" / "davr_mini_sources.csv"
UNSEEN_MANIFEST = REPO_ROOT / "data_manifests" / "davr_unseen_sources.csv"
RESERVED_PACKAGES = (
    "hyperrogue-music", "drascula-music", "colobot-common-sounds", "asterisk-core-sounds-fr*",
    "asterisk-core-sounds-es*",
)
"""Debian packages (shell patterns) kept for an independent evaluation of the released model: never for
training, tuning or choosing settings, so never in a source pool either."""
MANIFEST_COLUMNS = (
    "track", "package", "version", "licence", "kind", "path", "sha256", "duration_s", "sample_rate", "channels", "excluded",
)
MIN_TRACK_S = 20.0
"""Tracks shorter than this (seconds) cannot give a 20-s query and are excluded."""
SPEECH_TARGET_S = (30.0, 60.0)
"""Consecutive prompts are joined until a clip reaches 30 s, never past 60 s."""
SPEECH_GAP_S = 0.3
"""Silence between joined prompts, in seconds: a speaker's pause."""
JOINED_KINDS = ("speech", "effects")
"""Kinds whose short files (prompts, sound effects) are joined into 30-60 s tracks."""
MEDIA_SUFFIXES = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}
)


class SourcePoolError(InputError, ValueError):
    """Missing, changed or unusable source recordings; the message names the files."""


def refuse_reserved(packages: Iterable[str]) -> None:
    """Raises :class:`SourcePoolError` naming every package of :data:`RESERVED_PACKAGES` in ``packages``."""
    reserved = sorted({p for p in packages if any(fnmatch.fnmatchcase(p, pattern) for pattern in RESERVED_PACKAGES)})
    if reserved:
        raise SourcePoolError(
            f"{', '.join(reserved)}: reserved for an independent evaluation of the released model "
            f"(never for training, tuning or choosing settings); remove it from the source pool"
        )


@dataclass(frozen=True)
class PackageSpec:
    """Where one Debian package's recordings are and how to read them."""

    package: str
    kind: str  # "music", "moh" (music on hold, 8 kHz), "speech" (prompts joined into clips), "effects" (joined too)
    roots: tuple[str, ...]  # folders searched when dpkg cannot list the package
    suffixes: tuple[str, ...]
    licence: str
    licence_by_prefix: tuple[tuple[str, str], ...] = ()  # (path part, licence) overrides
    excluded: tuple[tuple[str, str], ...] = ()  # (path part, reason)
    archives: tuple[str, ...] = ()  # zip suffixes (".pk3") whose members with ``suffixes`` are recordings
    kind_by_prefix: tuple[tuple[str, str], ...] = ()  # (path part, kind) overrides: a game's voices beside its music

    def __post_init__(self) -> None:
        refuse_reserved([self.package])


DEFAULT_PACKAGES: tuple[PackageSpec, ...] = (
    PackageSpec(
        "wesnoth-1.16-music", "music", ("/usr/share/games/wesnoth/1.16/data/core/music",), (".ogg",), "GPL-2+",
        excluded=(
            ("/silence.ogg", "silent"),
            ("/frantic-old.ogg", "older version of frantic.ogg: a hidden duplicate"),
        ),
    ),
    PackageSpec(
        "warzone2100-music", "music", ("/usr/share/games/warzone2100/music",), (".opus",), "GPL-2+",
        licence_by_prefix=(
            ("/albums/aftermath_soundtrack/", "CC-BY-SA-3.0+ OR GPL-2+"),
            ("/albums/legacy_soundtrack/", "CC-BY-SA-3.0+ OR GPL-2+"),
        ),
        excluded=(("_enhanced.opus", "derived from another track of the pool: a hidden duplicate"),),
    ),
    PackageSpec("asterisk-moh-opsound-wav", "moh", ("/usr/share/asterisk/moh",), (".wav",), "CC-BY-SA-3.0"),
    PackageSpec(
        "asterisk-core-sounds-en-wav", "speech",
        ("/usr/share/asterisk/sounds/en_US_f_Allison", "/usr/share/asterisk/sounds/en"), (".wav",), "CC-BY-SA-3.0",
        excluded=(("/silence/", "silent"),),
    ),
)


UNSEEN_PACKAGES: tuple[PackageSpec, ...] = (
    PackageSpec(
        "nexuiz-music", "music", ("/usr/share/games/nexuiz/data",), (".ogg",), "GPL-2+", archives=(".pk3",),
        excluded=(
            ("/sixtyfour_revisited.ogg", "a remake of sixtyfour_.ogg: a hidden duplicate"),
            # 3-s stretches correlate 0.84-0.96 (waveform, 4 kHz) with sixtyfour_revisited, breakdown-easy and
            # neuronal-diving: shared samples, so a negative cut from one could hold a query's audio
            ("/infight.ogg", "shares stretches of audio with other tracks: a hidden duplicate"),
        ),
    ),
    PackageSpec("planetblupi-music-ogg", "music", ("/usr/share/planetblupi/music",), (".ogg",), "GPL-3+"),
    PackageSpec(
        "asterisk-core-sounds-ru-wav", "speech", ("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU",), (".wav",),
        "CC-BY-3.0", excluded=(("/silence/", "silent"),),
    ),
)


@dataclass(frozen=True)
class SourceFile:
    """One manifest row."""

    track: str
    package: str
    version: str
    licence: str
    kind: str
    path: str
    sha256: str
    duration_s: float
    sample_rate: int
    channels: int
    excluded: str = ""


@dataclass(frozen=True)
class Track:
    """A usable recording: one file, or consecutive speech prompts separated by ``gap_s`` of silence."""

    id: str
    package: str
    kind: str
    licence: str
    files: tuple[SourceFile, ...] = field(repr=False)
    gap_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return round(sum(f.duration_s for f in self.files) + self.gap_s * (len(self.files) - 1), 3)

    def read(self, start_s: float, duration_s: float, rate: int = SAMPLE_RATE) -> np.ndarray:
        """Mono float32 at ``rate`` Hz from ``start_s`` for ``duration_s`` seconds (shorter at the end)."""
        if len(self.files) == 1:
            return read_window(self.files[0].path, start_s, duration_s, rate)
        parts: list[np.ndarray] = []
        gap = np.zeros(int(round(self.gap_s * rate)), dtype=np.float32)
        for i, f in enumerate(self.files):
            samples, file_rate = decode_audio(f.path)
            parts.append(resample(samples, file_rate, rate))
            if i < len(self.files) - 1:
                parts.append(gap)
        whole = np.concatenate(parts)
        first = int(round(start_s * rate))
        return whole[first : first + int(round(duration_s * rate))].copy()


def _to_mono(frame: av.AudioFrame) -> np.ndarray:
    """The channel mean as float32 in [-1, 1] (FFmpeg's own downmix scales stereo by 1/sqrt(2) instead;
    the level does not matter, every item is peak-normalised when read)."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T
    if data.dtype == np.int16:
        data = data / 32768.0
    elif data.dtype == np.int32:
        data = data / 2147483648.0
    elif data.dtype == np.uint8:
        data = (data.astype(np.float64) - 128.0) / 128.0
    return data.mean(axis=0).astype(np.float32)


def _decode_span(container, stream, seek_s: float, first: int, last: int) -> tuple[list[np.ndarray], int | None]:
    """Samples ``first``..``last`` (source rate) decoded after seeking to ``seek_s``; also the position
    of the first decoded sample (None when nothing was decoded), so a seek past the target shows."""
    origin = stream.start_time or 0
    rate = stream.codec_context.sample_rate
    container.seek(int(seek_s / stream.time_base) + origin, stream=stream, backward=True)
    chunks: list[np.ndarray] = []
    start: int | None = None
    position = 0
    for frame in container.decode(stream):
        if start is None:
            if frame.pts is None and seek_s > 0:
                return [], None  # no timestamps: only a decode from the start can count samples
            position = 0 if frame.pts is None else int(round((frame.pts - origin) * stream.time_base * rate))
            start = position
            if start > first:
                break
        mono = _to_mono(frame)
        lo, hi = max(first - position, 0), min(last - position, mono.size)
        if hi > lo:
            chunks.append(mono[lo:hi])
        position += mono.size
        if position >= last:
            break
    return chunks, start


def read_window(path: str | Path, start_s: float, duration_s: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``duration_s`` seconds from ``start_s`` of the first audio stream, mono, at ``rate`` Hz.
    ``path`` may address an archive member (``<archive>!/<member>``).

    Seeks to one second before ``start_s`` (so Vorbis/Opus state converges), then cuts by timestamps;
    if the demuxer seeks past the target it starts again from the beginning.
    """
    if not recording_exists(path):
        raise SourcePoolError(f"{path}: source file not found")
    if start_s < 0 or duration_s <= 0:
        raise ValueError(f"window must have start >= 0 and duration > 0, got {start_s}, {duration_s}")
    with open_recording(path) as source, av.open(source, metadata_errors="replace") as container:
        if not container.streams.audio:
            raise SourcePoolError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        src_rate = stream.codec_context.sample_rate
        first = int(round(start_s * src_rate))
        last = first + int(round(duration_s * src_rate))
        chunks, position = _decode_span(container, stream, max(0.0, start_s - 1.0), first, last)
        if position is None or position > first:
            chunks, position = _decode_span(container, stream, 0.0, first, last)
    if not chunks:
        raise SourcePoolError(f"{path}: nothing decoded in {start_s:.2f}-{start_s + duration_s:.2f} s")
    return resample(np.concatenate(chunks), src_rate, rate).astype(np.float32, copy=False)


# --- scanning -------------------------------------------------------------------------------------------------


def package_version(package: str) -> str:
    """Installed Debian version of ``package`` ('' when dpkg is absent or the package is not installed)."""
    if shutil.which("dpkg-query") is None:
        return ""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def package_files(spec: PackageSpec) -> list[str]:
    """The package's recordings, sorted: from ``dpkg -L`` when available, else from its known folders;
    members of its archives are addressed as ``<archive>!/<member>``."""
    wanted = spec.suffixes + spec.archives
    files: list[Path] = []
    if shutil.which("dpkg-query") is not None:
        out = subprocess.run(["dpkg-query", "-L", spec.package], capture_output=True, text=True)
        if out.returncode == 0:
            files = [Path(line) for line in out.stdout.splitlines() if line.endswith(wanted)]
    if not files:
        for root in spec.roots:
            files += [p for p in Path(root).rglob("*") if p.suffix in wanted]
    paths: set[str] = set()
    for p in (p for p in files if p.is_file()):
        paths.update(member_paths(p, spec.suffixes) if p.name.endswith(spec.archives) else [str(p)])
    return sorted(paths)


def probe_file(path: str | Path) -> tuple[float, int, int]:
    """(duration in s, sample rate in Hz, channels) by decoding the whole audio stream."""
    with open_recording(path) as source, av.open(source, metadata_errors="replace") as container:
        if not container.streams.audio:
            raise SourcePoolError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
        n = sum(frame.samples for frame in container.decode(stream))
    return round(n / rate, 3), int(rate), int(channels)


def _match(path: str, rules: Sequence[tuple[str, str]]) -> str:
    return next((value for part, value in rules if part in path), "")


def scan_package(spec: PackageSpec) -> list[SourceFile]:
    """Manifest rows of one installed package (speech prompts grouped into tracks)."""
    paths = package_files(spec)
    if not paths:
        raise SourcePoolError(
            f"{spec.package}: no {'/'.join(spec.suffixes)} files found; install it (tools/system_packages.sh)"
        )
    version = package_version(spec.package)
    rows = []
    for path in paths:
        excluded = _match(path, spec.excluded)
        try:
            duration, rate, channels = probe_file(path)
        except (av.error.FFmpegError, SourcePoolError) as exc:  # some game files are malformed
            duration, rate, channels, excluded = 0.0, 0, 0, f"undecodable: {exc}"
        kind = _match(path, spec.kind_by_prefix) or spec.kind
        if not excluded and kind not in JOINED_KINDS and duration < MIN_TRACK_S:
            excluded = f"shorter than {MIN_TRACK_S:g} s"
        rows.append(
            SourceFile(
                track="", package=spec.package, version=version,
                licence=_match(path, spec.licence_by_prefix) or spec.licence, kind=kind,
                path=path, sha256=recording_digest(path), duration_s=duration, sample_rate=rate,
                channels=channels, excluded=excluded,
            )
        )
    return _name_tracks(spec, rows)


def _name_tracks(spec: PackageSpec, rows: list[SourceFile]) -> list[SourceFile]:
    """Music: one track per file. Speech and effects: consecutive files of a folder joined to 30-60 s tracks,
    numbered per kind (``<package>:speech000``)."""
    out = [replace(r, track=f"{spec.package}:{Path(r.path).stem}") for r in rows if r.kind not in JOINED_KINDS]
    for kind in JOINED_KINDS:
        out += _join_clips(spec.package, kind, [r for r in rows if r.kind == kind])
    return sorted(out, key=lambda r: r.path)


def _join_clips(package: str, kind: str, rows: list[SourceFile]) -> list[SourceFile]:
    """Consecutive usable files of one folder joined until a clip reaches 30 s (never past 60 s)."""
    out: list[SourceFile] = []
    groups: list[list[SourceFile]] = []
    folder = None
    for row in rows:
        if row.excluded:
            out.append(replace(row, track=f"{package}:{Path(row.path).parent.name}/{Path(row.path).stem}"))
            continue
        parent = str(Path(row.path).parent)
        total = sum(r.duration_s + SPEECH_GAP_S for r in groups[-1]) if groups else 0.0
        if parent != folder or total >= SPEECH_TARGET_S[0] or total + row.duration_s > SPEECH_TARGET_S[1]:
            groups.append([])
            folder = parent
        groups[-1].append(row)
    for number, group in enumerate(groups):
        total = sum(r.duration_s for r in group) + SPEECH_GAP_S * (len(group) - 1)
        reason = "" if total >= MIN_TRACK_S else f"joined clip shorter than {MIN_TRACK_S:g} s"
        out += [replace(r, track=f"{package}:{kind}{number:03d}", excluded=reason) for r in group]
    return out


def scan_directory(root: str | Path) -> list[SourceFile]:
    """Manifest rows for a user folder: every audio/video file is a track; its folder name is its group."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise SourcePoolError(f"{root}: source folder not found")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
    if not paths:
        raise SourcePoolError(f"{root}: no audio or video files ({', '.join(sorted(MEDIA_SUFFIXES))})")
    rows = []
    for path in paths:
        try:
            duration, rate, channels = probe_file(path)
            excluded = "" if duration >= MIN_TRACK_S else f"shorter than {MIN_TRACK_S:g} s"
        except (av.error.FFmpegError, SourcePoolError) as exc:
            duration, rate, channels, excluded = 0.0, 0, 0, f"undecodable: {exc}"
        rel = path.relative_to(root)
        package = f"dir:{root.name}" + (f"/{rel.parent}" if str(rel.parent) != "." else "")
        rows.append(
            SourceFile(
                track=f"dir:{root.name}/{rel.with_suffix('')}", package=package, version="", licence="user-supplied",
                kind="custom", path=str(path), sha256=file_digest(path), duration_s=duration, sample_rate=rate,
                channels=channels, excluded=excluded,
            )
        )
    return rows


# --- manifest I/O and tracks ----------------------------------------------------------------------------------


def write_manifest(rows: Iterable[SourceFile], path: str | Path) -> Path:
    """CSV with :data:`MANIFEST_COLUMNS`; deterministic (rows sorted by track then path, fixed formats)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for r in sorted(rows, key=lambda r: (r.track, r.path)):
        writer.writerow(
            [r.track, r.package, r.version, r.licence, r.kind, r.path, r.sha256, f"{r.duration_s:.3f}",
             r.sample_rate, r.channels, r.excluded]
        )
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


Row = TypeVar("Row")


def read_manifest_rows(path: str | Path, columns: tuple[str, ...], parse: Callable[[dict], Row], what: str) -> list[Row]:
    """``parse`` of each row of the CSV manifest ``path``, which must have exactly ``columns``.

    A missing file, other columns, or a row ``parse`` rejects (``TypeError``/``ValueError``) is a
    :class:`SourcePoolError` naming the file (and the line): one reader for every manifest's checks.
    """
    path = Path(path)
    if not path.is_file():
        raise SourcePoolError(f"{path}: {what} not found")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != columns:
            raise SourcePoolError(f"{path}: columns {reader.fieldnames} != {list(columns)}")
        rows = []
        for number, record in enumerate(reader, start=2):
            try:
                if None in record or None in record.values():
                    raise ValueError(f"expected {len(columns)} fields")
                rows.append(parse(record))
            except (TypeError, ValueError) as exc:
                raise SourcePoolError(f"{path}:{number}: bad row ({exc})") from exc
    return rows


def read_manifest(path: str | Path = MANIFEST) -> list[SourceFile]:
    return read_manifest_rows(path, MANIFEST_COLUMNS, lambda rec: SourceFile(
        **{**rec, "duration_s": float(rec["duration_s"]), "sample_rate": int(rec["sample_rate"]),
           "channels": int(rec["channels"])}), "source manifest")


def tracks_from_rows(rows: Iterable[SourceFile]) -> list[Track]:
    """Usable tracks (no file excluded), sorted by id."""
    grouped: dict[str, list[SourceFile]] = {}
    for row in rows:
        grouped.setdefault(row.track, []).append(row)
    tracks = []
    for track_id, files in sorted(grouped.items()):
        if any(f.excluded for f in files):
            continue
        files.sort(key=lambda f: f.path)
        first = files[0]
        gap = SPEECH_GAP_S if len(files) > 1 else 0.0
        tracks.append(Track(track_id, first.package, first.kind, first.licence, tuple(files), gap))
    return tracks


def verify_files(rows: Iterable[SourceFile]) -> None:
    """Raises :class:`SourcePoolError` listing files that are missing or differ from the manifest."""
    missing, changed = [], []
    for row in rows:
        if row.excluded:
            continue
        if not recording_exists(row.path):
            missing.append(row.path)
        elif recording_digest(row.path) != row.sha256:
            changed.append(row.path)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (first: {missing[:3]}); install them with tools/system_packages.sh")
    if changed:
        problems.append(
            f"{len(changed)} differ from the manifest's sha256 (first: {changed[:3]}): another package version; "
            "rescan with `ausil-lite build-benchmark --rescan-sources` to build from what is installed"
        )
    if problems:
        raise SourcePoolError("source pool does not match its manifest: " + "; ".join(problems))


@dataclass(frozen=True)
class SourceSet:
    """The Debian packages of one benchmark and the committed manifest that pins their files."""

    name: str
    packages: tuple[PackageSpec, ...]
    manifest: Path

    def rows(self, rescan: bool = False) -> list[SourceFile]:
        """The manifest's rows (checked against the installed files), or a rescan of the installed packages."""
        if rescan:
            return [row for spec in self.packages for row in scan_package(spec)]
        rows = read_manifest(self.manifest)
        refuse_reserved({r.package for r in rows})
        verify_files(rows)
        return rows


SOURCE_SETS: dict[str, SourceSet] = {
    "davr-mini": SourceSet("davr-mini", DEFAULT_PACKAGES, MANIFEST),
    "davr-unseen": SourceSet("davr-unseen", UNSEEN_PACKAGES, UNSEEN_MANIFEST),
}

