"""Triplet training of AuSiL-lite: the attention context vector and the video comparator.

Data are training descriptors only (a :class:`TripletSource`): (anchor, positive) pairs, the positive
an audio duplicate of the anchor made by a transformation (speed changes included), and a pool of
negatives. PCA whitening is fitted once on all their segments and then fixed, as in the original.
Each epoch mines hard negatives (the negatives most similar to each anchor under the current model)
and minimises, with Adam,

    loss = mean max(0, s(a, n) - s(a, p) + margin) + r * mean over maps of sum(|out-of-range logits|)
           [+ w * mean max(0, s(a, n) - s(a, a) + margin)]

the triplet loss plus the similarity regularisation of ViSiL, which pulls the comparator's map before
the hard tanh into [-1, 1] (outside it, the clip would stop the gradient). The optional identity term
(weight w, ``identity_weight``) asks each anchor to outscore its negatives against itself as well: the
triplet loss alone never shows the comparator an exact copy, and it learns to read contrast along the
diagonal, so a copy of steady music (whose whole similarity matrix is high) scores low.

Every epoch writes a checkpoint (weights, optimiser state, history, resolved config, seed, git commit)
atomically, the model files that :func:`ausil_lite.similarity.load_model` reads, and the learning
curve CSV. A run that stopped resumes from its last checkpoint and ends where an uninterrupted run
would: all randomness of epoch e comes from a generator seeded by (seed, e).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ausil_lite.config import config_from_dict, git_commit
from ausil_lite.descriptors.attention import AttentionWeighting
from ausil_lite.descriptors.audio import peak_normalise
from ausil_lite.descriptors.backbone import resolve_device
from ausil_lite.descriptors.whitening import PCAWhitening
from ausil_lite.errors import SilentAudioError
from ausil_lite.similarity.comparator import pooled_size
from ausil_lite.similarity.matrix import pad_sequences
from ausil_lite.similarity.model import MIN_QUERY_SEGMENTS, WHITENING_FILE, AuSiL, repeat_short

CHECKPOINT_FILE = "checkpoint.pt"
CURVE_FILE = "learning_curve.csv"


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of one training run; stored in every checkpoint and model folder."""

    epochs: int = 30
    batch_size: int = 16  # triplets per Adam step
    learning_rate: float = 1e-3  # Adam; ViSiL used 1e-5 over far more steps; on DAVR-mini ci 1e-4 barely moves in 30 epochs
    margin: float = 0.5  # triplet margin gamma, in similarity units ([-1, 1])
    regularisation: float = 0.5  # weight r of the similarity regularisation (ViSiL's value)
    hard_pool: int = 10  # each anchor's negatives are drawn from its hard_pool most similar ones
    negatives_per_anchor: int = 2  # triplets per (anchor, positive) pair and epoch
    max_segments: int = 48  # longer anchors are cropped (s, at the 1-s step); positives crop alike
    whitening_components: int | None = None  # None keeps all 2528 dimensions
    identity_weight: float = 0.0  # w of the identity term; 0: the plain triplet loss
    seed: int = 0
    device: str | None = None  # None: CUDA when available, else CPU

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "hard_pool", "negatives_per_anchor")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"TrainingConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.max_segments < MIN_QUERY_SEGMENTS:
            raise ValueError(f"max_segments must be at least {MIN_QUERY_SEGMENTS}, got {self.max_segments}")
        if self.learning_rate <= 0 or self.margin < 0 or self.regularisation < 0 or self.identity_weight < 0:
            raise ValueError("learning_rate must be positive, margin, regularisation and identity_weight non-negative")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        return config_from_dict(cls, values)


