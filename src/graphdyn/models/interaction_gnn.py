"""The teaching notebook's GNN, generalised: one or more interaction layers on node states.

Node input features are the last observed frame: ``[x_i, v_i]`` (flattened over channels and
dimensions) plus the static node attributes when ``use_node_attr``. With
``relative_positions`` the absolute positions are dropped from the node features and the
relative vector ``x_i - x_j`` is given to the edge MLP instead (translation invariant, the
physically natural choice; off by default to match the notebook).

Target ``velocity_change`` reproduces the notebook's first model (``dv``), ``acceleration``
its second. The model is not rotation-equivariant.

Shapes: ``batch.x, batch.v [B, T, N, ...] -> [B, N, ...]``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.models.base import DataInfo, DynamicsModel, Params
from graphdyn.nn.message_passing import InteractionLayer


class InteractionGNNParams(Params):
    hidden: int = 32
    layers: int = 1
    target: Literal["velocity_change", "acceleration", "displacement", "position"] = "acceleration"
    act: str = "relu"
    use_node_attr: bool = False
    relative_positions: bool = False


class InteractionGNN(DynamicsModel):
    """Edge MLP + sum aggregation + node MLP (the notebook's ``SpringGNN``), batched."""

    Params = InteractionGNNParams
    needs_velocities = True
    last_frame_only = True

    def __init__(self, info: DataInfo, params: InteractionGNNParams):
        super().__init__(info, params)
        self.target = params.target
        # absolute positions and velocities are features: only node relabelling is respected,
        # and a shift of the frame too when positions enter as differences (a vector target)
        shift_free = params.relative_positions and params.target != "position"
        self.symmetries = ("translation", "permutation") if shift_free else ("permutation",)
        width = 1 if info.channels is None else info.channels
        self.coord_dim = width * info.dim
        in_dim = self.coord_dim * (1 if params.relative_positions else 2)
        if params.use_node_attr:
            in_dim += info.node_attr_dim
        edge_dim = self.coord_dim if params.relative_positions else 0
        dims = [in_dim] + [params.hidden] * (params.layers - 1) + [self.coord_dim]
        self.layers = nn.ModuleList(
            InteractionLayer(a, b, hidden=params.hidden, edge_attr_dim=edge_dim, act=params.act)
            for a, b in zip(dims[:-1], dims[1:])
        )
        self.act = nn.ReLU()

    def forward(self, batch: Batch) -> torch.Tensor:
        B, N = batch.batch_size, batch.n_nodes
        x = batch.x[:, -1].reshape(B, N, self.coord_dim)
        v = batch.v[:, -1].reshape(B, N, self.coord_dim)
        feats = [v] if self.params.relative_positions else [x, v]
        if self.params.use_node_attr:
            feats.append(batch.node_attr)
        h = torch.cat(feats, dim=-1)
        edge_attr = None
        if self.params.relative_positions:
            i, j = batch.edge_index
            edge_attr = x[:, i] - x[:, j]  # [B, E, C*D]
        for k, layer in enumerate(self.layers):
            h = layer(h, batch.edge_index, edge_attr)
            if k < len(self.layers) - 1:
                h = self.act(h)
        return h.reshape(B, N, *self.info.node_shape)
