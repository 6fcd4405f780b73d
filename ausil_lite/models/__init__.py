"""Released models, shipped inside the package: :mod:`~ausil_lite.models.released` knows the versions and
loads them (checksums first); :mod:`~ausil_lite.models.export` writes a version folder from a training run."""
