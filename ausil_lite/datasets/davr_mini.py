"""DAVR-mini, DAVR-unseen and DAVR-dev: benchmarks built from real recordings by a seed, by one builder.

A :class:`BenchmarkRecipe` names what is built: the folder under the data root, the source set of
Debian packages (:data:`ausil_lite.datasets.sources.SOURCE_SETS`) and the size profiles.
``davr-mini`` is the study's embedded default: four packages, each split into training and evaluation
tracks. ``davr-unseen`` evaluates a model on audio it never heard: three packages that no training code
reads (Nexuiz and Planet Blupi music, Russian Asterisk prompts), every track for evaluation and none for
training (``train_fraction=0``): a training split there would only invite tuning on them. ``davr-dev`` has
the unseen benchmark's sizes but is cut from three packages of the released model's training corpus
(:data:`ausil_lite.datasets.corpus.DEV_PACKAGES`): scoring rules and penalties are chosen there, on training
audio, and only then measured on the unseen one. Its ``severe`` profile draws every copy from the hard end of
its family's range (:data:`ausil_lite.datasets.transforms.SEVERE_DRAWS`), where settings that the full ranges
score alike still differ.

Planning is pure and cheap: from the source tracks, a :class:`DavrMiniConfig` and a seed it decides
every item (its source window, transformation record, unrelated audio, container) without touching
audio; rendering then decodes the windows, applies the records and muxes each item into a real video
(mp4 H.264/AAC or webm VP9/Opus with a small moving picture), in worker processes. Manifests come
from the plan alone, so the same seed and sources give byte-identical manifests.

Tracks are split once per seed into training and evaluation tracks (per package, ``train_fraction``
of them for training); every query, positive, hard negative, distractor and filler of the benchmark
comes from evaluation tracks, and :func:`plan_benchmark` asserts it. Within a track, query windows
are reserved: negatives and fillers are cut only from the rest, so the only duplicates of a query in
the database are its labelled positives.

A built benchmark, ``data_root()/<benchmark>/<profile>/``::

    annotation.json   {query: {"DA": [positives], "ST": [same-track segments], "SP": [same-package tracks]}}
    dataset_ids.txt   every id, queries and database, one a line (FIVR's youtube_ids.txt shape)
    queries.txt       "id path" lines (paths relative to this folder)
    database.txt      "id path" lines
    items.csv         every item: role, query, label, family, params (JSON), speed, tempo, source window ...
    train.txt         "id path" of the training tracks (never used by the benchmark)
    train.csv         training tracks: id, package, kind, licence, duration_s, path
    sources.csv       the source pool used (manifest rows)
    build.json        config, seed, counts, git commit, wall time (not part of the deterministic manifests)
    media/<id>.mp4|.webm, train/<id>.wav (joined speech prompts of training tracks)

Training code draws clips and transformed positives from the training tracks only:
:class:`ausil_lite.datasets.training.TrainingPool`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ausil_lite.config import git_commit
from ausil_lite.datasets import transforms as T
from ausil_lite.datasets.benchmark import Benchmark, read_annotation_json, write_annotation_json, write_id_list
from ausil_lite.datasets.corpus import DEV_SOURCES
from ausil_lite.datasets.media import write_media
from ausil_lite.datasets.repeats import RepeatFinder, free_spans
from ausil_lite.datasets.sources import (
    SOURCE_SETS,
    SourceFile,
    SourcePoolError,
    SourceSet,
    Track,
    read_manifest,
    refuse_reserved,
    scan_directory,
    tracks_from_rows,
    write_manifest,
)
from ausil_lite.descriptors.audio import SAMPLE_RATE
from ausil_lite.descriptors.video_list import read_video_list, write_video_list
from ausil_lite.paths import data_root

ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ID_LENGTH = 11  # YouTube's id shape, so ids say nothing about an item's role
MARGIN_S = 1.0
"""Gap kept between a query's window and any other window cut from its track, in seconds."""
MIN_NEGATIVE_S = 8.0
"""Shortest hard negative or distractor, in seconds (a window shorter than this is not drawn)."""
TABLE_COLUMNS = (
    "id", "role", "query", "label", "family", "params", "speed", "tempo", "track", "package", "kind",
    "start_s", "source_duration_s", "duration_s", "others", "container", "path",
)


