"""``ausil-lite query`` on bad input: each a one-line error naming the problem (exit code 2), no traceback."""

from __future__ import annotations

import numpy as np
import pytest

from ausil_lite.cli import main
from ausil_lite.search.update import update_index
from tests.search.conftest import DIM


@pytest.fixture
def index(synthetic, tmp_path):
    store, entries, tracks = synthetic
    update_index(tmp_path / "idx", entries, store)
    return tmp_path / "idx", tracks


def query(index_root, path, *options):
    return main(["query", str(path), "--index", str(index_root), *options])


def test_non_finite_query_descriptors_are_a_named_error(index, tmp_path, capsys):
    root, tracks = index
    for name, value in (("nan", np.nan), ("inf", -np.inf)):
        x = tracks["v03"][10:30].copy()
        x[:, 0] = value
        np.save(tmp_path / f"{name}.npy", x)
        assert query(root, tmp_path / f"{name}.npy") == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"{name}.npy: " in err and "in 20 of 20 segments" in err
    np.save(tmp_path / "fine.npy", tracks["v03"][10:30])
    assert query(root, tmp_path / "fine.npy", "--top", "1") == 0
    assert "v03" in capsys.readouterr().out


def test_empty_and_wrong_width_query_files_are_named(index, tmp_path, capsys):
    root, tracks = index
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "wide.npy", np.hstack([tracks["v03"], tracks["v04"]]))
    assert query(root, tmp_path / "empty.npy") == 2
    assert "empty.npy: empty file (0 bytes)" in capsys.readouterr().err
    assert query(root, tmp_path / "wide.npy") == 2
    err = capsys.readouterr().err
    assert f"wide.npy: descriptors of width {2 * DIM}, expected {DIM}" in err and "Traceback" not in err
