"""Interaction layer: the notebook's message passing, batched.

For every directed edge (i <- j) and every graph of the batch::

    m_ij = phi_e([h_j, h_i])                 edge MLP on [sender, receiver] features
    M_i  = sum_{j in N(i)} m_ij              sum aggregation (index_add_)
    out_i = phi_n([h_i, M_i])                node MLP

Shapes: ``h [B, N, F]``, ``edge_index [2, E]`` (row 0 receiver i, row 1 sender j), optional
``edge_attr [E, K]`` or ``[B, E, K]`` appended to the edge-MLP input -> ``out [B, N, F_out]``.
"""

from __future__ import annotations

import torch
from torch import nn

from graphdyn.nn.mlp import MLP
from graphdyn.nn.scatter import scatter_sum


class InteractionLayer(nn.Module):
    """Edge MLP on [sender, receiver] (+ edge attributes), sum aggregation, node MLP."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 32, edge_attr_dim: int = 0, act: str = "relu"):
        super().__init__()
        self.edge_mlp = MLP([2 * in_channels + edge_attr_dim, hidden, hidden], act=act)
        self.node_mlp = MLP([in_channels + hidden, hidden, out_channels], act=act)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None = None) -> torch.Tensor:
        i, j = edge_index
        parts = [h.index_select(1, j), h.index_select(1, i)]  # index_select: a much cheaper backward than h[:, j]
        if edge_attr is not None:  # [E, K] shared by the batch, or [B, E, K]
            parts.append(edge_attr if edge_attr.dim() == 3 else edge_attr.expand(h.shape[0], *edge_attr.shape))
        messages = self.edge_mlp(torch.cat(parts, dim=-1))  # [B, E, hidden]
        aggregated = scatter_sum(messages, i, h.shape[1], dim=1)  # [B, N, hidden]
        return self.node_mlp(torch.cat([h, aggregated], dim=-1))
