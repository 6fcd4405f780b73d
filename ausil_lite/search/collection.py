"""Which files of a user's collection to index, and a stable id for each version of a file.

A file's id hashes its absolute path, size and modification time (ns): re-indexing an unchanged
file finds the same id and does nothing; an edited file gets a new id, and the old one is dropped.
Ids are valid feature-store names (letters and digits only), also for names that are not valid UTF-8
(the path is hashed as the bytes the filesystem holds).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ausil_lite.errors import InputError

MEDIA_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .flv .wmv .mpg .mpeg .ts .3gp .ogv "
    ".wav .mp3 .flac .ogg .oga .opus .m4a .aac .wma .aiff .aif".split()
)
"""Suffixes walked in folders (case-insensitive); a file named on the command line is always tried."""


@dataclass(frozen=True)
class MediaFile:
    id: str
    path: Path  # absolute
    size: int  # bytes
    mtime_ns: int


def media_file(path: str | Path) -> MediaFile:
    """The keyed record of one existing file."""
    path = Path(path).absolute()
    stat = path.stat()
    digest = hashlib.sha1(os.fsencode(path) + f"\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:20]
    return MediaFile(f"m{digest}", path, stat.st_size, stat.st_mtime_ns)


@dataclass
class Discovery:
    files: list[MediaFile]
    ignored: int  # files in walked folders without a media suffix


def discover(paths: Iterable[str | Path]) -> Discovery:
    """Media files under ``paths`` (files as given, folders walked recursively), sorted by path.

    A path that does not exist raises :class:`InputError` naming it; the same file reached twice
    is listed once.
    """
    found: dict[Path, MediaFile] = {}
    ignored: set[Path] = set()
    for given in paths:
        given = Path(given)
        if given.is_file():
            record = media_file(given)
            found[record.path] = record
        elif given.is_dir():
            for folder, _, names in os.walk(given):
                for name in names:
                    if Path(name).suffix.lower() in MEDIA_SUFFIXES:
                        record = media_file(Path(folder) / name)
                        found[record.path] = record
                    else:
                        ignored.add(Path(folder, name).absolute())
        else:
            raise InputError(f"{given}: no such file or folder")
    return Discovery(sorted(found.values(), key=lambda f: str(f.path)), len(ignored))
