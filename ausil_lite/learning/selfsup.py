"""Self-supervised training of the Kumar CNN backbone, so AuSiL needs no AudioSet weights.

The published AudioSet weights are not reachable from this project's machines. Instead the network
starts from its seeded random initialisation and learns what duplicate retrieval needs directly: the
MAC descriptor (2528-d) of a 2-s segment and of the same segment after a re-upload-like
transformation (speed, tempo, noise, band limiting, gain, reverb, mixing) are pulled together, the
other segments of the batch pushed apart (NT-Xent, SimCLR's loss). The loss reads the batch-standardised
MAC descriptor itself, the vector retrieval compares: a projection head would learn invariances the
descriptor never gets.

Each training step draws ``batch_size`` windows from the training clips (ids recorded in the
checkpoint, so a run states which sources it saw), augments each once, and computes both views'
log-mel spectrograms over the whole window before cutting the central 174 frames: the same mel
(with the dB floor relative to a longer stretch) that extraction computes over a whole file. The
random draws of epoch ``e`` come from ``(seed, e)`` alone, so a resumed run repeats exactly what an
uninterrupted one would have done.

Batch-norm layers are frozen by default: they keep normalising with the initial running statistics
(mean 0, variance 1), exactly as extraction runs the random backbone, whose MAC descriptors that regime
makes robust to noise; training then starts from that good baseline and trains the network that will be
deployed. The deep layers are also held near the initial network (``keep_initial``, :class:`InitialAnchor`:
the loss adds ``keep_initial`` x (1 - the mean cosine between the trained and the initial network's MAC
vectors of layers 10-18)), because the random network's deep layers hear quiet music through speech laid
over it and unanchored training loses that. The book's appendix "Training settings measured and set aside"
(``book/settings_tried.md``) has what each kept and rejected setting measured.

Outputs under ``output_dir``: ``checkpoint.pt`` (model, head, optimiser, epoch, resolved config,
seed, git commit, clip ids; rewritten after every epoch), ``backbone.pt`` (the backbone's state dict,
keys as the original's ``layer1.0.weight`` ..., for :func:`ausil_lite.descriptors.backbone.load_backbone`) and
``loss.csv`` (epoch, step, split, loss; ``probe`` rows are the loss of one fixed batch after each
epoch, comparable across epochs, the first before any training).
"""

from __future__ import annotations

import copy
import csv
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ausil_lite.config import provenance
from ausil_lite.descriptors.audio import SAMPLE_RATE, SILENCE_PEAK
from ausil_lite.descriptors.backbone import MAC_DIM, MAC_DIMS, MAC_LAYERS, KumarCNN, load_backbone
from ausil_lite.descriptors.spectrogram import HOP, SEGMENT_FRAMES, log_mel_spectrogram
from ausil_lite.errors import InputError

Augment = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
"""``augment(samples, rate, rng) -> transformed samples``: the positive view of a training window."""

SEGMENT_SAMPLES = (SEGMENT_FRAMES - 1) * HOP
"""Samples whose centred STFT gives exactly one 174-frame segment (about 2.01 s at 44.1 kHz)."""

DEFAULT_FAMILIES = ("speed", "tempo", "noise", "telephone", "gain", "reverb", "mix")
"""Transformation families of :mod:`ausil_lite.datasets.transforms` drawn for the positive view.
Codec re-encoding is left out by default (it goes through files; band limiting stands in for it),
and so are ``crop`` and ``embed``, which would move the content away from the window's centre.

Measured on DAVR-mini ci (full chapter-3 runs, seed 0, 2026-12-02, against mix 0.832 and overall 0.987 with
these families): starting half the views with a mix at -3 to 10 dB (harder than the benchmark's 0 to 10) gave
mix 0.778 and overall 0.978; leaving ``telephone`` out gave mix 0.640 and telephone 0.644, so band-limited
views help the network hear music through speech rather than compete with it. Positives whose middle band
(a random 200-1000 Hz to a random 2-5 kHz) was, in three of ten, replaced by that band of another clip, so bass
or treble alone must identify the window (an experiment script, not kept), gave overall 0.980, mix 0.858,
telephone 0.955 and combinations 0.755: the bass-heavy copy under speech 3.8 dB down stayed 10th."""


RESUMABLE_CHANGES = ("epochs", "device", "augment_workers")
"""Settings a resumed run may change: more epochs, another device, more augmentation threads."""


