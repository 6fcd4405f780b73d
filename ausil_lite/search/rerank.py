"""Stage 2: rescore stage-1 candidates on their full segment sequences.

Both rerankers take stage-2 embeddings, the whitened segment descriptors the index stores (the
model's own whitening when a model is used), and give a video-level score plus the segment
similarity matrix the aligned spans are read from:

- :class:`ChamferReranker` (no model): chamfer similarity of the whitened segments.
- :class:`ModelReranker`: the trained AuSiL network (attention weighting, video comparator, chamfer
  of its output map); database videos shorter than 10 segments are repeated as the model expects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ausil_lite.errors import InputError
from ausil_lite.similarity import AuSiL, ChamferScorer, repeat_short
from ausil_lite.similarity.model import MIN_QUERY_SEGMENTS


class ChamferReranker:
    name = "chamfer"

    def __init__(self) -> None:
        self._scorer = ChamferScorer("cpu")

    def query(self, whitened: np.ndarray) -> torch.Tensor:
        return F.normalize(torch.as_tensor(whitened, dtype=torch.float32), dim=-1)

    candidate = query

    def scores(self, query: torch.Tensor, candidates: Sequence[torch.Tensor]) -> np.ndarray:
        return self._scorer.score_many(query, candidates)

    def matrix(self, query: torch.Tensor, whitened: np.ndarray) -> np.ndarray:
        """Segment similarities (X, Y) of the query with one candidate, for alignment."""
        return (query @ self.candidate(whitened).T).numpy()


class ModelReranker:
    name = "ausil"

    def __init__(self, model: AuSiL):
        self.model = model.to("cpu").eval()

    @torch.inference_mode()
    def query(self, whitened: np.ndarray) -> torch.Tensor:
        if len(whitened) < MIN_QUERY_SEGMENTS:
            raise InputError(
                f"the query has {len(whitened)} segments; the AuSiL model needs at least {MIN_QUERY_SEGMENTS} "
                f"({MIN_QUERY_SEGMENTS + 1} s of audio): query without --model for chamfer reranking"
            )
        return self.model.attention(torch.as_tensor(whitened, dtype=torch.float32))

    @torch.inference_mode()
    def candidate(self, whitened: np.ndarray, repeat: bool = True) -> torch.Tensor:
        x = torch.as_tensor(whitened, dtype=torch.float32)
        return self.model.attention(repeat_short(x) if repeat else x)

    def scores(self, query: torch.Tensor, candidates: Sequence[torch.Tensor]) -> np.ndarray:
        return self.model.score_many(query, candidates)

    @torch.inference_mode()
    def matrix(self, query: torch.Tensor, whitened: np.ndarray) -> np.ndarray:
        return (query @ self.candidate(whitened, repeat=False).T).numpy()