@dataclass(frozen=True)
class DavrMiniConfig:
    """Sizes and mix of a DAVR-mini build (durations in seconds)."""

    n_queries: int = 15
    n_database: int = 300
    query_s: tuple[float, float] = (20.0, 30.0)  # ci keeps clips short: features are later extracted on CPU
    distractor_s: tuple[float, float] = (15.0, 30.0)
    positives_per_query: int = 8
    hard_negatives_per_query: int = 2  # alternately same track (other segment) and same package (other track)
    train_fraction: float = 0.25  # share of each package's tracks kept for training (0: none)
    families: tuple[str, ...] = T.FAMILIES
    negative_transform_rate: float = 0.5  # negatives get a transformation too, so artefacts do not signal relevance
    webm_fraction: float = 0.25  # share of items in webm (VP9/Opus); the rest mp4 (H.264/AAC)
    severe: bool = False  # positives drawn from the hard end of each family's range (transforms.SEVERE_DRAWS)

    def __post_init__(self) -> None:
        unknown = set(self.families) - set(T.FAMILIES)
        if unknown:
            raise ValueError(f"unknown transformation families {sorted(unknown)}; known: {T.FAMILIES}")
        if not self.families:
            raise ValueError("families must not be empty")
        if self.severe and set(self.families) - set(T.SEVERE_FAMILIES):
            raise ValueError(f"severe positives need families with a severe range ({T.SEVERE_FAMILIES}), "
                             f"got {sorted(set(self.families) - set(T.SEVERE_FAMILIES))}")
        for name in ("query_s", "distractor_s"):
            low, high = getattr(self, name)
            if not MIN_NEGATIVE_S <= low <= high:
                raise ValueError(f"{name} must satisfy {MIN_NEGATIVE_S} <= low <= high, got {(low, high)}")
        if self.n_queries < 1 or self.positives_per_query < 1:
            raise ValueError("need at least one query and one positive per query")
        if self.distractor_count < 0:
            raise ValueError(
                f"n_database={self.n_database} is smaller than the positives and hard negatives "
                f"({self.n_queries} x {self.positives_per_query + self.hard_negatives_per_query})"
            )
        if not 0.0 <= self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in [0, 1), got {self.train_fraction}")

    @property
    def distractor_count(self) -> int:
        return self.n_database - self.n_queries * (self.positives_per_query + self.hard_negatives_per_query)


def replace_config(config: DavrMiniConfig, **changes) -> DavrMiniConfig:
    """A copy of ``config`` with ``changes`` (validated again; unknown keys raise TypeError)."""
    return replace(config, **changes)


PROFILES: dict[str, DavrMiniConfig] = {
    "tiny": DavrMiniConfig(  # the test suite's end-to-end study
        n_queries=4, n_database=44, query_s=(12.0, 16.0), distractor_s=(8.0, 12.0), positives_per_query=6,
        hard_negatives_per_query=2,
    ),
    "ci": DavrMiniConfig(),
    "full": DavrMiniConfig(
        n_queries=100, n_database=3000, query_s=(20.0, 90.0), distractor_s=(15.0, 90.0),
        positives_per_query=11, hard_negatives_per_query=3,
    ),
}

UNSEEN_PROFILES: dict[str, DavrMiniConfig] = {
    "tiny": replace(PROFILES["tiny"], train_fraction=0.0),
    # 100 queries x 9 positives: one pair moves mAP by at most 0.001; every family gets 81-82 pairs.
    # Clips stay as short as ci's, since every method's features of 1,300 videos are extracted on CPU.
    "ci": DavrMiniConfig(
        n_queries=100, n_database=1200, query_s=(20.0, 30.0), distractor_s=(15.0, 30.0), positives_per_query=9,
        hard_negatives_per_query=2, train_fraction=0.0,
    ),
}