@dataclass(frozen=True)
class TripletSource:
    """Training descriptors: (anchor, positive) pairs and a pool of negatives, each (N, 2528) float32.

    ``pair_groups``/``negative_groups`` (optional) name the source recording of each pair and each
    negative: a negative never serves an anchor of its own group (it could be a duplicate of it), except
    where ``negative_owners`` (optional, with the groups) names that anchor: another moment of the anchor's own
    recording, cut for that pair (:meth:`ausil_lite.datasets.training.TrainingPool.draw_elsewhere`) away from its
    window and the window's repeats. It serves its owner and every anchor of another group, never another anchor
    of its recording, whose window it may hold. -1: no owner.
    """

    pairs: Sequence[tuple[np.ndarray, np.ndarray]]
    negatives: Sequence[np.ndarray]
    pair_groups: Sequence[str] | None = None
    negative_groups: Sequence[str] | None = None
    negative_owners: Sequence[int] | None = None

    def __post_init__(self) -> None:
        if not self.pairs or not self.negatives:
            raise ValueError("a triplet source needs at least one pair and one negative")
        if (self.pair_groups is None) != (self.negative_groups is None):
            raise ValueError("give both pair_groups and negative_groups, or neither")
        if self.pair_groups is not None and (
            len(self.pair_groups) != len(self.pairs) or len(self.negative_groups) != len(self.negatives)
        ):
            raise ValueError("one group per pair and one per negative")
        if self.negative_owners is not None and (self.pair_groups is None or len(self.negative_owners) != len(self.negatives)):
            raise ValueError("negative_owners needs the groups and one owner (-1 for none) per negative")
        for i, (anchor, _) in enumerate(self.pairs):
            if len(anchor) < MIN_QUERY_SEGMENTS:
                raise ValueError(f"anchor {i} has {len(anchor)} segments; the comparator needs {MIN_QUERY_SEGMENTS}")

    def all_segments(self) -> np.ndarray:
        """Every segment descriptor of the source, (total, D): what the whitening is fitted on."""
        videos = [x for pair in self.pairs for x in pair] + list(self.negatives)
        return np.concatenate(videos).astype(np.float32, copy=False)

    def digest(self) -> str:
        """SHA-1 of every descriptor, length and group: a resumed run must see the same data."""
        h = hashlib.sha1()
        for x in [x for pair in self.pairs for x in pair] + list(self.negatives):
            h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
            h.update(str(len(x)).encode())
        h.update(repr((self.pair_groups, self.negative_groups)).encode())
        if self.negative_owners is not None:  # sources without owners keep the digests their checkpoints hold
            h.update(repr(list(self.negative_owners)).encode())
        return h.hexdigest()

    def allowed_negatives(self) -> np.ndarray:
        """(pairs, negatives) bool: which negatives may serve which anchor."""
        if self.pair_groups is None:
            return np.ones((len(self.pairs), len(self.negatives)), dtype=bool)
        allowed = np.asarray(self.pair_groups)[:, None] != np.asarray(self.negative_groups)[None, :]
        if self.negative_owners is not None:
            allowed |= np.asarray(self.negative_owners)[None, :] == np.arange(len(self.pairs))[:, None]
        return allowed

    def concat(self, other: TripletSource) -> TripletSource:
        """This source's pairs and negatives followed by ``other``'s (both grouped), owners renumbered."""
        if self.pair_groups is None or other.pair_groups is None:
            raise ValueError("only grouped sources can be joined")

        def owners_of(source: TripletSource) -> list[int]:
            return list(source.negative_owners) if source.negative_owners is not None else [-1] * len(source.negatives)

        owners = None
        if self.negative_owners is not None or other.negative_owners is not None:
            owners = owners_of(self) + [o + len(self.pairs) if o >= 0 else -1 for o in owners_of(other)]
        return TripletSource(list(self.pairs) + list(other.pairs), list(self.negatives) + list(other.negatives),
                             list(self.pair_groups) + list(other.pair_groups),
                             list(self.negative_groups) + list(other.negative_groups), owners)


def save_triplet_source(source: TripletSource, path: str | Path) -> Path:
    """Store a source as one ``.npz`` (segments concatenated, lengths alongside), so extraction runs once."""
    videos = [x for pair in source.pairs for x in pair] + list(source.negatives)
    groups = {}
    if source.pair_groups is not None:
        groups = {"pair_groups": np.asarray(source.pair_groups, dtype=str),
                  "negative_groups": np.asarray(source.negative_groups, dtype=str)}
    if source.negative_owners is not None:
        groups["negative_owners"] = np.asarray(source.negative_owners, dtype=np.int64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, segments=np.concatenate(videos), lengths=np.array([len(v) for v in videos]),
             n_pairs=len(source.pairs), **groups)
    return path


