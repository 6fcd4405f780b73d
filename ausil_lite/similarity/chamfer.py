"""Chamfer similarity: a video-level score from a similarity map, and the plain descriptor baseline.

Chamfer similarity of an (X, Y) map is the mean over query rows of the best match along the
candidate columns: every query segment looks for its counterpart anywhere in the candidate, so the
score ignores time order and is asymmetric (it asks how much of the query is found in the candidate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ausil_lite.descriptors.backbone import resolve_device
from ausil_lite.similarity.matrix import query_similarity_batch


def chamfer_similarity(
    sim: torch.Tensor, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None
) -> torch.Tensor:
    """Max over the candidate axis (last), mean over the query axis: (..., X, Y) -> (...).

    ``rows`` and ``cols`` (shape (...) integer) are the valid sizes of each map in a padded batch;
    entries beyond them are ignored. A map with no valid row or column has no defined similarity
    and raises rather than returning NaN.
    """
    if rows is not None and bool((rows < 1).any()) or cols is not None and bool((cols < 1).any()):
        raise ValueError("chamfer similarity of an empty map (a valid size is 0)")
    if cols is not None:
        col_valid = torch.arange(sim.shape[-1], device=sim.device) < cols[..., None, None]
        sim = torch.where(col_valid, sim, torch.finfo(sim.dtype).min)
    best = sim.max(dim=-1).values
    if rows is None:
        return best.mean(dim=-1)
    row_valid = torch.arange(sim.shape[-2], device=sim.device) < rows[..., None]
    return torch.where(row_valid, best, 0).sum(dim=-1) / rows.to(best.dtype)


CHAMFER_RULES = {
    "query": "how much of the query the candidate holds: the original AuSiL's chamfer similarity",
    "symmetric": "the mean of that and how much of the candidate the query holds (ViSiL's symmetric chamfer): a "
                 "copy cut short is found whole in the query, and an excerpt of the query embedded in other audio "
                 "still finds all of the query",
    "either": "the larger of the two directions: how much of the shorter video the longer one holds, so a copy cut "
              "short and an excerpt embedded in other audio both score as whole copies, each undiluted by the "
              "direction that cannot find it",
}
"""How a refined map becomes one video-level score (:func:`directed_chamfer`); a model records its rule."""


def check_chamfer_rule(rule: str) -> str:
    """``rule`` when it is a key of :data:`CHAMFER_RULES`; otherwise a ``ValueError`` naming the rules."""
    if rule not in CHAMFER_RULES:
        raise ValueError(f"unknown chamfer rule {rule!r}; choose one of {sorted(CHAMFER_RULES)}")
    return rule


def directed_chamfer(
    sim: torch.Tensor, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None, rule: str = "query"
) -> torch.Tensor:
    """Chamfer similarity of a (..., X, Y) map by one of :data:`CHAMFER_RULES`.

    ``query`` averages each query row's best column; ``symmetric`` also each candidate column's best row, and
    takes the mean of the two; ``either`` takes the larger. A crop of the query scores low the first way (most
    query rows find nothing) and high the second, so a model whose rule is ``symmetric`` or ``either`` ranks partial
    copies with whole ones; an excerpt of the query embedded in other audio is the other way round.
    """
    forward = chamfer_similarity(sim, rows, cols)
    if check_chamfer_rule(rule) == "query":
        return forward
    backward = chamfer_similarity(sim.transpose(-1, -2), cols, rows)
    return (forward + backward) / 2 if rule == "symmetric" else torch.maximum(forward, backward)


class ChamferScorer:
    """The untrained reference: chamfer similarity of L2-normalised descriptors (cosine, [-1, 1]).

    ``embed`` (optional) maps the normalised (N, D) descriptors before the similarity matrix, and
    its output is used as is, e.g. a trained model's ``embed`` (whitening + attention) for the
    ablation "AuSiL-lite without its comparator" (renormalising would cancel the attention
    weights, which scale whole segment vectors). Shares the scorer
    interface of :class:`ausil_lite.similarity.model.AuSiL` (``prepare`` a video once, then
    ``score_many``), so the similarity command and notebooks treat both alike.
    """

    def __init__(
        self,
        device: str | torch.device | None = None,
        embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
        name: str = "chamfer",
    ):
        self.device = resolve_device(device)
        self.embed = embed
        self.name = name

    @torch.inference_mode()
    def prepare(self, descriptors: np.ndarray, role: str = "database") -> torch.Tensor:
        """Unit-norm (N, D) tensor (then ``embed``-ed) on the scorer's device; ``role`` is for interface parity."""
        x = torch.as_tensor(np.asarray(descriptors, dtype=np.float32), device=self.device)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"expected (N, D) descriptors with N >= 1, got {tuple(x.shape)}")
        x = F.normalize(x, dim=-1)
        return x if self.embed is None else self.embed(x)

    @torch.inference_mode()
    def score_many(self, query: torch.Tensor, candidates: Sequence[torch.Tensor]) -> np.ndarray:
        """Chamfer similarity of one prepared query with each prepared candidate: (len(candidates),)."""
        sim, lengths = query_similarity_batch(query, candidates)
        rows = torch.full_like(lengths, len(query))
        return chamfer_similarity(sim, rows, lengths).cpu().numpy()
