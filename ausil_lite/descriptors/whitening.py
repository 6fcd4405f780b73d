"""PCA whitening of MAC descriptors: fitted once on training descriptors, then fixed.

As in the original: L2-normalise, subtract the mean, project onto the eigenvectors scaled by
1/sqrt(eigenvalue), L2-normalise again. An ``nn.Module`` with buffers (not parameters), so it moves
to the model's device and is saved with it, but training never changes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EPSILON = 1e-5
"""Added to eigenvalues before the inverse square root, so near-null directions are not blown up. A higher floor
(1e-4, 1e-3) flattens the low-variance directions that mixed copies are told apart by: measured worse on DAVR-dev
for every triplet draw tried (book/settings_tried.md)."""


class PCAWhitening(nn.Module):
    def __init__(self, mean: torch.Tensor, projection: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("projection", projection.float())

    @classmethod
    def fit(cls, descriptors: np.ndarray, n_components: int | None = None) -> "PCAWhitening":
        """Fit on (N, D) descriptors; keeps all D dimensions unless ``n_components`` says fewer."""
        x = torch.as_tensor(np.asarray(descriptors), dtype=torch.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"need at least two descriptors of shape (N, D) to fit whitening, got {tuple(x.shape)}")
        x = F.normalize(x, dim=1)
        mean = x.mean(dim=0)
        centred = x - mean
        cov = centred.T @ centred / (len(x) - 1)
        eigval, eigvec = torch.linalg.eigh(cov)
        order = torch.argsort(eigval, descending=True)[: n_components or x.shape[1]]
        projection = eigvec[:, order] / torch.sqrt(eigval[order].clamp(min=0) + EPSILON)
        return cls(mean, projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whiten (..., D) descriptors to (..., n_components), unit-norm."""
        x = F.normalize(x.float(), dim=-1)
        return F.normalize((x - self.mean) @ self.projection, dim=-1)

    def transform(self, descriptors: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.as_tensor(descriptors, device=self.mean.device)).cpu().numpy()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        np.savez(path, mean=self.mean.cpu().numpy(), projection=self.projection.cpu().numpy())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PCAWhitening":
        path = Path(path)
        try:
            with np.load(path) as data:
                return cls(torch.from_numpy(data["mean"]), torch.from_numpy(data["projection"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a whitening file ({exc})") from exc
