"""Read a video's descriptors from a stored ``.npy`` file given by a user (``similarity``, ``query``).

Such a file may be anything: empty, a text file renamed, a pickle, another model's features, or
descriptors with NaN or Inf in them (which would otherwise flow through to NaN similarities and a
ranking that means nothing). Each is a :class:`DescriptorFileError` that names the file and what is
wrong, so a batch can report the item and go on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ausil_lite.errors import InputError


NPY_MAGIC = b"\x93NUMPY"


class DescriptorFileError(InputError):
    """A ``.npy`` path that is missing or does not hold finite float (segments, dims) descriptors."""


def read_descriptor_file(path: str | Path, width: int | None = None) -> np.ndarray:
    """Float32 (segments, dims) descriptors stored in ``path``; ``width``: the dims they must have."""
    path = Path(path)
    if not path.is_file():
        raise DescriptorFileError(f"{path}: " + ("a folder, not a feature file" if path.is_dir() else "file not found"))
    with open(path, "rb") as handle:
        head = handle.read(len(NPY_MAGIC))
    if not head:
        raise DescriptorFileError(f"{path}: empty file (0 bytes), not stored features")
    if head != NPY_MAGIC:
        # np.load would try the bytes as a pickle and suggest allow_pickle=True: running code from the file
        raise DescriptorFileError(f"{path}: not a NumPy .npy file (it starts with {head!r})")
    try:
        descriptors = np.load(path, allow_pickle=False)
    except ValueError as exc:
        what = "holds Python objects (a pickled array)" if "pickle" in str(exc) else f"is cut short or damaged ({exc})"
        raise DescriptorFileError(f"{path}: not usable stored features: the file {what}") from exc
    except (OSError, EOFError) as exc:
        raise DescriptorFileError(f"{path}: not usable stored features: the file is cut short ({exc})") from exc
    if descriptors.ndim != 2 or len(descriptors) == 0 or not np.issubdtype(descriptors.dtype, np.floating):
        raise DescriptorFileError(
            f"{path}: expected float (segments, dims) descriptors, got {descriptors.dtype} {descriptors.shape}")
    if width is not None and descriptors.shape[1] != width:
        raise DescriptorFileError(
            f"{path}: descriptors of width {descriptors.shape[1]}, expected {width} (made with another backbone?)")
    finite = np.isfinite(descriptors)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        raise DescriptorFileError(
            f"{path}: {int(np.isnan(descriptors).sum())} NaN and {int(np.isinf(descriptors).sum())} infinite values "
            f"in {len(bad_rows)} of {len(descriptors)} segments (first: segment {bad_rows[0]})")
    return descriptors.astype(np.float32, copy=False)
