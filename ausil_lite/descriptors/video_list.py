"""The original's video list format: one ``id path`` pair per line.

Paths may contain spaces (the id ends at the first whitespace); relative paths are read against the
list file's folder, so a list travels with its media. A path that is not valid UTF-8 (a name copied
from a disk with another encoding) is kept as the bytes it is, so it still opens that file.
"""

from __future__ import annotations

from pathlib import Path

from ausil_lite.errors import InputError


class VideoListError(InputError, ValueError):
    """A malformed list file; the message names the file and line."""


def read_video_list(path: str | Path) -> list[tuple[str, Path]]:
    """``[(id, path), ...]`` in file order. Blank lines and ``#`` comments are skipped."""
    path = Path(path)
    if not path.is_file():
        raise VideoListError(f"{path}: video list not found")
    items: list[tuple[str, Path]] = []
    seen: dict[str, int] = {}
    # utf-8-sig: a byte-order mark (Windows editors) is not part of the first id; surrogateescape: the
    # filesystem's own decoding of names
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise VideoListError(f"{path}:{number}: expected 'id path', got {line!r}")
        video_id, media = parts
        if video_id in seen:
            raise VideoListError(f"{path}:{number}: id {video_id!r} already listed on line {seen[video_id]}")
        seen[video_id] = number
        media_path = Path(media)
        items.append((video_id, media_path if media_path.is_absolute() else path.parent / media_path))
    return items


def write_video_list(path: str | Path, items: list[tuple[str, str | Path]]) -> Path:
    """Write ``id path`` lines (paths as given: pass relative ones to keep the list portable)."""
    path = Path(path)
    for video_id, _ in items:
        if not video_id or any(c.isspace() for c in video_id):
            raise VideoListError(f"{path}: id {video_id!r} is empty or contains whitespace")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{vid} {media}\n" for vid, media in items), encoding="utf-8")
    return path
