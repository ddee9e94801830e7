"""Pooling T frames of coordinates into one prediction (ESTAG's ETP, or a softmax average).

``"etp"`` (equivariant temporal pooling, Wu et al. NeurIPS 2023)::

    x_hat = x(T-1) + sum_{t=0}^{T-2} w_t (x(t) - x(T-1))       w in R^{T-1}, initialised to 0

so an untrained model predicts the last processed frame. ``"softmax"`` (the ST_* baselines and
ESTAG's ``--tempo False``)::

    x_hat = sum_t softmax(theta)_t x(t)                        theta in R^T, initialised to 0

Both weight sets are global scalars (shared by nodes, channels and graphs) summing to an
affine combination, so the pooling is E(n)-equivariant.

Shapes: ``x [..., T, ...]`` with the time axis ``dim`` -> ``x_hat`` without that axis.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


class TemporalPooling(nn.Module):
    """Learned affine pooling over the time axis; see the module docstring."""

    def __init__(self, T: int, mode: Literal["etp", "softmax"] = "etp"):
        super().__init__()
        if mode not in ("etp", "softmax"):
            raise ValueError(f"pooling mode must be 'etp' or 'softmax', got {mode!r}")
        self.mode = mode
        self.weights = nn.Parameter(torch.zeros(T - 1 if mode == "etp" else T))

    def forward(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Pool ``x`` over its time axis ``dim``."""
        xt = x.movedim(dim, -1)  # [..., T]
        if self.mode == "etp":
            last = xt[..., -1]
            return last + (xt[..., :-1] - last.unsqueeze(-1)) @ self.weights
        return xt @ torch.softmax(self.weights, dim=0)