DEV_PROFILES: dict[str, DavrMiniConfig] = {
    **UNSEEN_PROFILES,
    # Only the hard end of each range (60 queries x one copy per severe family): DAVR-dev's ci profile is scored
    # near 1 by every setting, so it cannot choose how a model treats short crops, quiet mixes and narrow bands.
    "severe": DavrMiniConfig(
        n_queries=60, n_database=780, query_s=(20.0, 30.0), distractor_s=(15.0, 30.0),
        positives_per_query=len(T.SEVERE_FAMILIES), hard_negatives_per_query=2, train_fraction=0.0,
        families=T.SEVERE_FAMILIES, severe=True,
    ),
    # Six quiet mixes (0-3 dB under speech or music) per query: the one severe family the held-out recipe still misses.
    # Its negatives stay untransformed (they draw no unrelated audio, so a mix cannot be applied to them).
    "severe-mix": DavrMiniConfig(
        n_queries=60, n_database=780, query_s=(20.0, 30.0), distractor_s=(15.0, 30.0), positives_per_query=6,
        hard_negatives_per_query=2, train_fraction=0.0, families=("mix",), severe=True,
    ),
}


@dataclass(frozen=True)
class BenchmarkRecipe:
    """What the builder makes: ``data_root()/<name>/<profile>`` from ``sources`` at the sizes of ``profiles``."""

    name: str
    title: str
    sources: SourceSet
    profiles: Mapping[str, DavrMiniConfig]

    def config(self, profile: str) -> DavrMiniConfig:
        if profile not in self.profiles:
            raise ValueError(f"{self.name} has no profile {profile!r}; choose one of {sorted(self.profiles)}")
        return self.profiles[profile]


BENCHMARKS: dict[str, BenchmarkRecipe] = {
    "davr-mini": BenchmarkRecipe("davr-mini", "DAVR-mini", SOURCE_SETS["davr-mini"], PROFILES),
    "davr-unseen": BenchmarkRecipe("davr-unseen", "DAVR-unseen", SOURCE_SETS["davr-unseen"], UNSEEN_PROFILES),
    # the unseen benchmark's sizes, cut from training audio: where scoring choices are made (ausil_lite.datasets.corpus)
    "davr-dev": BenchmarkRecipe("davr-dev", "DAVR-dev", DEV_SOURCES, DEV_PROFILES),
}


def benchmark_recipe(name: str) -> BenchmarkRecipe:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]


@dataclass(frozen=True)
class Window:
    """A stretch of a source track, in seconds."""

    track: str
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class Item:
    """One planned video: what to cut, what to do to it, where it goes."""

    id: str
    role: str  # "query", "positive", "hard_negative", "distractor"
    query: str  # the query a positive or hard negative belongs to ("" otherwise)
    label: str  # "DA" (audio duplicate), "ST" (same track), "SP" (same package), ""
    source: Window
    transform: dict | None
    others: tuple[Window, ...]
    container: str
    picture_seed: int
    duration_s: float

    @property
    def path(self) -> str:
        return f"media/{self.id}.{self.container}"


@dataclass
class Plan:
    items: list[Item]
    train: list[Track]
    evaluation: list[Track]
    config: DavrMiniConfig
    seed: int
    notes: list[str] = field(default_factory=list)


# --- planning -------------------------------------------------------------------------------------------------


def split_tracks(tracks: Sequence[Track], train_fraction: float, seed: int) -> tuple[list[Track], list[Track]]:
    """Per package, a seeded shuffle puts ``round(train_fraction * n)`` tracks (at least one when the
    package has two or more and ``train_fraction`` > 0) in training; the rest evaluate. Independent of the profile."""
    train, evaluation = [], []
    packages = sorted({t.package for t in tracks})
    for package in packages:
        members = sorted((t for t in tracks if t.package == package), key=lambda t: t.id)
        order = np.random.default_rng([seed, zlib.crc32(package.encode())]).permutation(len(members))
        n_train = max(1, round(train_fraction * len(members))) if len(members) >= 2 and train_fraction > 0 else 0
        chosen = set(order[:n_train].tolist())
        for i, t in enumerate(members):
            (train if i in chosen else evaluation).append(t)
    return train, evaluation


