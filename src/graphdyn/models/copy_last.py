"""Copy-an-observed-frame baseline (the ESTAG paper's PT-t, or PT-s / PT-m with ``frame``).

``x_hat = x(frame)``, by default the last observed frame. Parameter-free in effect: it holds
one registered scalar ``anchor`` (zero, entering the output as ``0 * anchor``) only so that a
generic trainer can build an optimiser and call ``backward``; its gradient is always 0, so
Adam (with or without weight decay on a zero value) never moves it or the prediction.

Shapes: ``batch.x [B, T, N, (C,) D] -> [B, N, (C,) D]`` (target ``position``).
"""

from __future__ import annotations

import torch
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.models.base import single_frame_symmetries, DataInfo, DynamicsModel, Params


class CopyLastParams(Params):
    frame: int = -1  # observed frame to copy (Python indexing): -1 PT-t, 0 PT-s


class CopyLast(DynamicsModel):
    """Predict an observed frame unchanged; see the module docstring."""

    Params = CopyLastParams
    target = "position"
    equivariant = True

    def __init__(self, info: DataInfo, params: CopyLastParams):
        super().__init__(info, params)
        self.symmetries = single_frame_symmetries(info, params.frame)
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, batch: Batch) -> torch.Tensor:
        return batch.x[:, self.params.frame] + 0.0 * self.anchor