def load_triplet_source(path: str | Path) -> TripletSource:
    with np.load(path, allow_pickle=False) as data:
        videos = np.split(data["segments"], np.cumsum(data["lengths"])[:-1])
        n = 2 * int(data["n_pairs"])
        groups = ([str(g) for g in data["pair_groups"]], [str(g) for g in data["negative_groups"]]) \
            if "pair_groups" in data else (None, None)
        owners = [int(o) for o in data["negative_owners"]] if "negative_owners" in data else None
    pairs = [(videos[i], videos[i + 1]) for i in range(0, n, 2)]
    return TripletSource(pairs, videos[n:], *groups, owners)


Drawn = TypeVar("Drawn")
SILENT_REDRAWS = 50
"""Draws of one clip before :func:`redraw_silent` gives up: a pause is drawn again, a silent pool is an error."""


def redraw_silent(draw: Callable[[], Drawn]) -> Drawn:
    """``draw()``, called again (from the same generator, so runs stay reproducible) while it raises
    :class:`SilentAudioError`: a random window of a sound effect can fall in a pause."""
    for _ in range(SILENT_REDRAWS - 1):
        try:
            return draw()
        except SilentAudioError:
            continue
    return draw()


def triplet_source_from_pool(
    pool, extractor, pairs: int, negatives: int, duration_s: float, seed: int, families: Sequence[str] | None = None,
    progress: bool = False, same_track: bool = False, severe: float = 0.0,
) -> tuple[TripletSource, list[dict]]:
    """Training descriptors from a :class:`ausil_lite.datasets.training.TrainingPool` (training tracks only).

    Draws ``pairs`` anchor clips of ``duration_s`` seconds with a transformed positive each, and
    ``negatives`` further clips; every clip is peak-normalised (as a decoded file would be) and passed
    through ``extractor.from_waveform``. Anchors also join the negative pool, and so does, for an anchor
    whose track has siblings (renders of one score), the same moment of a sibling: the hardest negative,
    the same music in another recording. Groups (source track ids) keep a clip from being the negative
    of an anchor cut from the same track. ``same_track``: each anchor also gets another moment of its own track
    (:meth:`~ausil_lite.datasets.training.TrainingPool.draw_elsewhere`), a negative for that anchor alone among
    the anchors of its track (``TripletSource.negative_owners``); a silent one is skipped. ``severe``: the share of
    positives drawn from the hard end of their family's range (:func:`ausil_lite.datasets.transforms.random_transform`).
    Returns the source and the transformation record of each pair.
    A clip silent throughout (a pause in a sound effect) is drawn again (:func:`redraw_silent`). ``progress``
    shows a bar of clips drawn (minutes of silence would look like a stuck study on a slow machine).
    """
    rng = np.random.default_rng(seed)
    bar = tqdm(total=pairs + negatives, desc="triplet clips", unit="clip", disable=not progress, leave=False,
               file=sys.stderr)
    kwargs = {"severe": severe} if families is None else {"families": families, "severe": severe}

    def normalised(clip) -> np.ndarray:
        return peak_normalise(clip.samples, f"{clip.track}@{clip.start_s}s")

    def draw_pair():
        anchor, positive, params = pool.draw_pair(rng, duration_s, **kwargs)
        where = f"{anchor.track}@{anchor.start_s}s+{params['family']}"
        return anchor, normalised(anchor), peak_normalise(positive, where), params

    def draw_clip():
        clip = pool.draw_clip(rng, duration_s)
        return clip, normalised(clip)

    pair_list, records, anchor_groups, siblings, sibling_groups = [], [], [], [], []
    elsewhere, elsewhere_groups, elsewhere_owners = [], [], []
    for index in range(pairs):
        anchor, anchor_wave, positive_wave, params = redraw_silent(draw_pair)
        pair_list.append((extractor.from_waveform(anchor_wave), extractor.from_waveform(positive_wave)))
        records.append({"track": anchor.track, "start_s": anchor.start_s, **params})
        anchor_groups.append(anchor.track)
        if (sibling := pool.draw_sibling(rng, anchor)) is not None:  # the same music, another recording
            siblings.append(extractor.from_waveform(normalised(sibling)))
            sibling_groups.append(sibling.track)
        if same_track and (other := pool.draw_elsewhere(rng, anchor)) is not None:
            try:
                elsewhere.append(extractor.from_waveform(normalised(other)))
            except SilentAudioError:  # a pause of the track: no negative for this anchor, and no redraw
                pass
            else:
                elsewhere_groups.append(anchor.track)
                elsewhere_owners.append(index)
        bar.update()
    negative_list = [a for a, _ in pair_list] + siblings + elsewhere
    negative_groups = anchor_groups + sibling_groups + elsewhere_groups
    for _ in range(negatives):
        clip, wave = redraw_silent(draw_clip)
        negative_list.append(extractor.from_waveform(wave))
        negative_groups.append(clip.track)
        bar.update()
    bar.close()
    owners = None
    if same_track:
        owners = [-1] * (len(pair_list) + len(siblings)) + elsewhere_owners + [-1] * negatives
    return TripletSource(pair_list, negative_list, anchor_groups, negative_groups, owners), records


