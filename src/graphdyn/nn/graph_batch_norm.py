"""BatchNorm for node features (Ioffe & Szegedy 2015), per feature channel or per node.

For features ``h [..., F]`` of many nodes, frames and samples::

    "channel":  h[..., f] <- gamma_f (h[..., f] - mu_f) / sqrt(var_f + eps) + beta_f
                mu_f, var_f over every axis but the channel: nodes, frames, samples
    "node":     h[n, ...] <- gamma_n (h[n, ...] - mu_n) / sqrt(var_n + eps) + beta_n
                mu_n, var_n over every axis but the node axis 0 (features included)

``"channel"`` ignores node indices, so a model using it can commute with node relabelling;
``"node"`` is the STGCN code's ``BatchNorm2d(num_nodes)`` (the ESTAG authors' STGCN and
non-equivariant STAG): one statistic and one affine pair per node index, for a fixed N.
Training mode couples the samples of a batch through the statistics; eval mode uses the
running estimates and treats every sample alone.

Shapes: ``"channel"``: ``h [..., F]``; ``"node"``: ``h [N, ...]`` (node axis first) -> same shape.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


class GraphBatchNorm(nn.Module):
    """BatchNorm over a channel axis (``"channel"``, size F) or the node axis (``"node"``, size N).

    Args:
        size: F for ``"channel"``, N for ``"node"``.
        over: which axis holds the normalised channels.
    """

    def __init__(self, size: int, over: Literal["channel", "node"] = "channel"):
        super().__init__()
        if over not in ("channel", "node"):
            raise ValueError(f"over must be 'channel' or 'node', got {over!r}")
        self.over = over
        self.norm = nn.BatchNorm1d(size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.over == "channel":
            return self.norm(h.reshape(-1, h.shape[-1])).view(h.shape)
        return self.norm(h.reshape(1, h.shape[0], -1)).view(h.shape)
