"""Recordings stored inside zip archives, addressed as ``<archive>!/<member>``.

Some game packages ship their music inside one zip (Nexuiz's ``music.pk3`` holds 18 Ogg files, stored
uncompressed). Extracting them would tie the manifest's paths to a cache folder; addressing each member
as ``/usr/share/games/nexuiz/data/music.pk3!/sound/cdtracks/stairs.ogg`` (the jar-URL convention) keeps
one absolute path per recording, its sha256 over the member's bytes, and lets PyAV decode it straight
from the archive (a zip member is a seekable file object).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ausil_lite.digests import file_digest

MEMBER_MARK = "!/"


def split_member(path: str | Path) -> tuple[Path, str | None]:
    """``(archive, member)`` for an archive member's address, ``(path, None)`` for a plain file."""
    text = str(path)
    if MEMBER_MARK not in text:
        return Path(text), None
    archive, member = text.split(MEMBER_MARK, 1)
    return Path(archive), member


def member_paths(archive: str | Path, suffixes: tuple[str, ...]) -> list[str]:
    """Addresses of the members of ``archive`` whose names end with one of ``suffixes``, sorted."""
    with zipfile.ZipFile(archive) as zf:
        names = [info.filename for info in zf.infolist() if not info.is_dir() and info.filename.endswith(suffixes)]
    return sorted(f"{archive}{MEMBER_MARK}{name}" for name in names)


def recording_exists(path: str | Path) -> bool:
    """Whether the file, or the archive and its member, exist."""
    archive, member = split_member(path)
    if member is None or not archive.is_file():
        return archive.is_file()
    with zipfile.ZipFile(archive) as zf:
        return member in zf.NameToInfo


@contextmanager
def open_recording(path: str | Path) -> Iterator[str | BinaryIO]:
    """What ``av.open`` reads: the path of a plain file, or the member as a seekable binary file."""
    archive, member = split_member(path)
    if member is None:
        yield str(archive)
        return
    with zipfile.ZipFile(archive) as zf, zf.open(member) as fh:
        yield fh


def recording_digest(path: str | Path) -> str:
    """sha256 of the file's bytes, or of the member's (uncompressed) bytes."""
    archive, member = split_member(path)
    if member is None:
        return file_digest(archive)
    digest = hashlib.sha256()
    with zipfile.ZipFile(archive) as zf, zf.open(member) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
