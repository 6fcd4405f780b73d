"""The released model's training corpus: every real recording we can reach that we may train on.

Debian packages carry music, speech prompts and sound effects (``../shared/reference/audio-sources.md``).
The corpus takes them all except two groups, and refuses those by name:

* **Reserved packages** (:data:`RESERVED_PACKAGES`), kept for an independent evaluation of the released model:
  never for training, tuning or choosing settings.
* **Evaluation audio of the study**: DAVR-mini's four packages enter with their *training* tracks only
  (the split of :func:`ausil_lite.datasets.davr_mini.split_tracks`, seed 0, as the study builds it), and the
  packages of the unseen-audio benchmark (:data:`EVALUATION_PACKAGES`) not at all. The other codecs of
  DAVR-mini's speech and music-on-hold packages carry the same recordings, so they stay out too.

A track is one music file (``ufoai-music``'s are read from inside its ``.pk3`` archive, addressed
``<archive>!/<member>``), or consecutive speech prompts or sound effects of one folder joined into a 30-60 s clip
(:func:`ausil_lite.datasets.sources.scan_package`).

The manifest ``data_manifests/release_corpus.csv`` has the source pool's columns (track, package, version,
licence, kind, path, sha256, duration, sample rate, channels, why excluded). :func:`build_corpus` checks the
installed files against it and writes ``train.csv`` (one single-file track a row, joined clips as wav) in
the layout :class:`ausil_lite.datasets.training.TrainingPool` reads, so self-supervised and triplet training
draw from the corpus exactly as they draw from DAVR-mini's training tracks.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from ausil_lite.datasets.sources import (
    MANIFEST as DAVR_MINI_MANIFEST,
    RESERVED_PACKAGES,
    UNSEEN_PACKAGES,
    PackageSpec,
    SourceFile,
    SourcePoolError,
    Track,
    read_manifest,
    scan_package,
    tracks_from_rows,
    verify_files,
    write_manifest,
)
from ausil_lite.media import write_media
from ausil_lite.paths import REPO_ROOT

CORPUS_MANIFEST = REPO_ROOT / "data_manifests" / "release_corpus.csv"

EVALUATION_PACKAGES = tuple(spec.package for spec in UNSEEN_PACKAGES) + (
    "asterisk-core-sounds-ru*", "asterisk-core-sounds-en-g722", "asterisk-core-sounds-en-gsm",
    "asterisk-moh-opsound-g722", "asterisk-moh-opsound-gsm",
)
"""Shell patterns of the unseen-audio benchmark's packages and of other codecs of the study's evaluation
recordings: outside the corpus, so the study's figures measure audio the released model never trained on."""

DAVR_MINI_SPLIT = (0.25, 0)
"""(train_fraction, seed) of the study's DAVR-mini: its training tracks are the only ones the corpus takes."""


class CorpusError(SourcePoolError):
    """A corpus that would train on reserved or evaluation audio, or that differs from its manifest."""


def refusal(package: str) -> str:
    """Why ``package`` may not enter the corpus ('' when it may)."""
    if any(fnmatch.fnmatchcase(package, pattern) for pattern in RESERVED_PACKAGES):
        return "reserved for the independent evaluation of the released model"
    if any(fnmatch.fnmatchcase(package, pattern) for pattern in EVALUATION_PACKAGES):
        return "evaluation audio of the study (the unseen-audio benchmark or DAVR-mini's recordings)"
    return ""


def refuse_reserved(packages: Iterable[str]) -> None:
    """Raise :class:`CorpusError` naming every package the corpus must not train on."""
    refused = {p: why for p in packages if (why := refusal(p))}
    if refused:
        raise CorpusError("the training corpus refuses " + "; ".join(f"{p} ({why})" for p, why in sorted(refused.items())))


def _spec(package, kind, roots, suffixes, licence, **kw) -> PackageSpec:
    return PackageSpec(package, kind, tuple(roots), tuple(suffixes), licence, **kw)


CORPUS_PACKAGES: tuple[PackageSpec, ...] = (
    _spec("ufoai-music", "music", ["/usr/share/games/ufoai/base"], [".ogg"], "GPL-2+ / CC-BY-3.0 (per file)",
          archives=(".pk3",)),
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

def davr_mini_training_rows(manifest: str | Path = DAVR_MINI_MANIFEST) -> list[SourceFile]:
    """DAVR-mini's manifest rows, its evaluation tracks marked excluded (seed 0 split, as the study)."""
    from ausil_lite.datasets.davr_mini import split_tracks

    rows = read_manifest(manifest)
    train, _ = split_tracks(tracks_from_rows(rows), *DAVR_MINI_SPLIT)
    keep = {t.id for t in train}
    return [r if r.track in keep or r.excluded else replace(r, excluded="DAVR-mini evaluation track") for r in rows]


def scan_corpus() -> list[SourceFile]:
    """Every manifest row of the corpus as installed now (slow: decodes every file once)."""
    refuse_reserved(spec.package for spec in CORPUS_PACKAGES)
    rows = davr_mini_training_rows()
    for spec in CORPUS_PACKAGES:
        rows += scan_package(spec)
    return rows


def read_corpus_manifest(path: str | Path = CORPUS_MANIFEST) -> list[SourceFile]:
    """The committed corpus manifest; refuses one that names a reserved or evaluation package."""
    rows = read_manifest(path)
    refuse_reserved({r.package for r in rows if not r.excluded})
    return rows


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


def _track_path(track: Track, root: Path) -> str | Path:
    """The one file a training pool reads for ``track``: its own file, or the joined clip as wav."""
    if len(track.files) == 1:
        return track.files[0].path
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

    Idempotent: joined clips already there are reused.
    """
    root = Path(root)
    rows = read_corpus_manifest(manifest)
    verify_files(rows)
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


def rescan_manifest(path: str | Path = CORPUS_MANIFEST) -> Path:
    """Regenerate the committed manifest from the installed packages."""
    return write_manifest(scan_corpus(), path)
