"""Frame-to-frame EGNN baseline (Satorras et al. 2021): EGNN on one observed frame.

The ESTAG paper's EGNN-s/m/t: a stack of :class:`graphdyn.nn.egnn.EGNNLayer` applied to a
single observed frame (``frame=-1``, the last, is EGNN-t; 0 is EGNN-s; ``T // 2 - 1`` EGNN-m),
with the node attributes embedded as features and the dataset's edge attributes in the
messages. The coordinates leaving the last layer are the prediction::

    h = W a + b;   (h, x) <- EGNN_l(h, x)  for l = 0 .. L-1;   x_hat = x  (= x(frame) + updates)

No time pooling, no velocities. Multi-channel data use the multi-channel layer (Gram radial,
per-channel coordinate weights).

Shapes: ``batch.x [B, T, N, (C,) D] -> [B, N, (C,) D]`` (target ``position``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import single_frame_symmetries, DataInfo, DynamicsModel, Params
from graphdyn.nn.egnn import EGNNLayer


class EGNNParams(Params):
    hidden: int = Field(16, ge=1)
    layers: int = Field(2, ge=1)
    act: Literal["silu", "leaky_relu", "relu", "tanh", "gelu"] | None = None  # None: silu, or leaky_relu multi-channel
    frame: int = -1  # observed frame fed to the network (Python indexing)
    use_edge_attr: bool = True
    unit_vectors: bool = False
    coord_agg: Literal["mean", "sum"] = "mean"
    clamp: float | None = Field(None, gt=0)
    coord_weight: float = 1.0


class EGNN(DynamicsModel):
    """EGNN on one observed frame; see the module docstring."""

    Params = EGNNParams
    target = "position"
    equivariant = True

    def __init__(self, info: DataInfo, params: EGNNParams):
        super().__init__(info, params)
        self.symmetries = single_frame_symmetries(info, params.frame)
        if params.unit_vectors and info.channels is not None:
            raise GraphdynError("unit_vectors applies to single-channel data only", field="model.params.unit_vectors")
        act = params.act or ("leaky_relu" if info.channels is not None else "silu")
        self.edge_dim = info.edge_attr_dim if params.use_edge_attr else 0
        self.embed = nn.Linear(info.node_attr_dim, params.hidden)
        self.layers = nn.ModuleList(
            EGNNLayer(
                params.hidden,
                channels=info.channels,
                edge_attr_dim=self.edge_dim,
                act=act,
                coord_agg=params.coord_agg,
                unit_vectors=params.unit_vectors,
                clamp=params.clamp,
                coord_weight=params.coord_weight,
            )
            for _ in range(params.layers)
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        x = batch.x[:, self.params.frame].movedim(1, 0)  # [N, B, (C,) D], node-major for fast gathers
        h = self.embed(batch.node_attr).movedim(1, 0)  # [N, B, H]
        e = None
        if self.edge_dim:
            if batch.edge_attr is None:
                raise GraphdynError("this EGNN was built for edge attributes and the batch has none", field="edge_attr")
            e = batch.edge_attr.reshape(batch.edge_attr.shape[-2], 1, batch.edge_attr.shape[-1])  # [E, 1, K]
        for layer in self.layers:
            h, x = layer(h, x, batch.edge_index, edge_attr=e, node_dim=0)
        return x.movedim(0, 1)
