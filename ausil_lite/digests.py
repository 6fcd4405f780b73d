"""Content digests of files, read in 1 MiB blocks so large media never sit in memory whole.

One function for the source manifest's checksums, the search index's integrity check, the results'
up-to-date keys and the snapshot names of trained backbones.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of the bytes of ``path`` with ``hashlib``'s ``algorithm``."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
