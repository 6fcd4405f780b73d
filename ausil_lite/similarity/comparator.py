"""The video comparator: a four-layer CNN that turns a raw similarity matrix into a refined map.

Layout as in the original (92,801 parameters): symmetric pad 1 -> conv 3x3 (32) + ReLU -> max-pool 2
-> symmetric pad 1 -> conv 3x3 (64) + ReLU -> max-pool 2 -> symmetric pad 1 -> conv 3x3 (128) + ReLU
-> conv 1x1 (1), output clipped to [-1, 1] (hard tanh). The map it returns is a quarter of the input
in each axis (two 2x2 pools, floor), so a query needs at least 4 segments.

Batches of different sizes are exact: with the true sizes given, each layer re-pads every map at its
own border (a symmetric pad of 1 repeats the edge value) and the pools keep only windows inside it, so
a padded batch gives the same numbers as the maps one by one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pad_edges(x: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None) -> torch.Tensor:
    """Symmetric pad of 1 on (B, C, H, W) at each map's own last row/column (valid size rows x cols)."""
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    batch = torch.arange(len(x), device=x.device)
    if cols is not None:
        padded[batch, :, :, cols + 1] = padded[batch, :, :, cols]
    if rows is not None:
        padded[batch, :, rows + 1, :] = padded[batch, :, rows, :]
    return padded


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def pooled_size(size: torch.Tensor | int) -> torch.Tensor | int:
    """Output rows/columns of the comparator for ``size`` input rows/columns (two floor halvings)."""
    return size // 2 // 2


class VideoComparator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 128, 3)
        self.fconv = nn.Conv2d(128, 1, 1)
        # channels-last (NHWC) convolutions run ~2.5x faster on the CPU (oneDNN); load_state_dict keeps it
        self.to(memory_format=torch.channels_last)

    def logits(
        self, sim: torch.Tensor, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The map before the hard tanh: (B, X, Y) -> (B, X // 4, Y // 4).

        ``rows``/``cols`` (B,) are the valid sizes of each matrix in a padded batch (None: all full).
        Training regularises these values towards [-1, 1] (the ViSiL similarity regularisation).
        """
        if sim.ndim != 3:
            raise ValueError(f"expected a (B, X, Y) batch of similarity matrices, got {tuple(sim.shape)}")
        x = sim.unsqueeze(1)
        for conv in (self.conv1, self.conv2):
            # ReLU after the pool equals ReLU before it (both monotone) and touches 4x fewer values
            x = F.relu(F.max_pool2d(conv(_channels_last(_pad_edges(x, rows, cols))), 2))
            rows = None if rows is None else rows // 2
            cols = None if cols is None else cols // 2
        x = F.relu(self.conv3(_channels_last(_pad_edges(x, rows, cols))))
        return self.fconv(x).squeeze(1)

    def forward(
        self, sim: torch.Tensor, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The refined similarity map in [-1, 1]: (B, X, Y) -> (B, X // 4, Y // 4)."""
        return self.logits(sim, rows, cols).clamp(-1.0, 1.0)
