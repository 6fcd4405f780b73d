"""Segment-to-segment similarity matrices, one pair or a padded batch of pairs.

A video is a sequence of unit-norm segment descriptors (N, D); the similarity matrix of a query Q
(X segments) and a candidate P (Y segments) is S = Q P^T, shape (X, Y), rows indexing query time
(1-s steps) and columns candidate time. Videos of different lengths are batched by zero-padding to
the longest; their true lengths travel alongside, so the comparator and chamfer can mask the padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def similarity_matrix(query: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """S = Q P^T for (..., X, D) queries and (..., Y, D) candidates: (..., X, Y).

    Leading dimensions broadcast, so one query (X, D) against a padded batch (B, Y, D) gives
    (B, X, Y) without copying the query.
    """
    if query.shape[-1] != candidate.shape[-1]:
        raise ValueError(f"descriptor sizes differ: query {query.shape[-1]}, candidate {candidate.shape[-1]}")
    return torch.matmul(query, candidate.transpose(-1, -2))


def pad_sequences(sequences: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (N_i, D) sequences into a zero-padded (B, max N_i, D) batch and their lengths (B,).

    Lengths stay on the same device as the batch, as the masks built from them must.
    """
    if not sequences:
        raise ValueError("cannot pad an empty list of sequences")
    lengths = torch.tensor([len(s) for s in sequences], device=sequences[0].device)
    return torch.nn.utils.rnn.pad_sequence(list(sequences), batch_first=True), lengths


def query_similarity_batch(query: torch.Tensor, candidates: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarity matrices of one (X, D) query with each (Y_i, D) candidate, zero-padded: (B, X, max Y_i).

    One small matrix product per candidate, written into the padded batch: cheaper than padding the
    (Y_i, D) descriptors themselves, which would copy B x max Y_i x D floats for X x Y_i results.
    Returns the batch and the candidate lengths (B,).
    """
    if not candidates:
        raise ValueError("no candidates to compare with")
    lengths = torch.tensor([len(c) for c in candidates], device=query.device)
    out = query.new_zeros(len(candidates), len(query), int(lengths.max()))
    for i, candidate in enumerate(candidates):
        torch.matmul(query, candidate.T, out=out[i, :, : len(candidate)])
    return out, lengths
