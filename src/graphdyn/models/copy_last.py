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
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DEFAULT_SYMMETRIES, DataInfo, DynamicsModel, Params


class CopyLastParams(Params):
    frame: int = -1  # observed frame to copy (Python indexing): -1 PT-t, 0 PT-s


class CopyLast(DynamicsModel):
    """Predict an observed frame unchanged; see the module docstring."""

    Params = CopyLastParams
    target = "position"
    equivariant = True

    def __init__(self, info: DataInfo, params: CopyLastParams):
        super().__init__(info, params)
        if not -info.T <= params.frame < info.T:
            raise GraphdynError(f"frame {params.frame} is outside the {info.T} observed frames", field="model.params.frame")
        if params.frame % info.T == info.T - 1:
            # reading only the last frame, the output moves with that frame's own shift
            self.symmetries = (*DEFAULT_SYMMETRIES, "frame_translation")
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, batch: Batch) -> torch.Tensor:
        return batch.x[:, self.params.frame] + 0.0 * self.anchor
