"""The released model's training corpus: every real recording we can reach that we may train on.

Debian packages carry music, speech prompts and sound effects (``../shared/reference/audio-sources.md``).
The corpus takes every one whose licence allows redistributing a model trained on it (:data:`LICENCE_TERMS`,
checked for every package and manifest row) except two groups, and refuses those by name:

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
draw from the corpus exactly as they draw from DAVR-mini's training tracks. The renders of
``data_manifests/release_renders.csv`` (:mod:`ausil_lite.datasets.renders`) join as kind ``renders``, each with
its score as its ``group``: the same music in other recordings, hard negatives for each other.

:func:`corpus_table` sums tracks and hours per package, kind and licence; the released model stores that table
in its card (``card/corpus.csv``), so the model card's licence summary comes from the manifests it learnt from.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from ausil_lite.datasets.media import write_media
from ausil_lite.datasets.renders import RENDER_MANIFEST, ensure_renders, read_render_manifest
from ausil_lite.datasets.sources import (
    MANIFEST as DAVR_MINI_MANIFEST,
    RESERVED_PACKAGES,
    UNSEEN_PACKAGES,
    PackageSpec,
    SourceFile,
    SourcePoolError,
    SourceSet,
    Track,
    read_manifest,
    scan_package,
    tracks_from_rows,
    verify_files,
    write_manifest,
)
from ausil_lite.paths import REPO_ROOT

CORPUS_MANIFEST = REPO_ROOT / "data_manifests" / "release_corpus.csv"

EVALUATION_PACKAGES = tuple(spec.package for spec in UNSEEN_PACKAGES) + (
    "nexuiz-*", "planetblupi-*", "asterisk-core-sounds-ru*", "asterisk-core-sounds-en-g722", "asterisk-core-sounds-en-gsm",
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


NAME_DUPLICATE = "a faster, older or remixed version of another track of the package: a hidden duplicate"
MAYBE_SYNTHETIC = "spoken words of unstated origin (may be synthetic speech)"

CORPUS_PACKAGES: tuple[PackageSpec, ...] = (
    _spec("ufoai-music", "music", ["/usr/share/games/ufoai/base"], [".ogg"], "GPL-2+ / CC-BY-3.0 (per file)",
          archives=(".pk3",)),
    _spec("singularity-music", "music", ["/usr/share/games/singularity/music"], [".ogg"], "CC-BY-SA-3.0"),
    _spec("asc-music", "music", ["/usr/share/games/asc/music"], [".mp3"], "GPL-2+"),
    _spec("pushover-data", "music", ["/usr/share/pushover"], [".ogg"], "GPL-3+"),
    _spec("supertux-data", "music", ["/usr/share/games/supertux2"], [".ogg", ".wav"], "GPL-3+",
          licence_by_prefix=(("/supertux2/music/", "GPL-2+"),),
          kind_by_prefix=(("/supertux2/sounds/", "effects"), ("/supertux2/speech/", "speech")),
          excluded=(("_old.ogg", NAME_DUPLICATE), ("/airship_remix.ogg", NAME_DUPLICATE),
                    ("/voc-daytime2.ogg", NAME_DUPLICATE))),
    _spec("supertuxkart-data", "music", ["/usr/share/games/supertuxkart/data"], [".ogg"], "CC-BY-SA-3.0",
          licence_by_prefix=(
              *((f"/music/{name}.ogg", "CC-BY-SA-4.0") for name in ("Boom_boom_boom", "alien_signal")),
              ("/music/klabauter_dance.ogg", "GPL"),
              *((f"/music/{name}.ogg", "GPL-3+") for name in ("Penguin_Party", "cocoa_river", "snowmountain",
                                                                "theGreatFair")),
              ("/data/sfx/", "CC0 / CC-BY-3.0 / CC-BY-SA-3.0 / CC-BY-SA-4.0 / GPL-2 / public domain (per file)"),
              ("/data/tracks/", "CC-BY-SA-3.0 / CC-BY-4.0 / GPL-2+ (per file)"),
              ("/data/library/", "GPL-3+"),
          ),
          kind_by_prefix=(("/data/sfx/", "effects"), ("/data/tracks/", "effects"), ("/data/library/", "effects")),
          excluded=(("_fast.ogg", NAME_DUPLICATE), ("/farm_f.ogg", NAME_DUPLICATE))),
    _spec("widelands-data", "music", ["/usr/share/games/widelands/data"], [".ogg"], "GPL-2+",
          licence_by_prefix=tuple((f"/music/ingame_{n}.ogg", "CC-BY-SA-3.0") for n in (24, 25, 26)),
          kind_by_prefix=(("/data/sound/", "effects"),)),
    _spec("naev-data", "music", ["/usr/share/naev/dat/snd"], [".ogg", ".wav"], "GPL-3 OR CC-BY-3.0",
          licence_by_prefix=(
              *((f"/music/{n}.ogg", "CC-BY-3.0") for n in ("ambiphonic", "void_sensor")),
              *((f"/music/{n}.ogg", "CC-BY-SA-3.0") for n in ("ambient4", "combat1", "combat2", "combat3", "dvaered1",
                                                              "dvaered2", "eureka", "sirius2", "terminal")),
              *((f"/music/{n}.ogg", "GPL-3+") for n in ("blackmoor_tides", "dark_city", "heartofmachine",
                                                        "imminent_threat", "motherload", "pirate1_theme1",
                                                        "pirates_orchestra")),
              *((f"/music/{n}.ogg", "GPL-2+") for n in ("agriculture", "cosmostation", "galacticbattle", "launch2",
                                                        "launch3chatstart", "liftoff", "machina", "mission", "ocean",
                                                        "peace1", "peace2", "peace4", "peace6", "snow")),
              ("/snd/sounds/", "GPL-2+"),
          ),
          kind_by_prefix=(("/snd/sounds/", "effects"),),
          excluded=(("/ambient2_5.ogg", NAME_DUPLICATE),)),
    _spec("hedgewars-data", "music", ["/usr/share/games/hedgewars/Data"], [".ogg"], "GPL-2",
          kind_by_prefix=(("/Sounds/voices/", "speech"), ("/Data/Sounds/", "effects"))),
    _spec("freedroidrpg-data", "music", ["/usr/share/freedroidrpg/data"], [".ogg"], "GPL-2+",
          kind_by_prefix=(("/voice_samples/", "speech"), ("/tux_ingame_comments/", "speech"),
                          ("/sound/effects/", "effects"))),
    _spec("marsshooter-data", "music", ["/usr/share/games/marsshooter/audio"], [".ogg", ".wav"], "GPL-3+",
          kind_by_prefix=(("/audio/toon/", "effects"), ("/audio/announcer/", "speech"), ("/audio/interface/", "effects"))),
    _spec("megaglest-data", "music", ["/usr/share/games/megaglest"], [".ogg", ".wav"], "CC-BY-SA-3.0",
          kind_by_prefix=(("/sounds/", "effects"),)),
    _spec("starfighter-data", "music", ["/usr/share/starfighter"], [".ogg"], "GPL-2+",
          kind_by_prefix=(("/sound/", "effects"),)),
    _spec("trackballs-data", "music", ["/usr/share/games/trackballs"], [".ogg", ".wav"], "GPL-2+",
          licence_by_prefix=tuple((f"/music/{n}.ogg", "Ethymonics-Free-Music-1.0")
                                  for n in ("c64revival", "crazy", "eurovision")),
          kind_by_prefix=(("/sfx/", "effects"),)),
    _spec("zaz-data", "music", ["/usr/share/games/zaz"], [".ogg", ".wav"], "GPL-3+",
          licence_by_prefix=(("/mus", "CC-BY-SA-3.0"),)),
    _spec("xmoto-data", "music", ["/usr/share/games/xmoto/Textures/Musics"], [".ogg"], "GPL-2+"),
    _spec("extremetuxracer-data", "music", ["/usr/share/games/etr"], [".ogg", ".wav"], "GPL-2+",
          kind_by_prefix=(("/etr/sounds/", "effects"),)),
    _spec("lincity-ng-data", "music", ["/usr/share/games/lincity-ng"], [".ogg", ".wav"], "GPL-2+",
          kind_by_prefix=(("/lincity-ng/sounds/", "effects"),)),
    _spec("frozen-bubble-data", "music", ["/usr/share/games/frozen-bubble/snd"], [".ogg", ".wav"], "GPL-2"),
    _spec("boswars-data", "effects", ["/usr/share/games/boswars"], [".wav", ".ogg"], "GPL-2+"),
    _spec("tecnoballz-data", "effects", ["/usr/share/games/tecnoballz/sounds"], [".wav"], "GPL-3+"),
    _spec("heroes-sound-effects", "effects", ["/usr/share/games/heroes/sfx"], [".wav"], "GPL-2+"),
    _spec("moon-lander-data", "effects", ["/usr/share/games/moon-lander/sounds"], [".wav"], "BSD-2-Clause"),
    _spec("oxygen-sounds", "effects", ["/usr/share/sounds"], [".ogg"], "LGPL-3.0-or-later"),
    _spec("sound-theme-freedesktop", "effects", ["/usr/share/sounds/freedesktop"], [".oga"], "CC-BY-SA-3.0 OR GPL-2+"),
    _spec("wesnoth-1.16-data", "effects", ["/usr/share/games/wesnoth/1.16"], [".ogg", ".wav"], "GPL-2+"),
    _spec("lugaru-data", "effects", ["/usr/share/games/lugaru/Sounds"], [".ogg"], "GPL-2+"),
    _spec("minetest-data", "effects", ["/usr/share/games/minetest"], [".ogg"], "CC-BY-SA-3.0"),
    _spec("qabcs-data", "effects", ["/usr/share/qabcs/abcs"], [".ogg"], "GPL-3+",
          excluded=(("/sounds/words/", MAYBE_SYNTHETIC), ("/sounds/alpha/", MAYBE_SYNTHETIC))),
    _spec("ktuberling-data", "speech", ["/usr/share/ktuberling/sounds"], [".ogg", ".opus", ".wav"], "GPL-2+ / CC-BY / CC0 (per file)"),
    _spec("klettres-data", "speech", ["/usr/share/klettres"], [".ogg"], "GPL-2+"),
    *(
        _spec(f"asterisk-core-sounds-it-{codec}", "speech", ["/usr/share/asterisk/sounds/it_IT_m_Carlo"], [f".{codec}"],
              "CC-BY-3.0", excluded=(("/silence/", "silent"),))
        for codec in ("wav", "g722", "gsm")
    ),
)
"""File-based packages beyond DAVR-mini's (whose training tracks join through :func:`davr_mini_training_rows`).
A game's files are music unless their folder says effects or speech (``kind_by_prefix``); licences follow the
package's ``debian/copyright`` file by file (``licence_by_prefix``), and a package whose files carry several
licences that the copyright file does not map to paths is marked ``(per file)``. Left out, with the reason in
:data:`LEFT_OUT`: packages whose audio FFmpeg cannot decode, whose licence is unclear, or that are evaluation audio."""

LEFT_OUT: dict[str, str] = {
    "fb-music-high, heroes-sound-tracks, tomatoes-data, pingus-data, ri-li-data":
        "tracker modules (.xm, .mod, .it, .s3m): FFmpeg as PyAV ships it cannot decode them",
    "xblast-tnt-musics, xblast-tnt-sounds": "raw PCM without a header",
    "beneath-a-steel-sky, flight-of-the-amazon-queen, lure-of-the-temptress":
        "speech and music inside ScummVM resource files FFmpeg cannot read; freeware licences, not free ones",
    "openclonk-data": "its copyright file says only that 'some' content files are CC-BY-3.0 or CC0: a music file's "
                      "licence is not stated",
    "nexuiz-data, planetblupi-music-midi": "the unseen-audio benchmark's games (the MIDI is the same music): refused",
    "openttd-opensfx": "its sounds sit in OpenTTD's own .cat container",
    "blobandconquer-data, neverball-data, blobwars-data": "no audio file with a suffix the corpus reads (not looked into further)",
    "trigger-rally-data, openarena-data": "audio inside .zip / .pk3 archives, not yet read (ufoai-music shows how)",
    "festvox-*, mbrola-*, espeak-ng-data": "synthetic speech (text to speech), not recordings",
}
"""Packages looked at and left out of the corpus, with why (the data manifests' README repeats it)."""

DEV_MANIFEST = REPO_ROOT / "data_manifests" / "davr_dev_sources.csv"
DEV_PACKAGES = ("supertux-data", "hedgewars-data", "asterisk-core-sounds-it-wav")
"""Corpus packages the development benchmark DAVR-dev is cut from: two games' music and Italian Asterisk prompts,
the shape of the unseen-audio benchmark (two music packages, one prompt set) in audio the released model trains on."""
DEV_SOURCES = SourceSet("davr-dev", tuple(s for s in CORPUS_PACKAGES if s.package in DEV_PACKAGES), DEV_MANIFEST)
"""DAVR-dev's source set: where a scoring rule or a penalty is chosen, on training data, before it is measured on
audio the model never heard (the evaluation benchmarks stay untouched by such choices)."""


def dev_manifest_rows(corpus: str | Path = CORPUS_MANIFEST) -> list[SourceFile]:
    """The corpus manifest's rows of :data:`DEV_PACKAGES`: DAVR-dev's sources are exactly what the corpus holds of them."""
    return [r for r in read_manifest(corpus) if r.package in DEV_PACKAGES]


DEV_HELD_OUT = ("supertux-data", "hedgewars-data", "asterisk-core-sounds-it-*")
"""Shell patterns of what a model must not hear for DAVR-dev to be unseen audio to it: DAVR-dev's packages and the
other codecs of its prompts (the same recordings)."""


def write_held_out_tracks(corpus_dir: str | Path, out_dir: str | Path, patterns: Iterable[str] = DEV_HELD_OUT) -> tuple[int, int]:
    """Write ``out_dir/train.csv``: the built corpus's ``train.csv`` (:func:`build_corpus`) without the tracks of the
    packages matching ``patterns``, its paths made absolute so they resolve from the new folder. A model trained on
    it meets DAVR-dev as the released model meets DAVR-unseen, so a setting chosen there is chosen on unheard audio
    (the released model itself trained on DAVR-dev's packages). Returns (tracks kept, tracks left out)."""
    corpus_dir, out_dir, patterns = Path(corpus_dir).resolve(), Path(out_dir), tuple(patterns)
    with open(corpus_dir / "train.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns, rows = reader.fieldnames, list(reader)
    kept = [r for r in rows if not any(fnmatch.fnmatchcase(r["package"], p) for p in patterns)]
    if not kept:
        raise CorpusError(f"{corpus_dir / 'train.csv'}: no track is left once {', '.join(patterns)} are held out")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in kept:
        path = row["path"]  # may address an archive member (<archive>!/<member>): only a relative one is joined
        writer.writerow({**row, "path": path if Path(path).is_absolute() else str(corpus_dir / path)})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train.csv").write_text(buffer.getvalue(), encoding="utf-8")
    return len(kept), len(rows) - len(kept)


def davr_mini_training_rows(manifest: str | Path = DAVR_MINI_MANIFEST) -> list[SourceFile]:
    """DAVR-mini's manifest rows, its evaluation tracks marked excluded (seed 0 split, as the study)."""
    from ausil_lite.datasets.davr_mini import split_tracks

    rows = read_manifest(manifest)
    train, _ = split_tracks(tracks_from_rows(rows), *DAVR_MINI_SPLIT)
    keep = {t.id for t in train}
    return [r if r.track in keep or r.excluded else replace(r, excluded="DAVR-mini evaluation track") for r in rows]


def scan_corpus(log: Callable[[str], None] = print) -> list[SourceFile]:
    """Every manifest row of the corpus as installed now (slow: decodes every file once; one line a package)."""
    refuse_reserved(spec.package for spec in CORPUS_PACKAGES)
    refuse_unlicensed(spec.licence for spec in CORPUS_PACKAGES)
    rows = davr_mini_training_rows()
    for number, spec in enumerate(CORPUS_PACKAGES, start=1):
        rows += scan_package(spec)
        log(f"scanned {number}/{len(CORPUS_PACKAGES)} packages ({spec.package})")
    return rows


def read_corpus_manifest(path: str | Path = CORPUS_MANIFEST) -> list[SourceFile]:
    """The committed corpus manifest; refuses one that names a reserved or evaluation package."""
    rows = read_manifest(path)
    refuse_reserved({r.package for r in rows if not r.excluded})
    return rows


LICENCE_TERMS = frozenset({
    "GPL", "GPL-2", "GPL-2+", "GPL-3", "GPL-3+", "LGPL-3.0-or-later", "BSD-2-Clause", "MIT", "CC0", "public domain",
    "CC-BY", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-SA", "CC-BY-SA-3.0", "CC-BY-SA-3.0+", "CC-BY-SA-4.0",
    "Ethymonics-Free-Music-1.0",
})
"""Licences under which a model trained on a recording may be redistributed (copyleft and attribution terms
are met by naming every file, its package and licence, in the manifests the model card points to)."""


def licence_terms(licence: str) -> tuple[str, ...]:
    """The licences named in a manifest's licence field: ``"GPL-2+ / CC-BY (per file)"`` -> GPL-2+, CC-BY;
    ``"public domain + MIT"`` (a render: the score's, then the soundfont's) -> both."""
    return tuple(t for t in re.split(r"\s+(?:/|OR|or|\+)\s+", licence.removesuffix("(per file)").strip()) if t)


def refuse_unlicensed(licences: Iterable[str]) -> None:
    """Raise :class:`CorpusError` naming licence fields with a term outside :data:`LICENCE_TERMS`."""
    unknown = sorted({lic for lic in licences if not set(licence_terms(lic)) <= LICENCE_TERMS})
    if unknown:
        raise CorpusError(f"licences not known to allow redistributing a trained model: {unknown}")


@dataclass(frozen=True)
class CorpusTrack:
    """One training track as ``train.csv`` lists it (``group``: the score id of a render, else '')."""

    id: str
    package: str
    kind: str  # music, moh, speech, effects, or renders
    licence: str
    duration_s: float
    group: str = ""


def corpus_tracks(manifest: str | Path = CORPUS_MANIFEST, renders: str | Path | None = RENDER_MANIFEST) -> list[CorpusTrack]:
    """The training tracks the manifests describe (no file is read): recordings, then renders."""
    rows = read_corpus_manifest(manifest)
    tracks = [CorpusTrack(t.id.replace(" ", "_"), t.package, t.kind, t.licence, t.duration_s)
              for t in tracks_from_rows(rows)]
    if renders is not None:
        tracks += [CorpusTrack(r.track, r.package, "renders", r.licence, r.duration_s, r.group)
                   for r in read_render_manifest(renders) if not r.excluded]
    refuse_reserved({t.package for t in tracks})
    refuse_unlicensed({t.licence for t in tracks})
    return tracks


TABLE_COLUMNS = ("package", "kind", "licence", "tracks", "hours")


def corpus_table(tracks: Iterable[CorpusTrack]) -> list[dict]:
    """Tracks and hours per (package, kind, licence), largest first: what the model card reports."""
    cells: dict[tuple[str, str, str], list[float]] = {}
    for t in tracks:
        cell = cells.setdefault((t.package, t.kind, t.licence), [0, 0.0])
        cell[0] += 1
        cell[1] += t.duration_s / 3600
    rows = [dict(zip(TABLE_COLUMNS, (*key, n, round(hours, 3)))) for key, (n, hours) in cells.items()]
    return sorted(rows, key=lambda r: (-r["hours"], r["package"], r["licence"]))


def write_corpus_table(tracks: Iterable[CorpusTrack], path: str | Path) -> Path:
    """:func:`corpus_table` as CSV (the released model's ``card/corpus.csv``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(corpus_table(tracks))
    Path(path).write_text(buffer.getvalue(), encoding="utf-8")
    return Path(path)


def hours_by(table: Iterable[dict], column: str) -> dict[str, float]:
    """Hours summed over ``table`` rows by ``column`` (kind, licence or package), largest first."""
    sums: Counter = Counter()
    for row in table:
        sums[row[column]] += float(row["hours"])
    return {k: round(v, 2) for k, v in sums.most_common()}


def licence_obligations(table: Iterable[dict]) -> dict[str, list[str]]:
    """The licence terms of ``table``, grouped by what redistributing a trained model asks of us."""
    terms = sorted({t for row in table for t in licence_terms(row["licence"])})
    return {
        "attribution": [t for t in terms if t.startswith("CC-BY")],
        "copyleft": [t for t in terms if t.startswith(("GPL", "LGPL", "CC-BY-SA", "Ethymonics"))],
        "permissive": [t for t in terms if t in ("MIT", "BSD-2-Clause", "CC0", "public domain")],
    }


@dataclass(frozen=True)
class CorpusSummary:
    """What a built corpus holds: tracks and hours by kind, by package and by licence."""

    root: Path
    tracks: int
    hours_by_kind: dict[str, float]
    hours_by_package: dict[str, float]
    hours_by_licence: dict[str, float]

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


def build_corpus(
    root: str | Path, manifest: str | Path = CORPUS_MANIFEST, renders: str | Path | None = RENDER_MANIFEST,
    log: Callable[[str], None] = print,
) -> CorpusSummary:
    """Check the installed recordings against ``manifest``, render what ``renders`` lists and ``root`` lacks,
    and write ``root/train.csv`` (TrainingPool's layout, with each render's score as its ``group``).

    Idempotent: joined clips and renders already there are reused (and checked against their SHA-256).
    """
    root = Path(root)
    listed = corpus_tracks(manifest, renders)  # refuses reserved, evaluation and unlicensed audio first
    rows = read_corpus_manifest(manifest)
    verify_files(rows)
    paths: dict[str, str | Path] = {}
    recordings = tracks_from_rows(rows)
    for number, t in enumerate(recordings, start=1):
        paths[t.id.replace(" ", "_")] = _track_path(t, root)
        if number % 500 == 0 or number == len(recordings):
            log(f"corpus: {number}/{len(recordings)} recordings checked")
    if renders is not None:
        render_rows = read_render_manifest(renders)
        ensure_renders(render_rows, root)
        paths.update((r.track, root / r.path) for r in render_rows if not r.excluded)
        log(f"corpus: {len(render_rows)} renders checked")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("id", "package", "kind", "licence", "duration_s", "path", "group"))
    for t in listed:
        writer.writerow((t.id, t.package, t.kind, t.licence, f"{t.duration_s:.3f}", paths[t.id], t.group))
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / ".train.csv"
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    tmp.replace(root / "train.csv")
    table = corpus_table(listed)
    return CorpusSummary(root, len(listed), dict(sorted(hours_by(table, "kind").items())),
                         dict(sorted(hours_by(table, "package").items())), hours_by(table, "licence"))


def manifest_digest(path: str | Path = CORPUS_MANIFEST) -> str:
    """SHA-1 of the manifest text: what a trained model records as the corpus it saw."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


def rescan_manifest(path: str | Path = CORPUS_MANIFEST, log: Callable[[str], None] = print) -> Path:
    """Regenerate the committed manifest from the installed packages."""
    return write_manifest(scan_corpus(log), path)
