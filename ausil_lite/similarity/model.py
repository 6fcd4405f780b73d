"""AuSiL-lite: raw MAC descriptors in, video-to-video similarity out.

descriptors (N, 2528) -> PCA whitening (fixed, fitted on training descriptors) -> attention weighting
(trained context vector) -> similarity matrix with the other video -> video comparator (trained) ->
chamfer similarity of the refined map, by the model's rule (``query`` as trained, ``symmetric`` or ``either``:
:data:`ausil_lite.similarity.chamfer.CHAMFER_RULES`). A database video shorter than 10 segments is concatenated with
itself until it has at least 10, as the original does; queries are used as they are, and need at
least 4 segments (the comparator's two 2x2 pools would leave an empty map: the original returns NaN).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ausil_lite.descriptors.attention import AttentionWeighting
from ausil_lite.descriptors.backbone import resolve_device
from ausil_lite.descriptors.whitening import PCAWhitening
from ausil_lite.digests import SUMS_FILE, verify_sha256sums
from ausil_lite.errors import InputError
from ausil_lite.similarity.chamfer import CHAMFER_RULES, check_chamfer_rule, directed_chamfer
from ausil_lite.similarity.comparator import VideoComparator, pooled_size
from ausil_lite.similarity.matrix import query_similarity_batch, similarity_matrix

MIN_DATABASE_SEGMENTS = 10
MIN_QUERY_SEGMENTS = 4

CHAMFER_RULE_KEY = "chamfer_rule"
"""The key of a model folder's ``config.json`` naming its :data:`ausil_lite.similarity.chamfer.CHAMFER_RULES`
entry (absent: ``query``, the rule every model is trained with)."""

WEIGHTS_FILE = "model.pt"  # attention context vector + comparator state dict
WHITENING_FILE = "whitening.npz"
CONFIG_FILE = "config.json"  # provenance: resolved training config, seed, git commit


def repeat_short(descriptors: np.ndarray | torch.Tensor, minimum: int = MIN_DATABASE_SEGMENTS):
    """Concatenate a video with itself (doubling) until it has at least ``minimum`` segments.

    Doubling, not tiling to exactly ``minimum``, matches the original: 3 segments become 12.
    """
    if len(descriptors) == 0:
        raise ValueError("cannot repeat a video with no segments")
    cat = torch.cat if isinstance(descriptors, torch.Tensor) else np.concatenate
    while len(descriptors) < minimum:
        descriptors = cat((descriptors, descriptors), 0)
    return descriptors


class AuSiL(nn.Module):
    """Whitening + attention + comparator; a scorer that prepares each video once, then scores pairs.

    Use :meth:`prepare` on every video (``role`` "query" or "database"), then :meth:`score_many`
    (one query against many candidates, batched) or :meth:`compare` (aligned batches, for training).
    """

    name = "ausil"

    def __init__(
        self,
        whitening: PCAWhitening,
        attention: AttentionWeighting | None = None,
        comparator: VideoComparator | None = None,
        chamfer_rule: str = "query",
    ):
        super().__init__()
        # training always learns with "query"; a model folder may record another
        self.chamfer_rule = check_chamfer_rule(chamfer_rule)
        dim = whitening.projection.shape[1]
        self.whitening = whitening.requires_grad_(False)
        self.attention = attention if attention is not None else AttentionWeighting(dim)
        self.comparator = comparator if comparator is not None else VideoComparator()

    @property
    def device(self) -> torch.device:
        return self.whitening.mean.device

    def embed(self, descriptors: torch.Tensor) -> torch.Tensor:
        """Raw MAC descriptors (..., N, 2528) -> whitened, attention-weighted (..., N, dim)."""
        return self.attention(self.whitening(descriptors))

    @torch.inference_mode()
    def prepare(self, descriptors: np.ndarray | torch.Tensor, role: str = "database") -> torch.Tensor:
        """One video's embedded segments on the model's device, ready to be scored many times.

        Database videos are repeated up to 10 segments; a query shorter than 4 segments raises.
        """
        if role not in ("query", "database"):
            raise ValueError(f"role must be 'query' or 'database', got {role!r}")
        x = torch.as_tensor(np.asarray(descriptors, dtype=np.float32), device=self.device)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"expected (N, D) descriptors with N >= 1, got {tuple(x.shape)}")
        if role == "database":
            x = repeat_short(x)
        elif len(x) < MIN_QUERY_SEGMENTS:
            raise ValueError(f"a query needs at least {MIN_QUERY_SEGMENTS} segments, this one has {len(x)}")
        return self.embed(x)

    def compare(
        self, queries: torch.Tensor, q_len: torch.Tensor, candidates: torch.Tensor, c_len: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Similarity of aligned pairs from padded embedded batches.

        ``queries`` (B or 1, X, dim), ``candidates`` (B, Y, dim), lengths (B,) (or (1,) for one
        query). Returns the chamfer similarities (B,) and the comparator's map before clipping
        (B, X // 4, Y // 4), which the training loss regularises.
        """
        return self.compare_matrices(similarity_matrix(queries, candidates), q_len, c_len)

    def compare_matrices(
        self, sim: torch.Tensor, q_len: torch.Tensor, c_len: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`compare` from a padded batch of similarity matrices (B, X, Y) and their sizes."""
        q_len = q_len.expand(len(sim))
        logits = self.comparator.logits(sim, q_len, c_len)
        scores = directed_chamfer(logits.clamp(-1.0, 1.0), pooled_size(q_len), pooled_size(c_len), self.chamfer_rule)
        return scores, logits

    @torch.inference_mode()
    def score_many(self, query: torch.Tensor, candidates: Sequence[torch.Tensor]) -> np.ndarray:
        """Similarity of one prepared query with each prepared candidate, in one padded batch."""
        sim, lengths = query_similarity_batch(query, candidates)
        scores, _ = self.compare_matrices(sim, torch.tensor([len(query)], device=sim.device), lengths)
        return scores.cpu().numpy()

    @torch.inference_mode()
    def similarity(self, query: np.ndarray, candidate: np.ndarray) -> float:
        """Similarity of one pair of raw descriptor arrays (query first: chamfer is asymmetric)."""
        return float(self.score_many(self.prepare(query, "query"), [self.prepare(candidate)])[0])

    @torch.inference_mode()
    def similarity_maps(self, query: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pair's similarity matrix before the comparator (X, Y') and its output (X // 4, Y' // 4).

        Y' is the candidate's length after repetition; for the figures of the similarity-map notebook.
        """
        q, c = self.prepare(query, "query"), self.prepare(candidate)
        before = similarity_matrix(q, c)
        after = self.comparator(before[None])[0]
        return before.cpu().numpy(), after.cpu().numpy()

    def save(self, directory: str | Path, provenance: dict) -> Path:
        """Write weights, whitening and the provenance record (config, seed, git commit) to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.chamfer_rule != "query":
            provenance = {**provenance, CHAMFER_RULE_KEY: self.chamfer_rule}
        state = {"attention": self.attention.state_dict(), "comparator": self.comparator.state_dict()}
        torch.save(state, directory / WEIGHTS_FILE)
        self.whitening.save(directory / WHITENING_FILE)
        write_provenance(directory, provenance)
        return directory


def load_model(directory: str | Path, device: str | torch.device | None = None) -> AuSiL:
    """The model saved by :meth:`AuSiL.save` (or by training) in ``directory``, in eval mode.

    ``device`` None: CUDA when available, else CPU. Missing or mismatched files raise, naming them. A
    folder with a ``SHA256SUMS`` list (a released model, :mod:`ausil_lite.models.released`) is checked
    against it first, however it is reached. Float16 files (released models) load as float32. The model scores
    by the chamfer rule its ``config.json`` records (:data:`CHAMFER_RULE_KEY`; ``query`` when it records none).
    """
    directory = Path(directory)
    if (directory / SUMS_FILE).is_file():
        verify_sha256sums(directory, (WEIGHTS_FILE, WHITENING_FILE, CONFIG_FILE))
    for name in (WEIGHTS_FILE, WHITENING_FILE, CONFIG_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name}: missing; not a model directory written by ausil-lite")
    rule = model_chamfer_rule(directory)
    device = resolve_device(device)
    whitening = PCAWhitening.load(directory / WHITENING_FILE)
    model = AuSiL(whitening, chamfer_rule=rule)
    state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.attention.load_state_dict(state["attention"])
    model.comparator.load_state_dict(state["comparator"])
    return model.to(device).eval()


def read_provenance(directory: str | Path) -> dict:
    """The record stored with a model: resolved training config, seed, git commit."""
    return json.loads((Path(directory) / CONFIG_FILE).read_text(encoding="utf-8"))


def write_provenance(directory: str | Path, record: dict) -> None:
    """Store ``record`` as the model folder's ``config.json`` (what :func:`read_provenance` reads)."""
    (Path(directory) / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def model_chamfer_rule(directory: str | Path) -> str:
    """The chamfer rule a model folder scores by (:data:`CHAMFER_RULE_KEY` of its ``config.json``; ``query``, the
    original rule, when it records none), read without loading the weights. A value that is no rule raises
    :class:`InputError` naming the file."""
    rule = read_provenance(directory).get(CHAMFER_RULE_KEY, "query")
    if rule not in CHAMFER_RULES:
        raise InputError(f"{Path(directory) / CONFIG_FILE}: {CHAMFER_RULE_KEY} must be one of {sorted(CHAMFER_RULES)}, "
                         f"got {rule!r}")
    return rule