class SelfSupError(InputError):
    """Unusable training input or a checkpoint that does not match the run asked for."""


@dataclass(frozen=True)
class SelfSupConfig:
    """One self-supervised run. Defaults are the ``full`` sizes; the ``ci`` profile shrinks them."""

    seed: int = 0  # draws of windows and transformations; also the backbone's initialisation seed
    epochs: int = 20
    steps_per_epoch: int = 200
    batch_size: int = 32  # windows per step; each gives two views, so 2 x batch_size segments per pass
    learning_rate: float = 3e-4  # Adam
    weight_decay: float = 1e-5
    temperature: float = 0.1  # NT-Xent softmax temperature
    projection_dim: int = 0  # 0: the loss reads the batch-standardised MAC descriptor itself; >0: a SimCLR head
    projection_hidden: int = 512
    families: tuple[str, ...] = DEFAULT_FAMILIES
    max_transforms: int = 2  # 1..max_transforms families are chained for each positive view
    max_speed: float = 1.4  # fastest speed/tempo factor: windows are cut this many segments long
    probe_size: int = 32  # windows in the fixed probe batch whose loss is logged after each epoch
    freeze_batch_norm: bool = True  # normalise with the initial running statistics throughout (see module doc)
    bn_batches: int = 0  # unfrozen only: batches whose exact statistics replace the running ones each epoch
    keep_initial: float = 1.0  # weight of the term keeping deep MAC layers near the initial network's (0: off)
    keep_from: int = 10  # the first MAC layer (network numbering, as MAC_LAYERS) that term covers
    device: str | None = None  # None: CUDA when available, else CPU
    augment_workers: int = 0  # threads augmenting a batch (0: none); the CPU side bottlenecks a GPU run

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "max_transforms"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2 or self.probe_size < 2:
            raise ValueError(
                f"batch_size and probe_size must be at least 2 (the other windows are the negatives), "
                f"got {self.batch_size}, {self.probe_size}"
            )
        if self.temperature <= 0 or self.learning_rate <= 0:
            raise ValueError("temperature and learning_rate must be positive")
        if self.freeze_batch_norm and self.bn_batches:
            raise ValueError("bn_batches recalibrates batch-norm statistics; it needs freeze_batch_norm=False")
        if self.projection_dim < 0 or self.max_speed < 1.0 or self.augment_workers < 0 or self.bn_batches < 0:
            raise ValueError("projection_dim, augment_workers and bn_batches must be >= 0, max_speed >= 1")
        if self.keep_initial < 0 or self.keep_from not in MAC_LAYERS:
            raise ValueError(f"keep_initial must be >= 0 and keep_from one of {MAC_LAYERS}, "
                             f"got {self.keep_initial}, {self.keep_from}")

    @property
    def window_samples(self) -> int:
        """Samples cut from a clip for one pair: long enough that a ``max_speed`` speed-up still fills a segment."""
        return int(math.ceil(SEGMENT_SAMPLES * self.max_speed)) + 2 * HOP


