import os

import pytest

from ausil_lite.errors import InputError
from ausil_lite.search.collection import discover, media_file


def test_thousands_of_files_walked_quickly_and_keyed(tmp_path):
    for i in range(2100):
        folder = tmp_path / f"d{i % 7}"
        folder.mkdir(exist_ok=True)
        (folder / (f"clip{i}.mp4" if i % 3 else f"note{i}.txt")).write_bytes(b"x" * (i % 5))
    found = discover([tmp_path, tmp_path / "d1"])  # a folder reached twice is listed once
    assert len(found.files) == 1400 and found.ignored == 700
    assert [f.path for f in found.files] == sorted(f.path for f in found.files)
    assert len({f.id for f in found.files}) == 1400
    assert all(f.id.isalnum() for f in found.files)


def test_id_changes_with_content_not_with_rescans(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"1234")
    first = media_file(path)
    assert media_file(path) == first
    os.utime(path, ns=(first.mtime_ns + 10**9, first.mtime_ns + 10**9))
    assert media_file(path).id != first.id
    assert discover([path]).files[0].path == path.absolute()


def test_missing_path_is_named(tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        discover([tmp_path / "nowhere"])
