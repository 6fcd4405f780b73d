"""The training chapter's work for one profile: backbone, benchmark features, AuSiL models.

Given a built DAVR-mini (``benchmark_dir``) it

1. trains the self-supervised backbone on the training tracks only (``<models>/selfsup/``);
2. extracts the benchmark's descriptors with each backbone into a feature store
   (``<features>/<backbone>/``);
3. draws training triplets from the training tracks (anchor clips with transformed positives,
   speed changes included, and negative clips), extracts them with the same backbone, and trains
   the AuSiL network on them with hard-negative mining (``<models>/ausil-<backbone>/``).

The ``released`` backbone is extracted but not trained: the package ships its network, and the results
chapters score it beside the models trained here. Its corpus takes DAVR-mini's training tracks only, so
the benchmark's evaluation items are as new to it as to the study's own models.

Every step resumes: finished backbones, stored descriptors, triplet sources and checkpoints are
reused when a rerun asks for the same thing, and a folder made with other settings raises, naming
it, instead of being mixed or silently replaced. Nothing here reads the benchmark's evaluation
items except to extract their descriptors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ausil_lite.config import config_from_dict
from ausil_lite.datasets import transforms as T
from ausil_lite.datasets.davr_mini import load_davr_mini
from ausil_lite.datasets.sources import read_window
from ausil_lite.datasets.training import TrainingPool
from ausil_lite.descriptors.audio import SAMPLE_RATE, peak_normalise
from ausil_lite.descriptors.extraction import BACKBONES, ExtractionConfig, FeatureExtractor
from ausil_lite.descriptors.speeds import extract_speed_variants, speed_grid
from ausil_lite.descriptors.store import ExtractionSummary, FeatureStore, extract_videos
from ausil_lite.digests import file_digest
from ausil_lite.errors import SilentAudioError
from ausil_lite.learning.selfsup import SelfSupConfig, finished_backbone, train_selfsup
from ausil_lite.learning.selfsup import checkpoint_mismatch as selfsup_mismatch
from ausil_lite.learning.triplets import (
    CURVE_FILE,
    TrainingConfig,
    TripletSource,
    checkpoint_mismatch,
    load_triplet_source,
    save_triplet_source,
    train,
    triplet_source_from_pool,
)
from ausil_lite.paths import data_root
from ausil_lite.similarity.model import AuSiL
from ausil_lite.study.method_scores import SPEEDS_SUFFIX

Log = Callable[[str], None]


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the training chapter does for one profile; plain values, as its parameters cell.

    Sizes default to the ``full`` profile's; ``notebooks/profiles.yaml`` shrinks them for ``ci``
    and ``tiny``. Durations are in seconds.
    """

    profile: str = "ci"
    seed: int = 0
    device: str | None = None  # None: CUDA when available, else CPU
    benchmark_dir: str | None = None  # default data_root()/davr-mini/<profile>
    features_dir: str | None = None  # default data_root()/features/davr-mini-<profile>
    models_dir: str | None = None  # default data_root()/models/<profile>
    backbones: str = "random,selfsup,released"  # comma-separated; "kumar2018" joins when kumar2018_weights is given
    kumar2018_weights: str | None = None  # the AudioSet state dict mx-h64-1024_0d3-1.17.pkl
    workers: int = 1  # extraction processes (ausil_lite.descriptors.workers: whole files on a CPU, decoding for a GPU)
    # self-supervised backbone (ausil_lite.learning.selfsup)
    selfsup_epochs: int = 20
    selfsup_steps: int = 200  # steps per epoch
    selfsup_batch_size: int = 32  # windows per step (two views each)
    selfsup_clip_s: float = 120.0  # middle of each training track kept in memory
    selfsup_keep_initial: float = SelfSupConfig.keep_initial  # weight holding the deep layers near the initial network
    # training triplets, drawn from the training tracks (ausil_lite.learning.triplets.triplet_source_from_pool)
    train_pairs: int = 400  # anchor clips, each with one transformed positive
    train_negatives: int = 400  # further clips; the anchors serve as negatives too
    train_clip_s: float = 20.0
    speed_pairs: int = 0  # extra pairs whose positive is a speed change only (the random mix has few)
    # each anchor also meets another moment of its own track as a negative (TrainingPool.draw_elsewhere): the
    # benchmarks' hard negatives are of that kind, and ausil-lite-v2, trained without, confuses them with copies
    same_track_negatives: bool = False
    # share of positives whose transformation comes from the hard end of its family's range (transforms.SEVERE_DRAWS:
    # short crops, quiet mixes, narrow bands), which the whole ranges draw rarely; 0: none. Measured at 0.5 and set
    # aside: no gain beyond another draw of the same triplets (book/settings_tried.md)
    severe_positives: float = 0.0
    # queries also played at speeds 0.7x-1.4x, this many steps per octave (ausil_lite.descriptors.speeds); 0: none
    speed_hypotheses: int = 10
    # AuSiL network (ausil_lite.learning.triplets.TrainingConfig)
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-4
    margin: float = 0.5
    regularisation: float = 0.5
    hard_pool: int = 10
    negatives_per_anchor: int = 2
    identity_weight: float = 0.0  # weight of the identity term (a clip must outscore its negatives against itself)

    def __post_init__(self) -> None:
        names = self.backbone_names  # validates the names
        if not names:
            raise ValueError("backbones must name at least one of " + ", ".join(BACKBONES))
        if "kumar2018" in names and self.kumar2018_weights is None:
            raise ValueError("backbone 'kumar2018' needs kumar2018_weights (the AudioSet state dict file)")
        if self.kumar2018_weights is not None and not Path(self.kumar2018_weights).is_file():
            raise FileNotFoundError(f"kumar2018_weights: {self.kumar2018_weights} is not a file")
        for name in ("train_pairs", "train_negatives", "selfsup_epochs", "selfsup_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.speed_pairs < 0 or self.speed_hypotheses < 0:
            raise ValueError(f"speed_pairs and speed_hypotheses must be >= 0, got {self.speed_pairs}, {self.speed_hypotheses}")
        if self.train_clip_s < 5.0:
            raise ValueError(f"train_clip_s must be at least 5 s (a query needs 4 segments), got {self.train_clip_s}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if not 0.0 <= self.severe_positives <= 1.0:
            raise ValueError(f"severe_positives must be a share in [0, 1], got {self.severe_positives}")
        self.selfsup_config()  # fail now, not after extraction, on bad selfsup sizes
        self.training_config()

    @classmethod
    def from_dict(cls, values: dict) -> "PipelineConfig":
        return config_from_dict(cls, values)

    @property
    def backbone_names(self) -> tuple[str, ...]:
        """The backbones to run, in order, without repeats; ``kumar2018`` last when its weights are given."""
        names = [n.strip() for n in self.backbones.split(",") if n.strip()]
        if self.kumar2018_weights is not None:
            names.append("kumar2018")
        unknown = sorted(set(names) - set(BACKBONES))
        if unknown:
            raise ValueError(f"unknown backbone(s) {unknown}; choose from {BACKBONES}")
        return tuple(dict.fromkeys(names))

    @property
    def trained_backbone_names(self) -> tuple[str, ...]:
        """The backbones whose AuSiL network is trained here: all but ``released``, which ships its own."""
        return tuple(n for n in self.backbone_names if n != "released")

    @property
    def benchmark_root(self) -> Path:
        return Path(self.benchmark_dir) if self.benchmark_dir else data_root() / "davr-mini" / self.profile

    @property
    def features_root(self) -> Path:
        return Path(self.features_dir) if self.features_dir else data_root() / "features" / f"davr-mini-{self.profile}"

    @property
    def models_root(self) -> Path:
        return Path(self.models_dir) if self.models_dir else data_root() / "models" / self.profile

    def store_dir(self, backbone: str) -> Path:
        return self.features_root / backbone

    def model_dir(self, backbone: str) -> Path:
        return self.models_root / f"ausil-{backbone}"

    @property
    def selfsup_dir(self) -> Path:
        return self.models_root / "selfsup"

    def selfsup_config(self) -> SelfSupConfig:
        return SelfSupConfig(
            seed=self.seed, epochs=self.selfsup_epochs, steps_per_epoch=self.selfsup_steps,
            batch_size=self.selfsup_batch_size, probe_size=min(32, max(2, self.selfsup_batch_size)),
            keep_initial=self.selfsup_keep_initial, device=self.device,
        )

    def training_config(self) -> TrainingConfig:
        return TrainingConfig(
            epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate, margin=self.margin,
            regularisation=self.regularisation, hard_pool=self.hard_pool,
            negatives_per_anchor=self.negatives_per_anchor, identity_weight=self.identity_weight, seed=self.seed,
            device=self.device,
        )


def train_backbone(config: PipelineConfig, log: Log | None = print) -> Path:
    """Train (or resume, or reuse) the self-supervised backbone on the benchmark's training tracks.

    Returns a snapshot of the trained weights named by their digest (``backbone-<sha1>.pt``): feature
    stores and models record that name, so a later retraining can never pass its weights off as the
    ones that made existing descriptors (the store refuses another ``weights`` path). A run made with
    other settings (a profile edit) is set aside, not resumed or deleted.

    A finished run is reused without decoding its clips (a release corpus takes minutes and gigabytes to read):
    :data:`OFFERED_CLIPS_FILE` records which tracks it was offered at which clip length and which of them it
    trained on (a silent window is left out), so the same tracks again need only the ids.
    """
    pool = TrainingPool.from_benchmark(config.benchmark_root)
    selfsup = config.selfsup_config()
    weights = _reusable_backbone(config, selfsup, pool)
    if weights is None:
        clips = training_clips(pool, config.selfsup_clip_s, log is not None)
        if (mismatch := selfsup_mismatch(config.selfsup_dir, selfsup, list(clips))) is not None:
            set_aside(config.selfsup_dir, mismatch, log)  # the profile's selfsup settings changed
        weights = train_selfsup(selfsup, clips, config.selfsup_dir, log=log)
        _write_json(config.selfsup_dir / OFFERED_CLIPS_FILE, _offered(config, pool) | {"clips": sorted(clips)})
    elif log is not None:
        log(f"self-supervised backbone: reusing the finished run in {config.selfsup_dir}")
    snapshot = weights.with_name(f"backbone-{file_digest(weights, 'sha1')[:12]}.pt")
    if not snapshot.is_file():
        tmp = snapshot.with_name(snapshot.name + ".tmp")
        shutil.copyfile(weights, tmp)
        tmp.replace(snapshot)
    return snapshot


def _write_json(path: Path, record: dict) -> None:
    """Write ``record`` under a temporary name first, so a kill never leaves half a record under the real one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


OFFERED_CLIPS_FILE = "offered_clips.json"
"""In a self-supervised run's folder: the tracks offered, the clip length, and the clip ids trained on."""


def _offered(config: PipelineConfig, pool: TrainingPool) -> dict:
    return {"clip_s": config.selfsup_clip_s, "offered": sorted(track.id for track in pool.tracks)}


def _reusable_backbone(config: PipelineConfig, selfsup: SelfSupConfig, pool: TrainingPool) -> Path | None:
    """The finished backbone in ``config.selfsup_dir`` when it was trained with these settings on clips of these
    very tracks (None otherwise, or when the run predates :data:`OFFERED_CLIPS_FILE`: then the clips decide)."""
    path = config.selfsup_dir / OFFERED_CLIPS_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if {k: record.get(k) for k in ("clip_s", "offered")} != _offered(config, pool):
        return None
    return finished_backbone(config.selfsup_dir, selfsup, record.get("clips", []))


def training_clips(pool: TrainingPool, clip_s: float, progress: bool = True) -> dict[str, np.ndarray]:
    """The middle ``clip_s`` seconds of each training track, peak-normalised (id -> 44.1 kHz mono).

    Only the window is decoded (the music tracks run to several minutes), which keeps a short run short;
    a corpus of a thousand tracks still takes minutes, so a bar counts them. A track whose window is silent
    (a sound effect with a long pause in its middle) is left out and named, so the rest still train.
    """
    clips = {}
    for track in tqdm(pool.tracks, desc="training clips", unit="track", disable=not progress):
        length = min(clip_s, track.duration_s)
        start = round(max(track.duration_s - length, 0.0) / 2, 3)
        try:
            clips[track.id] = peak_normalise(read_window(track.path, start, length, SAMPLE_RATE), track.path)
        except SilentAudioError as exc:
            tqdm.write(f"training clips: left out {track.id}: {exc} from {start:g} s for {length:g} s")
    return clips


def extraction_config(config: PipelineConfig, backbone: str, selfsup_weights: str | Path | None = None) -> ExtractionConfig:
    """How descriptors are made with ``backbone`` (``selfsup`` needs the weights :func:`train_backbone` returned)."""
    weights = {"random": None, "released": None, "selfsup": selfsup_weights, "kumar2018": config.kumar2018_weights}[backbone]
    if backbone == "selfsup" and weights is None:
        raise ValueError("the selfsup backbone needs selfsup_weights (train_backbone's result)")
    return ExtractionConfig(backbone=backbone, weights=None if weights is None else str(weights),
                            seed=config.seed, device=config.device)


def set_aside(folder: Path, why: str, log: Log | None = print) -> Path:
    """Rename ``folder`` to ``<name>.replaced-<UTC time>`` so a run with other settings starts afresh in its
    place while nothing made before is lost; returns the new name."""
    kept = folder.with_name(f"{folder.name}.replaced-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}")
    folder.rename(kept)
    if log is not None:
        log(f"{why}: moved to {kept}; starting anew")
    return kept


def _store_for(folder: Path, extraction: ExtractionConfig, log: Log | None) -> FeatureStore:
    """The store in ``folder``, set aside first when its descriptors were made otherwise (a retrained backbone)."""
    store = FeatureStore(folder)
    if (mismatch := store.mismatch(extraction)) is not None:
        set_aside(folder, mismatch, log)
        store = FeatureStore(folder)
    return store


def extract_benchmark(
    config: PipelineConfig, extraction: ExtractionConfig, progress: bool = True, log: Log | None = print
) -> tuple[FeatureStore, ExtractionSummary]:
    """Descriptors of every query and database video of the benchmark, into the backbone's store.

    Resumable: stored videos are skipped. Videos that failed before are tried again (a benchmark
    whose media were being remade fails as "file not found" meanwhile); a video that still cannot
    be decoded is recorded as failed, with its reason, in the store's index. A store made with other
    extraction settings (the backbone retrained after a profile edit) is set aside first.
    """
    bench = load_davr_mini(config.benchmark_root, config.profile)
    missing = bench.missing()
    if missing:
        raise FileNotFoundError(
            f"{config.benchmark_root}: {len(missing)} videos have no media (e.g. {missing[0]}); finish the build "
            f"with `ausil-lite build-benchmark --profile {config.profile}` first"
        )
    store = _store_for(config.store_dir(extraction.backbone), extraction, log)
    summary = extract_videos(bench.videos(), store, extraction, workers=config.workers, retry_failed=True,
                             progress=progress)
    return store, summary


def extract_query_speeds(
    config: PipelineConfig, extraction: ExtractionConfig, progress: bool = True, log: Log | None = print
) -> tuple[FeatureStore, ExtractionSummary] | None:
    """Descriptors of each query played at the speeds of ``speed_hypotheses`` (none when 0), into the
    backbone's ``<backbone>-speeds`` store, which ``ausil-<backbone>-speeds`` scores with. Resumable, and
    set aside like :func:`extract_benchmark`'s store when made otherwise."""
    if not config.speed_hypotheses:
        return None
    bench = load_davr_mini(config.benchmark_root, config.profile)
    store = _store_for(config.store_dir(extraction.backbone + SPEEDS_SUFFIX), extraction, log)
    queries = bench.videos(bench.query_ids)
    return store, extract_speed_variants(queries, store, extraction, speed_grid(config.speed_hypotheses), progress)


def _source_key(config: PipelineConfig, extraction: ExtractionConfig, pool: TrainingPool) -> str:
    """What a triplet source depends on: sizes, seed, backbone and the training tracks."""
    record = {
        "pairs": config.train_pairs, "negatives": config.train_negatives, "clip_s": config.train_clip_s,
        "speed_pairs": config.speed_pairs,
        **({"same_track_negatives": True} if config.same_track_negatives else {}),  # earlier keys stay as they were
        **({"severe_positives": config.severe_positives} if config.severe_positives else {}),
        "seed": config.seed, "extraction": {k: v for k, v in dataclasses.asdict(extraction).items()
                                            if k not in ("device", "batch_size")},
        # a track's group decides its sibling negatives; ungrouped tracks keep the keys they always had
        "tracks": [(t.id, t.duration_s, t.group) if t.group else (t.id, t.duration_s) for t in pool.tracks],
    }
    return hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]


def triplet_source(
    config: PipelineConfig, extraction: ExtractionConfig, log: Log | None = print
) -> tuple[TripletSource, dict]:
    """The training triplets' descriptors for one backbone, drawn from the training tracks once and
    cached in the model folder as ``triplets-<key>.npz`` (key: sizes, seed, backbone, tracks).

    Returns the source and a description of it (plain JSON: counts per transformation family).
    """
    pool = TrainingPool.from_benchmark(config.benchmark_root)
    key = _source_key(config, extraction, pool)
    folder = config.model_dir(extraction.backbone)
    path, record_path = folder / f"triplets-{key}.npz", folder / f"triplets-{key}.json"
    if path.is_file() and record_path.is_file():
        return load_triplet_source(path), json.loads(record_path.read_text(encoding="utf-8"))
    started = time.perf_counter()
    extractor = FeatureExtractor(extraction)
    source, records = triplet_source_from_pool(
        pool, extractor, config.train_pairs, config.train_negatives, config.train_clip_s, config.seed,
        progress=log is not None, same_track=config.same_track_negatives, severe=config.severe_positives,
    )
    if config.speed_pairs:
        # a second draw (its own seed) of speed-changed positives; its anchors join the negatives
        extra, extra_records = triplet_source_from_pool(
            pool, extractor, config.speed_pairs, 0, config.train_clip_s, config.seed + 1, families=("speed",),
            progress=log is not None, same_track=config.same_track_negatives,
        )
        source = source.concat(extra)
        records += extra_records
    description = {
        "key": key, "pairs": len(source.pairs), "negatives": len(source.negatives), "clip_s": config.train_clip_s,
        "training_tracks": len(pool.tracks), "families": dict(sorted(Counter(r["family"] for r in records).items())),
        "speed_pairs": sum(1 for r in records if T.speed_factor(r, "speed") is not None),
        **({"same_track_negatives": sum(o >= 0 for o in source.negative_owners)} if source.negative_owners else {}),
        **({"severe_positives": config.severe_positives} if config.severe_positives else {}),
        "seconds": round(time.perf_counter() - started, 1),
    }
    save_triplet_source(source, path)
    _write_json(record_path, description)
    if log is not None:
        log(f"{extraction.backbone}: {len(source.pairs)} pairs and {len(source.negatives)} negatives "
            f"drawn from {len(pool.tracks)} training tracks in {description['seconds']} s")
    return source, description


def train_model(
    config: PipelineConfig, extraction: ExtractionConfig, log: Log | None = print, on_shipped_backbone: bool = False
) -> tuple[AuSiL, pd.DataFrame, dict]:
    """Train (or resume, or reuse) the AuSiL network for one backbone; returns the model of the last
    epoch, its learning curve and the triplet source's description.

    The study never trains a network for the ``released`` backbone (the package ships it); a release may train a new
    one on a shipped version's backbone (``on_shipped_backbone``, :mod:`ausil_lite.study.release`)."""
    if extraction.backbone == "released" and not on_shipped_backbone:
        raise ValueError("the released backbone ships its trained network; train_model trains the study's own")
    source, description = triplet_source(config, extraction, log)
    folder = config.model_dir(extraction.backbone)
    if (mismatch := checkpoint_mismatch(folder, source, config.training_config())) is not None:
        # the profile's training settings changed: keep the old model beside, train anew in its place
        kept = set_aside(folder, mismatch, log)
        folder.mkdir()
        for cached in kept.glob(f"triplets-{description['key']}.*"):  # this run's triplets stay with it
            cached.rename(folder / cached.name)
    data = {"extraction": dataclasses.asdict(extraction), "benchmark": str(config.benchmark_root),
            "triplets": description}
    model, curve = train(source, config.training_config(), config.model_dir(extraction.backbone), data=data,
                         progress=log is not None)
    return model, curve, description


@dataclass
class BackboneRun:
    """What :func:`train_all` did for one backbone."""

    backbone: str
    extraction: ExtractionConfig
    store: FeatureStore
    extraction_summary: ExtractionSummary
    model_dir: Path | None  # None for the released backbone: its network ships in the package
    curve: pd.DataFrame | None
    triplets: dict | None
    extract_s: float
    train_s: float


@dataclass
class PipelineResult:
    selfsup_weights: Path | None
    selfsup_s: float
    runs: dict[str, BackboneRun]


def train_all(config: PipelineConfig, log: Log | None = print, progress: bool = True) -> PipelineResult:
    """Everything the training chapter does, in order; a rerun with the same config only reloads."""
    selfsup_weights, selfsup_s = None, 0.0
    if "selfsup" in config.backbone_names:
        started = time.perf_counter()
        selfsup_weights = train_backbone(config, log)
        selfsup_s = time.perf_counter() - started
    runs = {}
    for backbone in config.backbone_names:
        extraction = extraction_config(config, backbone, selfsup_weights)
        started = time.perf_counter()
        store, summary = extract_benchmark(config, extraction, progress, log)
        extract_query_speeds(config, extraction, progress, log)
        extracted = time.perf_counter()
        if backbone not in config.trained_backbone_names:
            runs[backbone] = BackboneRun(backbone, extraction, store, summary, None, None, None, extracted - started, 0.0)
            continue
        _, curve, triplets = train_model(config, extraction, log)
        runs[backbone] = BackboneRun(backbone, extraction, store, summary, config.model_dir(backbone), curve, triplets,
                                     extracted - started, time.perf_counter() - extracted)
    return PipelineResult(selfsup_weights, selfsup_s, runs)


def read_learning_curve(model_dir: str | Path) -> pd.DataFrame:
    """The AuSiL learning curve (one row per epoch) written by training into ``model_dir``."""
    return pd.read_csv(Path(model_dir) / CURVE_FILE)


def read_selfsup_loss(selfsup_dir: str | Path) -> pd.DataFrame:
    """The self-supervised loss log: ``epoch, step, split, loss`` (``probe`` rows once per epoch)."""
    return pd.read_csv(Path(selfsup_dir) / "loss.csv")
