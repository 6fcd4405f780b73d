"""Fingerprints kept on disk, one file per video, so a benchmark is indexed once and re-scored freely.

Layout under ``root``::

    config.json   baseline name, resolved config, git commit: a cache never mixes settings
    <id>.npz      the fingerprint's arrays (a dataclass's fields, or one array named ``array``)
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ausil_lite.baselines.interface import Baseline
from ausil_lite.config import provenance
from ausil_lite.errors import InputError


NEUTRAL_SETTINGS = frozenset({"device", "batch_size", "timeout_s"})
"""Settings that change how fast a fingerprint is made, not what it is: a cache may differ in them."""


class CacheError(InputError):
    """A cache made with other settings, or an id that cannot name a file."""


class FingerprintCache:
    """Fingerprints of one baseline with one config under ``root``."""

    def __init__(self, root: str | Path, baseline: Baseline) -> None:
        self.root = Path(root)
        self.baseline = baseline
        config_path = self.root / "config.json"
        record = {"baseline": baseline.name, **provenance(baseline.config)}
        if config_path.is_file():
            stored = json.loads(config_path.read_text())
            wanted = json.loads(json.dumps(record["config"]))  # tuples become lists, as stored
            stored_config = stored.get("config", {})
            differs = [k for k in set(wanted) | set(stored_config)
                       if k not in NEUTRAL_SETTINGS and wanted.get(k) != stored_config.get(k)]
            if stored.get("baseline") != baseline.name or differs:
                raise CacheError(
                    f"{self.root}: holds {stored.get('baseline')} fingerprints made with {stored.get('config')}, "
                    f"asked for {baseline.name} with {record['config']}; use another folder"
                )
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            config_path.write_text(json.dumps(record, indent=2))

    def path(self, video_id: str) -> Path:
        if not video_id or "/" in video_id or "\\" in video_id or video_id.startswith(".") or any(c.isspace() for c in video_id):
            raise CacheError(f"{self.root}: id {video_id!r} cannot name a fingerprint file")
        return self.root / f"{video_id}.npz"

    def has(self, video_id: str) -> bool:
        return self.path(video_id).is_file()

    def save(self, video_id: str, fingerprint: Any) -> None:
        if isinstance(fingerprint, np.ndarray):
            arrays = {"array": fingerprint}
        else:
            arrays = {f.name: np.asarray(getattr(fingerprint, f.name)) for f in dataclasses.fields(fingerprint)}
        path = self.path(video_id)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)  # a crash never leaves a half-written fingerprint under the real name

    def load(self, video_id: str) -> Any:
        path = self.path(video_id)
        if not path.is_file():
            raise CacheError(f"{self.root}: no fingerprint for id {video_id!r}")
        with np.load(path) as data:
            kind = self.baseline.fingerprint_type
            if kind is np.ndarray:
                return data["array"]
            return kind(**{name: data[name].item() if data[name].ndim == 0 else data[name] for name in data.files})