class _Timeline:
    """Free stretches of each evaluation track once query windows are reserved."""

    def __init__(self, tracks: Sequence[Track]):
        self.duration = {t.id: t.duration_s for t in tracks}
        self.reserved: dict[str, list[tuple[float, float]]] = {t.id: [] for t in tracks}

    def free(self, track: str) -> list[tuple[float, float]]:
        return free_spans(self.duration[track], self.reserved[track], MARGIN_S)

    def longest(self, track: str) -> float:
        return max((b - a for a, b in self.free(track)), default=0.0)

    def draw(self, rng: np.random.Generator, track: str, duration: float) -> Window | None:
        """A window of up to ``duration`` s in a free stretch (None when none reaches MIN_NEGATIVE_S)."""
        duration = math.floor(min(duration, self.longest(track)) * 1000) / 1000
        if duration < MIN_NEGATIVE_S:
            return None
        spans = [(a, b) for a, b in self.free(track) if b - a >= duration - 1e-6]
        weights = np.array([max(b - a - duration, 0.0) + 1e-3 for a, b in spans])
        a, b = spans[int(rng.choice(len(spans), p=weights / weights.sum()))]
        start = math.ceil(float(rng.uniform(a, max(a, b - duration))) * 1000) / 1000
        return Window(track, start, duration)

    def reserve(self, window: Window) -> None:
        self.reserved[window.track].append((window.start_s, window.start_s + window.duration_s))