def similarity_regularisation(logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Sum of how far each valid logit lies outside [-1, 1], averaged over the maps of the batch.

    ViSiL sums over the whole batch; averaging keeps the weight r independent of the batch size.
    """
    excess = (logits.abs() - 1.0).clamp(min=0.0)
    valid = (torch.arange(logits.shape[1], device=logits.device) < rows[:, None])[:, :, None] & (
        torch.arange(logits.shape[2], device=logits.device) < cols[:, None]
    )[:, None, :]
    return (excess * valid).sum(dim=(1, 2)).mean()


def _crop_pair(anchor: torch.Tensor, positive: torch.Tensor, max_segments: int, rng: np.random.Generator):
    """A random window of the anchor and the matching window of the positive (scaled by length ratio)."""
    if len(anchor) <= max_segments:
        return anchor, positive
    start = int(rng.integers(0, len(anchor) - max_segments + 1))
    ratio = len(positive) / len(anchor)
    p_start, p_len = int(round(start * ratio)), max(int(round(max_segments * ratio)), 1)
    return anchor[start : start + max_segments], positive[p_start : p_start + p_len]


def _crop_random(x: torch.Tensor, max_segments: int, rng: np.random.Generator) -> torch.Tensor:
    if len(x) <= max_segments:
        return x
    start = int(rng.integers(0, len(x) - max_segments + 1))
    return x[start : start + max_segments]


@dataclass(frozen=True)
class _WhitenedSource:
    """The source's videos whitened once on the training device: whitening is fixed, so each step
    only applies the attention (the 2528 x 2528 projection would otherwise dominate every step)."""

    pairs: list[tuple[torch.Tensor, torch.Tensor]]
    negatives: list[torch.Tensor]
    allowed: np.ndarray

    @classmethod
    @torch.no_grad()
    def of(cls, model: AuSiL, source: TripletSource) -> "_WhitenedSource":
        def whiten(x: np.ndarray) -> torch.Tensor:
            return model.whitening(torch.as_tensor(np.asarray(x, dtype=np.float32), device=model.device))

        return cls([(whiten(a), whiten(p)) for a, p in source.pairs], [whiten(n) for n in source.negatives],
                   source.allowed_negatives())


@torch.no_grad()
def _mine(model: AuSiL, data: _WhitenedSource, hard_pool: int) -> np.ndarray:
    def global_descriptor(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(model.attention(x).mean(dim=0), dim=0)

    anchors = torch.stack([global_descriptor(a) for a, _ in data.pairs])
    negatives = torch.stack([global_descriptor(n) for n in data.negatives])
    sims = (anchors @ negatives.T).cpu().numpy()
    if not data.allowed.any(axis=1).all():
        raise ValueError("some anchor has no allowed negative (every negative shares its group)")
    sims[~data.allowed] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")[:, :hard_pool]
    keep = np.take_along_axis(data.allowed, order, axis=1)
    # an anchor with fewer allowed negatives than hard_pool repeats its hardest allowed ones
    return np.where(keep, order, order[:, :1])


def mine_hard_negatives(model: AuSiL, source: TripletSource, hard_pool: int) -> np.ndarray:
    """(pairs, hard_pool) indices of each anchor's most similar allowed negatives, hardest first.

    Similarity here is the cosine of mean-pooled embeddings (whitened, attention-weighted): cheap
    enough to rank every negative for every anchor each epoch, and it follows the trained attention.
    """
    return _mine(model, _WhitenedSource.of(model, source), hard_pool)


def _epoch_triplets(model: AuSiL, data: _WhitenedSource, config: TrainingConfig, rng: np.random.Generator):
    """The epoch's triplets as whitened (anchor, positive, negative) tensors, shuffled and cropped."""
    hard = _mine(model, data, config.hard_pool)
    triplets = []
    for i, (anchor, positive) in enumerate(data.pairs):
        picks = rng.choice(hard.shape[1], size=config.negatives_per_anchor, replace=hard.shape[1] < config.negatives_per_anchor)
        for j in hard[i, picks]:
            a, p = _crop_pair(anchor, positive, config.max_segments, rng)
            n = _crop_random(data.negatives[int(j)], config.max_segments, rng)
            triplets.append((a, p, n))
    order = rng.permutation(len(triplets))
    return [triplets[k] for k in order]


def _batch_loss(model: AuSiL, batch, config: TrainingConfig) -> dict[str, torch.Tensor]:
    def embedded(videos, repeat: bool):
        # pad the (fixed) whitened descriptors first, then weight the batch: padding rows stay zero
        # and the backward pass never copies per-sequence slices of the gradient
        batch, lengths = pad_sequences([repeat_short(v) if repeat else v for v in videos])
        return model.attention(batch), lengths

    anchors, a_len = embedded([t[0] for t in batch], repeat=False)
    positives, p_len = embedded([t[1] for t in batch], repeat=True)
    negatives, n_len = embedded([t[2] for t in batch], repeat=True)
    s_pos, logits_pos = model.compare(anchors, a_len, positives, p_len)
    s_neg, logits_neg = model.compare(anchors, a_len, negatives, n_len)
    triplet = F.relu(s_neg - s_pos + config.margin).mean()
    rows = pooled_size(a_len)
    excess = [similarity_regularisation(logits_pos, rows, pooled_size(p_len)),
              similarity_regularisation(logits_neg, rows, pooled_size(n_len))]
    identity_terms = {}
    if config.identity_weight > 0:
        s_self, logits_self = model.compare(anchors, a_len, anchors, a_len)
        excess.append(similarity_regularisation(logits_self, rows, rows))
        identity_terms = {"identity_loss": F.relu(s_neg - s_self + config.margin).mean(),
                          "self_similarity": s_self.mean()}
    regularisation = sum(excess) / len(excess)
    loss = triplet + config.regularisation * regularisation
    if identity_terms:
        loss = loss + config.identity_weight * identity_terms["identity_loss"]
    return {
        "loss": loss,
        "triplet_loss": triplet,
        "regularisation": regularisation,
        "violations": (s_neg + config.margin > s_pos).float().mean(),
        "positive_similarity": s_pos.mean(),
        "negative_similarity": s_neg.mean(),
        **identity_terms,
    }


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _provenance(config: TrainingConfig, epoch: int, digest: str, data: dict | None) -> dict:
    record = {"config": dataclasses.asdict(config), "seed": config.seed, "git_commit": git_commit(), "epoch": epoch,
              "source_digest": digest}
    if data is not None:
        record["data"] = data
    return record


ADDED_LATER = {"identity_weight": 0.0}
"""Config fields that checkpoints written before them lack, with the value those runs had in effect."""


def _comparable(config_dict: dict) -> dict:
    """Config fields that must match to resume (epochs may be raised, the device may change); a field added later
    counts as absent at its old value, so a run made before it still resumes."""
    return {k: v for k, v in config_dict.items()
            if k not in ("epochs", "device") and not (k in ADDED_LATER and v == ADDED_LATER[k])}


def checkpoint_mismatch(model_dir: str | Path, source: TripletSource, config: TrainingConfig) -> str | None:
    """Why the checkpoint in ``model_dir`` cannot be resumed with ``source`` and ``config`` (None: it can,
    or there is none). Only ``epochs`` and ``device`` may differ from the run that wrote it."""
    path = Path(model_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    recorded = torch.load(path, map_location="cpu", weights_only=True)["provenance"]
    return _provenance_mismatch(path, recorded, source.digest(), config)


def _provenance_mismatch(path: Path, recorded: dict, digest: str, config: TrainingConfig) -> str | None:
    if _comparable(recorded["config"]) != _comparable(dataclasses.asdict(config)):
        return f"{path}: made with {recorded['config']}; asked for {dataclasses.asdict(config)}"
    if recorded["source_digest"] != digest:
        return f"{path}: made from other training data"
    return None


def train(
    source: TripletSource,
    config: TrainingConfig,
    model_dir: str | Path,
    data: dict | None = None,
    progress: bool = True,
) -> tuple[AuSiL, pd.DataFrame]:
    """Train on ``source`` into ``model_dir``, resuming from its checkpoint when there is one.

    ``data`` (plain JSON values) describes where the descriptors came from and is stored with the
    model; an ``"extraction"`` entry (an ``ExtractionConfig`` as a dict) tells ``ausil-lite
    similarity`` which backbone to run on media files.

    Returns the trained model and the learning curve (one row per epoch, also in
    ``learning_curve.csv``). A checkpoint made with another config (other than ``epochs`` and
    ``device``) or other data raises instead of silently mixing runs.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    checkpoint_path = model_dir / CHECKPOINT_FILE

    checkpoint, digest = None, source.digest()
    if checkpoint_path.is_file():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        mismatch = _provenance_mismatch(checkpoint_path, checkpoint["provenance"], digest, config)
        if mismatch is not None:
            raise ValueError(f"{mismatch}; use another model folder")
        whitening = PCAWhitening.load(model_dir / WHITENING_FILE)
    else:
        whitening = PCAWhitening.fit(source.all_segments(), config.whitening_components)

    torch.manual_seed(config.seed)
    dim = whitening.projection.shape[1]
    model = AuSiL(whitening, AttentionWeighting(dim)).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(trainable, lr=config.learning_rate)
    history: list[dict] = []
    first_epoch = 1
    if checkpoint is not None:
        model.attention.load_state_dict(checkpoint["attention"])
        model.comparator.load_state_dict(checkpoint["comparator"])
        optimiser.load_state_dict(checkpoint["optimiser"])
        history = checkpoint["history"]
        first_epoch = checkpoint["provenance"]["epoch"] + 1

    whitened = _WhitenedSource.of(model, source)
    for epoch in range(first_epoch, config.epochs + 1):
        started = time.perf_counter()
        rng = np.random.default_rng([config.seed, epoch])
        triplets = _epoch_triplets(model, whitened, config, rng)
        sums: dict[str, float] = {}
        for b in range(0, len(triplets), config.batch_size):
            batch = triplets[b : b + config.batch_size]
            terms = _batch_loss(model, batch, config)
            optimiser.zero_grad()
            terms["loss"].backward()
            optimiser.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.item() * len(batch)
        row = {"epoch": epoch, **{k: v / len(triplets) for k, v in sums.items()},
               "triplets": len(triplets), "seconds": round(time.perf_counter() - started, 3)}
        history.append(row)
        provenance = _provenance(config, epoch, digest, data)
        model.save(model_dir, provenance)
        _atomic_torch_save(
            {"attention": model.attention.state_dict(), "comparator": model.comparator.state_dict(),
             "optimiser": optimiser.state_dict(), "history": history, "provenance": provenance},
            checkpoint_path,
        )
        pd.DataFrame(history).to_csv(model_dir / CURVE_FILE, index=False)
        if progress:
            print(f"epoch {epoch}/{config.epochs}: loss {row['loss']:.4f} (triplet {row['triplet_loss']:.4f}, "
                  f"reg {row['regularisation']:.4f}), violations {row['violations']:.2f}, {row['seconds']:.1f} s")
    return model.eval(), pd.DataFrame(history)