class ProjectionHead(nn.Module):
    """Batch-standardised MAC (2528) -> hidden -> BN -> ReLU -> projection, as in SimCLR; discarded after training.

    Raw MAC descriptors of different audio have cosines near 1 (every part is a unit vector of ReLU
    outputs), so the head first centres and scales each dimension over the batch; without that the loss
    sees almost no differences and training collapses to one constant embedding. With ``out`` 0 the
    standardised MAC itself is the embedding.
    """

    def __init__(self, hidden: int, out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm1d(MAC_DIM, affine=False)]
        if out:
            layers += [nn.Linear(MAC_DIM, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent of paired embeddings (B, D): each row of ``a`` must pick its row of ``b`` (and vice versa)
    among the other 2B - 1 embeddings, by cosine similarity over ``temperature``."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    n = a.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)


def transforms_augment(
    clips: Mapping[str, np.ndarray], families: tuple[str, ...] = DEFAULT_FAMILIES, max_transforms: int = 2
) -> Augment:
    """An :data:`Augment` chaining 1..``max_transforms`` random families of
    :mod:`ausil_lite.datasets.transforms`; ``mix`` lays a window of another training clip underneath."""
    from ausil_lite.datasets.transforms import FAMILIES, NEEDS_OTHER, apply_transform, draw_transform

    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        raise ValueError(f"unknown transformation families {unknown}; choose from {FAMILIES}")
    pool = list(clips.values())

    def augment(samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        count = int(rng.integers(1, min(max_transforms, len(families)) + 1))
        out = samples
        for family in rng.choice(list(families), size=count, replace=False):
            other = None
            if family in NEEDS_OTHER:
                source = pool[int(rng.integers(len(pool)))]
                start = int(rng.integers(max(1, source.size - samples.size)))
                other = source[start : start + samples.size]
            out = apply_transform(out, rate, draw_transform(rng, str(family)), other=other)
        return out

    return augment


def _centre_segment(samples: np.ndarray, device: torch.device) -> torch.Tensor:
    """Peak-normalised log-mel of ``samples``, central 174 frames, zero-padded if short: (1, 174, 128)."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    wave = torch.as_tensor(samples / max(peak, SILENCE_PEAK), dtype=torch.float32, device=device)
    mel = log_mel_spectrogram(wave, SAMPLE_RATE)
    start = max(0, (mel.shape[0] - SEGMENT_FRAMES) // 2)
    segment = mel[start : start + SEGMENT_FRAMES]
    if segment.shape[0] < SEGMENT_FRAMES:
        segment = F.pad(segment, (0, 0, 0, SEGMENT_FRAMES - segment.shape[0]))
    return segment.unsqueeze(0)


def _draw_pair(clip_id: str, clip: np.ndarray, n: int, augment: Augment, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random non-silent window of ``n`` samples and its augmented copy, from ``seed`` alone."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        start = int(rng.integers(clip.size - n + 1))
        window = clip[start : start + n]
        if np.max(np.abs(window)) > 100 * SILENCE_PEAK:
            return window, augment(window, SAMPLE_RATE, rng)
    raise SelfSupError(f"training clip {clip_id!r}: 20 random windows were all silent")


def draw_batch(
    clips: Mapping[str, np.ndarray],
    config: SelfSupConfig,
    augment: Augment,
    rng: np.random.Generator,
    device: torch.device,
    size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor and positive segments, each (size, 1, 174, 128) (default ``batch_size``), from random
    non-silent windows.

    Clips are drawn without replacement while there are enough, so a batch rarely holds two windows
    of one clip (which would be false negatives). Each pair has its own seed drawn from ``rng``, so
    with ``augment_workers`` threads the batch is the same as without.
    """
    n, size = config.window_samples, size or config.batch_size
    ids = sorted(clips)
    picks = [ids[int(i)] for i in rng.choice(len(ids), size=size, replace=size > len(ids))]
    seeds = [int(s) for s in rng.integers(2**63 - 1, size=size)]
    jobs = [(clip_id, clips[clip_id], n, augment, seed) for clip_id, seed in zip(picks, seeds)]
    if config.augment_workers:
        with ThreadPoolExecutor(config.augment_workers) as pool:  # the transforms' FFTs release the GIL
            pairs = list(pool.map(lambda job: _draw_pair(*job), jobs))
    else:
        pairs = [_draw_pair(*job) for job in jobs]
    anchors = torch.stack([_centre_segment(a, device) for a, _ in pairs])
    positives = torch.stack([_centre_segment(p, device) for _, p in pairs])
    return anchors, positives


class InitialAnchor:
    """A frozen copy of the network as initialised, and how far the trained one's deep MAC layers have left it.

    The penalty is ``weight`` x (1 - the mean cosine, over the MAC layers from ``keep_from`` on, between
    the trained and the initial network's descriptors of the same segments). Each layer's part of the
    descriptor is unit-norm, so a layer's cosine is the dot product of its slices.
    """

    def __init__(self, initial: KumarCNN, config: SelfSupConfig):
        self.network = copy.deepcopy(initial).eval().requires_grad_(False)
        first = MAC_LAYERS.index(config.keep_from)
        self.start, self.layers, self.weight = sum(MAC_DIMS[:first]), len(MAC_LAYERS) - first, config.keep_initial

    def penalty(self, segments: torch.Tensor, mac: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            initial = self.network.mac(segments)[:, self.start:]
        cosines = (mac[:, self.start:] * initial).sum(dim=1) / self.layers
        return self.weight * (1.0 - cosines).mean()


def _loss(model, head, batch, temperature: float, anchor: InitialAnchor | None = None) -> torch.Tensor:
    anchors, positives = batch
    segments = torch.cat([anchors, positives]).contiguous(memory_format=torch.channels_last)
    mac = model.mac(segments)
    embedded = head(mac)
    loss = nt_xent(embedded[: len(anchors)], embedded[len(anchors):], temperature)
    return loss if anchor is None else loss + anchor.penalty(segments, mac)


def _batch_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def set_training_mode(model: KumarCNN, freeze_batch_norm: bool) -> None:
    """Training mode, with the batch-norm layers kept in evaluation mode when ``freeze_batch_norm``:
    they then normalise with their stored statistics (while their scale and shift still learn)."""
    model.train()
    if freeze_batch_norm:
        for m in _batch_norms(model):
            m.eval()


@torch.no_grad()
def _probe_loss(model: KumarCNN, head: ProjectionHead, batch, temperature: float, anchor: InitialAnchor | None) -> float:
    """Loss of the fixed probe batch as training computes it, leaving every running batch-norm
    statistic untouched, so the value moves only when the weights do."""
    norms = _batch_norms(model)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0  # running <- 1 * running + 0 * batch
    value = float(_loss(model, copy.deepcopy(head), batch, temperature, anchor))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return value


@torch.no_grad()
def recalibrate_batch_norm(model: KumarCNN, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Replace the backbone's running batch-norm statistics by their exact average over ``batches``.

    Running averages trail weights that moved during the epoch; extraction runs the backbone in
    evaluation mode, so the saved statistics must describe the saved weights (as SWA's ``update_bn``).
    """
    norms = _batch_norms(model)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    model.train()
    for anchors, positives in batches:
        model.mac(torch.cat([anchors, positives]).contiguous(memory_format=torch.channels_last))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_loss_csv(history: list[list], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([["epoch", "step", "split", "loss"], *history])
    os.replace(tmp, path)


def _state_mismatch(state: dict, record: dict) -> str | None:
    changed = sorted(k for k in record["config"]
                     if k not in RESUMABLE_CHANGES and state["config"].get(k, "<absent>") != record["config"][k])
    if changed:
        return f"made with other settings {changed}"
    return "made with other training clips" if state["clip_ids"] != record["clip_ids"] else None


def checkpoint_mismatch(output_dir: str | Path, config: SelfSupConfig, clip_ids: Sequence[str]) -> str | None:
    """Why :func:`train_selfsup` would refuse to resume the run in ``output_dir`` with ``config`` on the
    clips ``clip_ids`` (None: no checkpoint there, or one this run continues), so a caller can set the
    old run aside instead of failing."""
    path = Path(output_dir) / "checkpoint.pt"
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    why = _state_mismatch(state, {**provenance(config, config.seed), "clip_ids": sorted(clip_ids)})
    return None if why is None else f"{path}: {why}"


def finished_backbone(output_dir: str | Path, config: SelfSupConfig, clip_ids: Sequence[str]) -> Path | None:
    """``backbone.pt`` of the run in ``output_dir`` when it finished training with ``config`` on ``clip_ids``
    (its ``loss.csv`` rewritten from the checkpoint); None when there is no such finished run. Needs only the ids,
    so a caller that knows them can reuse a finished backbone without decoding its clips."""
    output = Path(output_dir)
    checkpoint_path, backbone_path = output / "checkpoint.pt", output / "backbone.pt"
    if not checkpoint_path.is_file() or not backbone_path.is_file():
        return None
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    record = {**provenance(config, config.seed), "clip_ids": sorted(clip_ids)}
    return None if _state_mismatch(state, record) is not None else _finished(state, output, config)


def _finished(state: dict, output: Path, config: SelfSupConfig) -> Path | None:
    """``backbone.pt`` when the matching checkpoint ``state`` has trained every epoch (``loss.csv`` rewritten)."""
    backbone_path = output / "backbone.pt"
    if state["epoch"] + 1 < config.epochs or not backbone_path.is_file():
        return None
    _write_loss_csv(state["history"], output / "loss.csv")
    return backbone_path


def train_selfsup(
    config: SelfSupConfig,
    clips: Mapping[str, np.ndarray],
    output_dir: str | Path,
    augment: Augment | None = None,
    resume: bool = True,
    log: Callable[[str], None] | None = print,
) -> Path:
    """Train on ``clips`` (id -> mono float32 at 44.1 kHz; the TRAINING split only) and return the
    path of ``backbone.pt``. ``augment`` defaults to :func:`transforms_augment` over the clips.

    With ``resume`` a ``checkpoint.pt`` in ``output_dir`` is continued (its config and clip ids must
    match); a finished run returns at once. Without it an existing checkpoint is an error.
    """
    output = Path(output_dir)
    ids = sorted(clips)
    too_short = [i for i in ids if clips[i].ndim != 1 or clips[i].size < config.window_samples]
    if not ids or too_short:
        raise SelfSupError(
            f"need mono training clips of at least {config.window_samples / SAMPLE_RATE:.2f} s; "
            f"too short or not mono: {too_short[:10]}" if ids else "no training clips"
        )
    record = {**provenance(config, config.seed), "clip_ids": ids}
    checkpoint_path, loss_path, backbone_path = output / "checkpoint.pt", output / "loss.csv", output / "backbone.pt"
    state = None
    if checkpoint_path.is_file():
        if not resume:
            raise SelfSupError(f"{checkpoint_path}: a run exists; resume it or choose another output folder")
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if (why := _state_mismatch(state, record)) is not None:
            raise SelfSupError(f"{checkpoint_path}: {why}; use another output folder")
        if (finished := _finished(state, output, config)) is not None:
            return finished

    pool = {i: np.asarray(clips[i], dtype=np.float32) for i in ids}
    augment = augment or transforms_augment(clips, config.families, config.max_transforms)
    model = load_backbone(None, seed=config.seed, device=config.device)
    set_training_mode(model, config.freeze_batch_norm)
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1)
        head = ProjectionHead(config.projection_hidden, config.projection_dim).to(device)
    optimiser = torch.optim.Adam(
        list(model.parameters()) + list(head.parameters()), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    probe = draw_batch(pool, config, augment, np.random.default_rng([config.seed, 2**31]), device, config.probe_size)
    anchor = InitialAnchor(model, config) if config.keep_initial else None  # before a resumed state is loaded
    if state is not None:
        model.load_state_dict(state["model"])
        head.load_state_dict(state["head"])
        optimiser.load_state_dict(state["optimiser"])
        first_epoch, history = state["epoch"] + 1, state["history"]
    else:
        output.mkdir(parents=True, exist_ok=True)
        first_epoch, history = 0, [[0, 0, "probe", _probe_loss(model, head, probe, config.temperature, anchor)]]

    for epoch in range(first_epoch, config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        train_losses, started = [], time.perf_counter()
        steps = tqdm(range(config.steps_per_epoch), desc=f"selfsup epoch {epoch + 1}/{config.epochs}", unit="step",
                     disable=log is None, leave=False, file=sys.stderr)
        for _ in steps:
            loss = _loss(model, head, draw_batch(pool, config, augment, rng, device), config.temperature, anchor)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            train_losses.append(float(loss.detach()))
            steps.set_postfix(loss=f"{train_losses[-1]:.3f}")
        if config.bn_batches:
            bn_rng = np.random.default_rng([config.seed, epoch, 2**30])
            recalibrate_batch_norm(model, [draw_batch(pool, config, augment, bn_rng, device) for _ in range(config.bn_batches)])
            set_training_mode(model, config.freeze_batch_norm)
        probe_loss = _probe_loss(model, head, probe, config.temperature, anchor)
        first_step = epoch * config.steps_per_epoch + 1
        history += [[epoch + 1, first_step + i, "train", v] for i, v in enumerate(train_losses)]
        history.append([epoch + 1, first_step + config.steps_per_epoch - 1, "probe", probe_loss])
        state = {
            **record, "epoch": epoch, "history": history, "model": model.state_dict(),
            "optimiser": optimiser.state_dict(), "head": head.state_dict(),
        }
        _atomic_save(state, checkpoint_path)
        _atomic_save(model.state_dict(), backbone_path)
        _write_loss_csv(history, loss_path)  # rewritten whole from the checkpoint's history: never out of step
        if log is not None:
            log(f"epoch {epoch + 1}/{config.epochs}: train loss {np.mean(train_losses):.4f}, probe {probe_loss:.4f} "
                f"({time.perf_counter() - started:.1f} s)")
    return backbone_path
