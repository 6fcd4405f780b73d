"""Content digests of files, read in 1 MiB blocks so large media never sit in memory whole.

One function for the source manifest's checksums, the search index's integrity check, the results'
up-to-date keys and the snapshot names of trained backbones; and the ``SHA256SUMS`` list that a
released model's folder is checked against on every load.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ausil_lite.errors import InputError


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of the bytes of ``path`` with ``hashlib``'s ``algorithm``."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


SUMS_FILE = "SHA256SUMS"
"""A folder's checksum list, one ``<sha256>  <name>`` line per file, as ``sha256sum`` writes and checks it."""


class ChecksumError(InputError):
    """A file that is missing from its folder or whose SHA-256 differs from the folder's ``SHA256SUMS``."""


def write_sha256sums(folder: str | Path, names: list[str]) -> Path:
    """Write ``folder/SHA256SUMS`` for the files ``names`` of ``folder`` (``sha256sum -c`` reads it too)."""
    folder = Path(folder)
    lines = [f"{file_digest(folder / name)}  {name}\n" for name in sorted(names)]
    (folder / SUMS_FILE).write_text("".join(lines), encoding="utf-8")
    return folder / SUMS_FILE


def read_sha256sums(folder: str | Path) -> dict[str, str]:
    """``{name: sha256}`` from ``folder/SHA256SUMS``; a malformed line raises naming it."""
    path = Path(folder) / SUMS_FILE
    sums = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name or "/" in name:
            raise ChecksumError(f"{path}:{number}: expected '<sha256>  <name>', got {line[:80]!r}")
        sums[name] = digest
    return sums


def verify_sha256sums(folder: str | Path, required: tuple[str, ...] = ()) -> None:
    """Check every file ``folder/SHA256SUMS`` lists, and that it lists each of ``required``.

    Raises :class:`ChecksumError` naming the first file that is missing, unlisted or altered, with
    the digest the list expects and the one found: a damaged download or an edited weight file must
    never load silently.
    """
    folder = Path(folder)
    sums = read_sha256sums(folder)
    unlisted = [name for name in required if name not in sums]
    if unlisted:
        raise ChecksumError(f"{folder / unlisted[0]}: not listed in {folder / SUMS_FILE}, so it cannot be verified")
    for name, expected in sums.items():
        path = folder / name
        found = file_digest(path) if path.is_file() else None
        if found != expected:
            state = "missing" if found is None else "altered or damaged"
            raise ChecksumError(f"{path}: {state}: {SUMS_FILE} expects sha256 {expected}, found {found or 'no file'}")
