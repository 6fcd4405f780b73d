"""Attention weighting of segment descriptors by a learned context vector, as in the original.

Each descriptor x (unit-norm) gets the weight w = (x . u) / 2 + 0.5; the context vector u is used as
stored, not normalised, so training can scale how strongly weights spread.
"""

from __future__ import annotations

import torch
from torch import nn


class AttentionWeighting(nn.Module):
    def __init__(self, dim: int = 2528, init_std: float = 0.01):
        super().__init__()
        # a near-zero start gives every segment w ~= 0.5: training begins from plain whitened descriptors
        self.context = nn.Parameter(torch.randn(dim) * init_std)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per-segment weights (...,) for descriptors (..., dim)."""
        return (x @ self.context) / 2 + 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights(x).unsqueeze(-1) * x