def _new_id(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        value = "".join(ID_ALPHABET[i] for i in rng.integers(len(ID_ALPHABET), size=ID_LENGTH))
        if value not in taken:
            taken.add(value)
            return value


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return round(float(rng.uniform(*bounds)), 3)


def plan_benchmark(
    tracks: Sequence[Track], config: DavrMiniConfig, seed: int, repeats: RepeatFinder | None = None
) -> Plan:
    """Every item of the benchmark, decided from ``tracks``, ``config`` and ``seed``.

    No audio is read, except by ``repeats`` (the build passes a :class:`RepeatFinder`): the stretches of a
    query's track that repeat the query window are then reserved with it, so no negative holds its audio.
    """
    train, evaluation = split_tracks(tracks, config.train_fraction, seed)
    if not evaluation:
        raise SourcePoolError("no evaluation tracks: the pool needs at least two usable tracks per package")
    rng = np.random.default_rng(seed)
    timeline = _Timeline(evaluation)
    by_id = {t.id: t for t in evaluation}
    taken: set[str] = set()
    items: list[Item] = []
    notes: list[str] = []

    def container() -> str:
        return "webm" if rng.random() < config.webm_fraction else "mp4"

    def make(role, query, label, source, transform, others=()) -> Item:
        duration = T.output_duration(source.duration_s, transform) if transform else source.duration_s
        return Item(
            _new_id(rng, taken), role, query, label, source, transform, tuple(others), container(),
            int(rng.integers(2**31 - 1)), round(duration, 3),
        )

    # Queries: round-robin over packages, each package's tracks in a seeded order.
    packages = sorted({t.package for t in evaluation})
    queue = {p: [evaluation[i] for i in rng.permutation(len(evaluation)) if evaluation[i].package == p] for p in packages}
    pointer = dict.fromkeys(packages, 0)
    queries: list[Item] = []
    for attempt in range(50 * config.n_queries):
        if len(queries) == config.n_queries:
            break
        package = packages[attempt % len(packages)]
        track = queue[package][pointer[package] % len(queue[package])]
        pointer[package] += 1
        longest = timeline.longest(track.id)
        if longest < config.query_s[0]:
            continue
        # Capped by the free stretch, so 30-60 s speech tracks give queries too.
        window = timeline.draw(rng, track.id, min(_uniform(rng, config.query_s), longest))
        timeline.reserve(window)
        if repeats is not None:
            looped = repeats(track, window.start_s, window.duration_s)
            for a, b in looped:
                timeline.reserve(Window(track.id, a, round(b - a, 3)))
            if looped:
                notes.append(f"{track.id}: {sum(b - a for a, b in looped):.1f} s elsewhere in the track repeat the "
                             f"query window at {window.start_s:.3f} s; kept out of every other window")
        queries.append(make("query", "", "", window, None))
    if len(queries) < config.n_queries:
        raise SourcePoolError(
            f"the evaluation tracks hold only {len(queries)} query windows of {config.query_s} s; "
            f"{config.n_queries} wanted: add sources (--source-dir) or lower n_queries"
        )
    items += queries

    def other_window(exclude: Track, needed: float) -> Window:
        candidates = [t for t in evaluation if t.package != exclude.package and timeline.longest(t.id) >= MIN_NEGATIVE_S]
        if not candidates:
            candidates = [t for t in evaluation if t.id != exclude.id and timeline.longest(t.id) >= MIN_NEGATIVE_S]
        track = candidates[int(rng.integers(len(candidates)))]
        return timeline.draw(rng, track.id, min(needed, 90.0))

    speed_cycle = {name: [] for name in ("speed", "tempo")}

    def next_factor(name: str) -> float:
        if not speed_cycle[name]:
            speed_cycle[name] = [T.SPEED_FACTORS[i] for i in rng.permutation(len(T.SPEED_FACTORS))]
        return speed_cycle[name].pop()

    families = config.families
    plain = tuple(f for f in families if f not in T.NEEDS_OTHER)
    for qi, query in enumerate(queries):
        track = by_id[query.source.track]
        for k in range(config.positives_per_query):
            family = families[(qi * config.positives_per_query + k) % len(families)]
            params = T.draw_transform(rng, family, severe=config.severe)
            if family in ("speed", "tempo"):
                params["factor"] = next_factor(family)
            others = ()
            if T.needs_other(params):
                steps = params["steps"] if family == "combo" else [params]
                needed = max(
                    [s["before_s"] + s["after_s"] for s in steps if s["family"] == "embed"]
                    + [query.source.duration_s * 1.5]
                )
                others = (other_window(track, needed),)
            items.append(make("positive", query.id, "DA", query.source, params, others))
        for k in range(config.hard_negatives_per_query):
            duration = _uniform(rng, config.query_s)
            window = timeline.draw(rng, track.id, duration) if k % 2 == 0 else None
            label = "ST"
            if window is None:
                label = "SP"
                siblings = [t for t in evaluation if t.package == track.package and t.id != track.id]
                siblings = [t for t in siblings if timeline.longest(t.id) >= MIN_NEGATIVE_S]
                if not siblings:
                    notes.append(f"query {query.id}: no other track of {track.package} for a hard negative")
                    siblings = [t for t in evaluation if t.id != track.id and timeline.longest(t.id) >= MIN_NEGATIVE_S]
                window = timeline.draw(rng, siblings[int(rng.integers(len(siblings)))].id, duration)
            transform = None
            if plain and rng.random() < config.negative_transform_rate:
                transform = T.draw_transform(rng, plain[int(rng.integers(len(plain)))], with_other=False)
            items.append(make("hard_negative", query.id, label, window, transform))

    n_distractors = config.n_database - (len(items) - len(queries))
    free = np.array([timeline.longest(t.id) for t in evaluation])
    usable = free >= MIN_NEGATIVE_S
    weights = np.where(usable, [t.duration_s for t in evaluation], 0.0)
    for _ in range(n_distractors):
        track = evaluation[int(rng.choice(len(evaluation), p=weights / weights.sum()))]
        window = timeline.draw(rng, track.id, _uniform(rng, config.distractor_s))
        transform = None
        if plain and rng.random() < config.negative_transform_rate:
            transform = T.draw_transform(rng, plain[int(rng.integers(len(plain)))], with_other=False)
        items.append(make("distractor", "", "", window, transform))

    used = {i.source.track for i in items} | {w.track for i in items for w in i.others}
    leaked = used & {t.id for t in train}
    assert not leaked, f"training tracks used by the benchmark: {sorted(leaked)}"
    return Plan(items, train, evaluation, config, seed, notes)


# --- manifests --------------------------------------------------------------------------------------------------


def _csv_text(rows: Sequence[Sequence], header: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def item_table_rows(plan: Plan) -> list[list]:
    tracks = {t.id: t for t in plan.evaluation}
    rows = []
    for item in sorted(plan.items, key=lambda i: i.id):
        track = tracks[item.source.track]
        transform = item.transform or {"family": "none"}
        speed = T.speed_factor(transform, "speed") if item.transform else None
        tempo = T.speed_factor(transform, "tempo") if item.transform else None
        rows.append([
            item.id, item.role, item.query, item.label, transform["family"],
            _json({k: v for k, v in transform.items() if k != "family"}),
            "" if speed is None else f"{speed:.3f}", "" if tempo is None else f"{tempo:.3f}",
            track.id, track.package, track.kind, f"{item.source.start_s:.3f}", f"{item.source.duration_s:.3f}",
            f"{item.duration_s:.3f}", _json([asdict(w) for w in item.others]), item.container, item.path,
        ])
    return rows


def _safe_id(track_id: str) -> str:
    return "".join("_" if c.isspace() else c for c in track_id)


def write_manifests(plan: Plan, root: Path, pool_rows: Sequence[SourceFile]) -> None:
    """Everything but media and build.json; a pure function of the plan and the pool."""
    queries = sorted((i for i in plan.items if i.role == "query"), key=lambda i: i.id)
    database = sorted((i for i in plan.items if i.role != "query"), key=lambda i: i.id)
    annotations: dict[str, dict[str, list[str]]] = {q.id: {"DA": []} for q in queries}
    for item in database:
        if item.query:
            annotations[item.query].setdefault(item.label, []).append(item.id)
    write_annotation_json(root / "annotation.json", annotations)
    # every video of the dataset, queries included, as FIVR's youtube_ids.txt: the FIVR evaluation
    # skips a query that is not in the dataset list
    write_id_list(root / "dataset_ids.txt", sorted(i.id for i in plan.items))
    write_video_list(root / "queries.txt", [(i.id, i.path) for i in queries])
    write_video_list(root / "database.txt", [(i.id, i.path) for i in database])
    (root / "items.csv").write_text(_csv_text(item_table_rows(plan), TABLE_COLUMNS), encoding="utf-8")
    train_rows = []
    for t in sorted(plan.train, key=lambda t: t.id):
        path = t.files[0].path if len(t.files) == 1 else f"train/{_safe_id(t.id).replace(':', '_')}.wav"
        train_rows.append([_safe_id(t.id), t.package, t.kind, t.licence, f"{t.duration_s:.3f}", path])
    (root / "train.csv").write_text(
        _csv_text(train_rows, ("id", "package", "kind", "licence", "duration_s", "path")), encoding="utf-8"
    )
    write_video_list(root / "train.txt", [(r[0], r[-1]) for r in train_rows])
    write_manifest(pool_rows, root / "sources.csv")


# --- rendering ------------------------------------------------------------------------------------------------

_WORKER_TRACKS: dict[str, Track] = {}


def _init_worker(tracks: dict[str, Track]) -> None:
    global _WORKER_TRACKS
    _WORKER_TRACKS = tracks
    import torch

    torch.set_num_threads(1)


def render_audio(item: Item, tracks: dict[str, Track]) -> np.ndarray:
    """The item's audio at 44.1 kHz: its source window, transformed by its record."""
    samples = tracks[item.source.track].read(item.source.start_s, item.source.duration_s)
    if item.transform is None:
        return samples
    other = None
    if item.others:
        other = np.concatenate([tracks[w.track].read(w.start_s, w.duration_s) for w in item.others])
    return T.apply_transform(samples, SAMPLE_RATE, item.transform, other=other)


def _render(job: tuple[Item, str]) -> bool:
    """Writes one item's video (via a temporary name, so a crash leaves no half file); False if it existed."""
    item, root = job
    target = Path(root) / item.path
    if target.is_file():
        return False
    temporary = target.with_name(f".{target.stem}.partial{target.suffix}")
    write_media(temporary, render_audio(item, _WORKER_TRACKS), SAMPLE_RATE, seed=item.picture_seed)
    os.replace(temporary, target)
    return True


def _write_training_audio(plan: Plan, root: Path) -> None:
    """Joined speech tracks of the training split as wav files at their own rate, so train.txt can name them."""
    for t in plan.train:
        if len(t.files) > 1:
            target = root / "train" / f"{_safe_id(t.id).replace(':', '_')}.wav"
            if not target.is_file():
                rate = t.files[0].sample_rate
                write_media(target, t.read(0.0, t.duration_s + 1.0, rate), rate, picture=False)


@dataclass(frozen=True)
class BuildSummary:
    root: Path
    queries: int
    database: int
    train_tracks: int
    rendered: int
    wall_s: float
    audio_hours: float


def pool_rows_for(
    source_dirs: Sequence[str | Path] = (), include_default: bool = True, rescan: bool = False,
    sources: SourceSet = SOURCE_SETS["davr-mini"],
) -> list[SourceFile]:
    """Manifest rows of the pool: the Debian packages of ``sources`` (unless ``include_default`` is False)
    plus user folders."""
    rows = sources.rows(rescan=rescan) if include_default else []
    for directory in source_dirs:
        rows += scan_directory(directory)
    if not rows:
        raise SourcePoolError("empty source pool: give --source-dir or use the default packages")
    return rows


def build_davr_mini(
    profile: str = "ci",
    seed: int = 0,
    *,
    root: str | Path | None = None,
    source_dirs: Sequence[str | Path] = (),
    include_default: bool = True,
    config: DavrMiniConfig | None = None,
    workers: int = 2,
    rescan_sources: bool = False,
    overwrite: bool = False,
    pool_rows: Sequence[SourceFile] | None = None,
    progress: bool = False,
    benchmark: str = "davr-mini",
) -> BuildSummary:
    """Plan, write manifests and render media of ``benchmark`` (a key of :data:`BENCHMARKS`) into ``root``
    (default ``data_root()/<benchmark>/<profile>``). Resumable: finished media are kept (delete ``media/``
    to remake them after changing the transformation code). A folder built with another seed, profile
    or pool is refused unless ``overwrite`` (which deletes its media). A pool holding a reserved package
    (:data:`ausil_lite.datasets.sources.RESERVED_PACKAGES`) is refused."""
    started = time.perf_counter()
    recipe = benchmark_recipe(benchmark)
    config = config if config is not None else recipe.config(profile)
    root = Path(root) if root is not None else data_root() / recipe.name / profile
    if pool_rows is None:
        pool_rows = pool_rows_for(source_dirs, include_default, rescan_sources, recipe.sources)
    rows = list(pool_rows)
    refuse_reserved({r.package for r in rows})
    plan = plan_benchmark(tracks_from_rows(rows), config, seed, RepeatFinder())
    table = _csv_text(item_table_rows(plan), TABLE_COLUMNS)
    existing = root / "items.csv"
    if existing.is_file() and existing.read_text(encoding="utf-8") != table:
        if not overwrite and not _same_request(root, benchmark, profile, seed, rows):
            raise SourcePoolError(
                f"{root} holds a {recipe.title} built with another seed, profile or source pool; "
                "pass overwrite=True (--overwrite) to replace it"
            )
        # same request, other plan: the planner changed (e.g. a fix); the old media are remade
        for p in (root / "media").glob("*"):
            p.unlink()
    (root / "media").mkdir(parents=True, exist_ok=True)
    write_manifests(plan, root, rows)
    _write_training_audio(plan, root)
    tracks = {t.id: t for t in plan.evaluation}
    # Longest jobs first, so the last worker is not left with a long item.
    jobs = [(i, str(root)) for i in sorted(plan.items, key=lambda i: (-i.duration_s, i.id))]
    rendered = 0
    bar = tqdm(total=len(jobs), desc=f"{recipe.title} {profile}", unit="video", disable=not progress, mininterval=5.0)
    if workers <= 1:
        _init_worker(tracks)
        for job in jobs:
            rendered += _render(job)
            bar.update()
    else:
        with multiprocessing.get_context("spawn").Pool(workers, _init_worker, (tracks,)) as pool:
            for done in pool.imap_unordered(_render, jobs, chunksize=1):
                rendered += done
                bar.update()
    bar.close()
    wall = time.perf_counter() - started
    summary = BuildSummary(
        root, config.n_queries, config.n_database, len(plan.train), rendered, round(wall, 1),
        round(sum(i.duration_s for i in plan.items) / 3600, 3),
    )
    build = {
        "benchmark": benchmark, "profile": profile, "seed": seed, "config": asdict(config), "git_commit": git_commit(),
        "wall_s": summary.wall_s, "workers": workers, "audio_hours": summary.audio_hours,
        "source_dirs": [str(d) for d in source_dirs], "include_default": include_default, "notes": plan.notes,
    }
    (root / "build.json").write_text(json.dumps(build, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return summary


@dataclass(frozen=True)
class BuildRequest:
    """What to build, as the CLI and the benchmarks chapter take it (plain values, validated here)."""

    profile: str = "ci"
    seed: int = 0
    source_dirs: str = ""  # extra source folders, separated by os.pathsep (":" on Linux)
    include_default: bool = True  # the Debian packages of the benchmark's manifest in data_manifests/
    output: str | None = None  # default: data_root()/<benchmark>/<profile>
    workers: int = 2  # rendering processes
    benchmark: str = "davr-mini"  # a key of BENCHMARKS: "davr-mini" or "davr-unseen"

    def __post_init__(self) -> None:
        benchmark_recipe(self.benchmark).config(self.profile)
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if not self.include_default and not self.folders:
            raise ValueError("include_default=False needs source_dirs")

    @property
    def folders(self) -> list[Path]:
        return [Path(p) for p in self.source_dirs.split(os.pathsep) if p.strip()]

    @property
    def root(self) -> Path:
        return Path(self.output) if self.output else data_root() / self.benchmark / self.profile

    def build(self, overwrite: bool = False, rescan_sources: bool = False, progress: bool = False) -> BuildSummary:
        return build_davr_mini(
            self.profile, self.seed, root=self.root, source_dirs=self.folders, include_default=self.include_default,
            workers=self.workers, overwrite=overwrite, rescan_sources=rescan_sources, progress=progress,
            benchmark=self.benchmark,
        )


def _same_request(root: Path, benchmark: str, profile: str, seed: int, rows: Sequence[SourceFile]) -> bool:
    """Whether the build in ``root`` was asked for with this benchmark, profile, seed and source pool (so
    only the planner's code can have changed what it holds). Builds from before benchmarks had names
    were all DAVR-mini."""
    try:
        build = json.loads((root / "build.json").read_text(encoding="utf-8"))
        built_rows = read_manifest(root / "sources.csv")
    except (OSError, ValueError, SourcePoolError):
        return False

    def key(r: SourceFile) -> tuple:
        return (r.track, r.path, r.sha256, r.excluded)
    same = (build.get("benchmark", "davr-mini"), build.get("profile"), build.get("seed")) == (benchmark, profile, seed)
    return same and sorted(map(key, built_rows)) == sorted(map(key, rows))


def load_davr_mini(root: str | Path | None = None, profile: str = "ci", benchmark: str = "davr-mini") -> Benchmark:
    """The :class:`Benchmark` of a built ``benchmark`` (default ``data_root()/<benchmark>/<profile>``)."""
    recipe = benchmark_recipe(benchmark)
    root = Path(root) if root is not None else data_root() / recipe.name / profile
    if not (root / "annotation.json").is_file():
        raise SourcePoolError(
            f"{root}: no {recipe.title} here; build it with "
            f"`ausil-lite build-benchmark --benchmark {recipe.name} --profile {profile}`"
        )
    annotations = read_annotation_json(root / "annotation.json")
    queries = [vid for vid, _ in read_video_list(root / "queries.txt")]
    database = [vid for vid, _ in read_video_list(root / "database.txt")]
    paths = {vid: p for vid, p in read_video_list(root / "queries.txt") + read_video_list(root / "database.txt") if p.is_file()}
    table = pd.read_csv(root / "items.csv", dtype=str, keep_default_na=False)
    for column in ("speed", "tempo", "start_s", "source_duration_s", "duration_s"):
        table[column] = pd.to_numeric(table[column].replace("", np.nan))
    used = set(table["track"].map(_safe_id))
    used |= {_safe_id(w["track"]) for others in table["others"] for w in json.loads(others)}
    leaked = used & {vid for vid, _ in read_video_list(root / "train.txt")}
    if leaked:
        raise SourcePoolError(f"{root}: training tracks also feed the benchmark: {sorted(leaked)[:5]}")
    return Benchmark(recipe.title, annotations, queries, database, paths, table)
