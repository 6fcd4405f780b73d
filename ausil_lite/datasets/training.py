"""Training material drawn on the fly from DAVR-mini's training tracks, never from its evaluation tracks.

A built DAVR-mini lists its training tracks in ``train.txt`` (``id path``) and ``train.csv`` (with
durations); :class:`TrainingPool` cuts random clips from them and makes transformed positives with
:func:`ausil_lite.datasets.transforms.random_transform`::

    pool = TrainingPool.from_benchmark(data_root() / "davr-mini" / "ci")
    rng = np.random.default_rng(0)
    anchor, positive, params = pool.draw_pair(rng, duration_s=10.0)   # 44.1 kHz mono float32
    negative = pool.draw_clip(rng, 10.0, exclude=anchor.track)

Unrelated audio for ``embed``/``mix`` positives comes from another training track.

Tracks may form *groups* (``train.csv``'s optional ``group`` column): renders of one score through several
soundfonts (:mod:`ausil_lite.datasets.renders`) are the same music but not the same recording. A group's
tracks are never mixed into each other's positives, and :meth:`TrainingPool.draw_sibling` cuts the same
moment from another track of the group: a hard negative. A track without a group is a group of its own.

:meth:`TrainingPool.draw_elsewhere` cuts another moment of a clip's own track, away from the clip's window and
from every stretch that repeats it (:func:`ausil_lite.datasets.repeats.find_repeats`): the benchmarks' hard
negatives are of that kind (another passage of the query's own recording), and on DAVR-unseen they are most of
what outranks ausil-lite-v2's duplicates.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ausil_lite.datasets import transforms as T
from ausil_lite.datasets.archive_members import recording_exists
from ausil_lite.datasets.repeats import RATE as REPEAT_RATE, find_repeats, free_spans
from ausil_lite.datasets.sources import SourcePoolError, read_window
from ausil_lite.descriptors.audio import SAMPLE_RATE


@dataclass(frozen=True)
class TrainingTrack:
    id: str
    path: Path
    duration_s: float
    group: str = ""  # tracks of one group are the same music, never the same recording ('' = a group of its own)

    @property
    def group_id(self) -> str:
        return self.group or self.id


@dataclass(frozen=True)
class Clip:
    """Mono float32 samples at 44.1 kHz cut from ``track`` at ``start_s`` (seconds)."""

    samples: np.ndarray
    track: str
    start_s: float


class TrainingPool:
    """Random clips and (anchor, positive) pairs from training tracks."""

    def __init__(self, tracks: Sequence[TrainingTrack]):
        if len(tracks) < 2:
            raise SourcePoolError(f"a training pool needs at least two tracks, got {len(tracks)}")
        self.tracks = sorted(tracks, key=lambda t: t.id)
        self._group = {t.id: t.group_id for t in self.tracks}
        self._weights = np.array([t.duration_s for t in self.tracks]) / sum(t.duration_s for t in self.tracks)

    @classmethod
    def from_benchmark(cls, root: str | Path) -> TrainingPool:
        """The training tracks of the DAVR-mini built in ``root`` (from its ``train.csv``)."""
        table = Path(root) / "train.csv"
        if not table.is_file():
            raise SourcePoolError(f"{table}: not found; build DAVR-mini first (ausil-lite build-benchmark)")
        with open(table, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        tracks = []
        for row in rows:
            path = Path(row["path"])  # may address an archive member: <archive>!/<member>
            path = path if path.is_absolute() else Path(root) / path
            if not recording_exists(path):
                raise SourcePoolError(f"{table}: training track {row['id']} missing at {path}")
            tracks.append(TrainingTrack(row["id"], path, float(row["duration_s"]), row.get("group") or ""))
        return cls(tracks)

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.tracks]

    def draw_clip(self, rng: np.random.Generator, duration_s: float, exclude: str | None = None) -> Clip:
        """A clip of ``duration_s`` seconds (shorter only if a track is) from a track chosen by duration,
        never from ``exclude``'s group."""
        banned = self._group.get(exclude, exclude)
        weights = np.array([0.0 if t.group_id == banned else w for t, w in zip(self.tracks, self._weights)])
        track = self.tracks[int(rng.choice(len(self.tracks), p=weights / weights.sum()))]
        length = min(duration_s, track.duration_s)
        start = round(float(rng.uniform(0.0, max(track.duration_s - length, 0.0))), 3)
        return Clip(read_window(track.path, start, length, SAMPLE_RATE), track.id, start)

    def draw_sibling(self, rng: np.random.Generator, clip: Clip) -> Clip | None:
        """The same moment as ``clip`` from another track of its group (None when its group has one track).

        Draws from ``rng`` only when there is a sibling, so pools without groups draw exactly as before.
        """
        group = self._group[clip.track]
        siblings = [t for t in self.tracks if t.group_id == group and t.id != clip.track]
        if not siblings:
            return None
        track = siblings[int(rng.integers(len(siblings)))]
        start = min(clip.start_s, max(track.duration_s - 1.0, 0.0))
        length = min(clip.samples.size / SAMPLE_RATE, track.duration_s - start)
        return Clip(read_window(track.path, start, length, SAMPLE_RATE), track.id, start)

    def draw_elsewhere(self, rng: np.random.Generator, clip: Clip) -> Clip | None:
        """Another moment of ``clip``'s own track, as long as ``clip``, overlapping neither its window nor any
        stretch that repeats it (a loop would hold the clip's audio). None when the track has no such room.

        Draws from ``rng`` only when there is room."""
        track = next(t for t in self.tracks if t.id == clip.track)
        length = clip.samples.size / SAMPLE_RATE
        if track.duration_s <= length:  # no room beside the clip: spare the decode
            return None
        audio = read_window(track.path, 0.0, track.duration_s, REPEAT_RATE).astype(np.float64)
        taken = [(clip.start_s, clip.start_s + length), *find_repeats(audio, clip.start_s, length)]
        starts = [(a, b - length) for a, b in free_spans(track.duration_s, taken) if b - a > length]  # start ranges
        if not starts:
            return None
        sizes = np.array([hi - lo for lo, hi in starts])
        lo, hi = starts[int(rng.choice(len(starts), p=sizes / sizes.sum()))]
        start = round(float(rng.uniform(lo, hi)), 3)
        return Clip(read_window(track.path, start, length, SAMPLE_RATE), track.id, start)

    def draw_pair(
        self, rng: np.random.Generator, duration_s: float, families: Sequence[str] = T.TRAINING_FAMILIES,
        severe: float = 0.0,
    ) -> tuple[Clip, np.ndarray, dict]:
        """An anchor clip, a transformed copy of it (the positive) and the transformation record; ``severe`` as in
        :func:`ausil_lite.datasets.transforms.random_transform`."""
        anchor = self.draw_clip(rng, duration_s)
        other = None
        if set(families) & (T.NEEDS_OTHER | {"combo"}):
            other = self.draw_clip(rng, 2 * duration_s, exclude=anchor.track).samples
        positive, params = T.random_transform(anchor.samples, SAMPLE_RATE, rng, families=families, other=other,
                                              severe=severe)
        return anchor, positive, params
