"""Hard negatives for the training corpus: one score rendered through several soundfonts.

A duplicate is the *same recording*, transformed; the same music played again is not. Rendering one music21
score through two soundfonts gives exactly that second case: the notes, tempo and form are shared, the
instruments are not. The renders of one score form a *group* (the score id): training may use them as
negatives of each other (hard ones: the same music at the same moment) and never mixes one into another's
positive (:class:`ausil_lite.datasets.training.TrainingPool` excludes a whole group).

Rendering is deterministic (music21 writes the same MIDI, ``fluidsynth`` renders it without real-time timing)
and resumable (a render already on disk is kept), so the committed manifest ``data_manifests/release_renders.csv``
pins every render's SHA-256 and :func:`ensure_renders` regenerates the files anywhere the same music21,
FluidSynth and soundfont versions are installed. Paths are relative to the corpus root.

The scores are J.S. Bach's chorales from the music21 corpus: public-domain compositions whose encodings
music21 distributes by permission. Other repertories of that corpus are left out on purpose: the Essen
folksongs may only be used non-commercially, and the Humdrum encodings (Palestrina, the CCARH quartets)
reserve the rights to all derivative electronic formats.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path

from ausil_lite.datasets.sources import MIN_TRACK_S, SourcePoolError, package_version, probe_file, read_manifest_rows
from ausil_lite.digests import file_digest
from ausil_lite.paths import REPO_ROOT

RENDER_MANIFEST = REPO_ROOT / "data_manifests" / "release_renders.csv"
RENDER_DIR = "renders"
"""Folder, under the corpus root, that holds the renders (``renders/<soundfont>/<score>.flac``)."""


@dataclass(frozen=True)
class Soundfont:
    """A General MIDI soundfont from a Debian package."""

    package: str
    path: str
    licence: str

    @property
    def name(self) -> str:
        return Path(self.path).stem


SOUNDFONTS: tuple[Soundfont, ...] = (
    Soundfont("fluid-soundfont-gm", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "MIT"),
    Soundfont("timgm6mb-soundfont", "/usr/share/sounds/sf2/TimGM6mb.sf2", "GPL-2"),
    Soundfont("opl3-soundfont", "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2", "CC-BY-SA-4.0"),
)
"""Three unrelated sample sets (FluidR3's recorded instruments, TimGM6mb's small set, an OPL3 FM synthesiser).
FluidR3Mono is left out: FluidR3's samples again, so its renders would be near-duplicates, not negatives;
MuseScore General is left out for time (20 s a chorale, its sf3 samples are decompressed at every start)."""


@dataclass(frozen=True)
class RenderConfig:
    """Which scores are rendered through which soundfonts, and how."""

    scores: int = 60  # the first N chorales by music21 corpus path: 60 x 3 soundfonts is 1.8 hours
    soundfonts: tuple[Soundfont, ...] = SOUNDFONTS
    sample_rate: int = 44_100  # Hz
    gain: float = 0.6  # FluidSynth's master gain: 0.6 keeps four voices below clipping


@dataclass(frozen=True)
class Render:
    """One manifest row: a score rendered through one soundfont."""

    track: str
    group: str  # the score id: every render of one score shares it
    score: str  # music21 corpus path, e.g. bach/bwv1.6.mxl
    soundfont: str
    package: str  # the soundfont's Debian package
    version: str  # music21 version + the soundfont package's version
    licence: str  # "public domain + <the soundfont's licence>": the score's, then the samples'
    path: str  # relative to the corpus root
    sha256: str
    duration_s: float
    sample_rate: int
    channels: int
    excluded: str = ""


RENDER_COLUMNS = tuple(f.name for f in fields(Render))


def chorale_scores(count: int) -> list[str]:
    """The first ``count`` Bach chorales of the music21 corpus (``bach/<name>.mxl``), sorted by path.

    Variant encodings (``bwv112.5-sc``, ``bwv120.8-a``: another version of a chorale listed beside it) are
    skipped: rendered through one soundfont, a variant could be a near-duplicate of its chorale, not a negative.
    """
    from music21 import corpus

    paths = sorted(p for p in corpus.getComposer("bach") if p.suffix == ".mxl" and "-" not in p.stem)
    if len(paths) < count:
        raise SourcePoolError(f"music21's corpus has {len(paths)} Bach chorales, fewer than the {count} asked for")
    return [f"bach/{p.name}" for p in paths[:count]]


def render_score(score: str, soundfont: Soundfont, target: Path, config: RenderConfig) -> Path:
    """Render music21 corpus ``score`` through ``soundfont`` into ``target`` (FLAC, stereo), atomically."""
    from music21 import corpus

    if shutil.which("fluidsynth") is None:
        raise SourcePoolError("fluidsynth not found; install it (tools/system_packages.sh --release)")
    if not Path(soundfont.path).is_file():
        raise SourcePoolError(f"{soundfont.path}: soundfont not found; install {soundfont.package}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        midi = Path(tmp) / "score.mid"
        corpus.parse(score).write("midi", fp=str(midi))
        partial = target.with_name("." + target.name)
        command = ["fluidsynth", "-ni", "-q", "-g", str(config.gain), "-r", str(config.sample_rate), "-T", "flac",
                   "-F", str(partial), soundfont.path, str(midi)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not partial.is_file():
            raise SourcePoolError(f"{score} through {soundfont.name}: fluidsynth failed ({done.stderr.strip()[-300:]})")
    partial.replace(target)
    return target


def render_path(score: str, soundfont: Soundfont) -> str:
    return f"{RENDER_DIR}/{soundfont.name}/{score.replace('/', '_').removesuffix('.mxl')}.flac"


def _version(soundfont: Soundfont) -> str:
    import music21

    return f"music21 {music21.__version__}; {soundfont.package} {package_version(soundfont.package)}"


def render_corpus(root: str | Path, config: RenderConfig = RenderConfig(), log: Callable[[str], None] = print) -> list[Render]:
    """Render every (score, soundfont) of ``config`` under ``root`` (renders already there are kept) and
    return their manifest rows. Progress goes to ``log``, one line per score."""
    root = Path(root)
    scores = chorale_scores(config.scores)
    rows = []
    for number, score in enumerate(scores, start=1):
        group = f"music21:{score.removesuffix('.mxl')}"
        for soundfont in config.soundfonts:
            path = render_path(score, soundfont)
            target = root / path
            if not target.is_file():
                render_score(score, soundfont, target, config)
            duration, rate, channels = probe_file(target)
            excluded = "" if duration >= MIN_TRACK_S else f"shorter than {MIN_TRACK_S:g} s"
            rows.append(Render(f"{group}@{soundfont.name}", group, score, soundfont.name, soundfont.package,
                               _version(soundfont), f"public domain + {soundfont.licence}", path,
                               file_digest(target), duration, rate, channels, excluded))
        log(f"renders: {number}/{len(scores)} scores ({score})")
    return rows


def ensure_renders(rows: Iterable[Render], root: str | Path, config: RenderConfig = RenderConfig()) -> None:
    """Render what the manifest lists but ``root`` lacks, then check every usable render's SHA-256.

    Raises :class:`SourcePoolError` naming the renders that differ (another music21, FluidSynth or soundfont
    version made them: rescan with :func:`render_corpus` and commit the new manifest).
    """
    root = Path(root)
    soundfonts = {s.name: s for s in config.soundfonts}
    changed = []
    for row in rows:
        if row.excluded:
            continue
        target = root / row.path
        if not target.is_file():
            if row.soundfont not in soundfonts:
                raise SourcePoolError(f"{row.track}: soundfont {row.soundfont} is not one of {sorted(soundfonts)}")
            render_score(row.score, soundfonts[row.soundfont], target, config)
        if file_digest(target) != row.sha256:
            changed.append(row.path)
    if changed:
        raise SourcePoolError(
            f"{len(changed)} renders under {root} differ from the render manifest's sha256 (first: {changed[:3]}): "
            "another music21, FluidSynth or soundfont version; rerender with render_corpus and commit the manifest"
        )


def write_render_manifest(rows: Iterable[Render], path: str | Path = RENDER_MANIFEST) -> Path:
    """CSV with :data:`RENDER_COLUMNS`, rows sorted by track (deterministic)."""
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RENDER_COLUMNS)
    for r in sorted(rows, key=lambda r: r.track):
        writer.writerow([f"{r.duration_s:.3f}" if f == "duration_s" else getattr(r, f) for f in RENDER_COLUMNS])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def read_render_manifest(path: str | Path = RENDER_MANIFEST) -> list[Render]:
    """The render manifest's rows; a missing file, other columns or a malformed row is a
    :class:`SourcePoolError` naming the file (and the line)."""

    def parse(record: dict) -> Render:
        row = Render(**{**record, "duration_s": float(record["duration_s"]),
                        "sample_rate": int(record["sample_rate"]), "channels": int(record["channels"])})
        if not row.group or not row.track.startswith(row.group + "@"):
            raise ValueError(f"track {row.track!r} is not a render of group {row.group!r}")
        return row

    return read_manifest_rows(path, RENDER_COLUMNS, parse, "render manifest")
