"""Interaction layer: the notebook's message passing, batched.

For every directed edge (i <- j) and every graph of the batch::

    m_ij = W2 relu(W1 [h_j, h_i, e_ij] + b1) + b2     edge MLP on [sender, receiver] features
    M_i  = sum_{j in N(i)} m_ij                          sum aggregation (index_add_)
    out_i = phi_n([h_i, M_i])                            node MLP

The edge MLP's last layer is affine, so it commutes with the sum: ``M_i = W2 (sum_j
relu(...)) + deg_i b2``. The layer aggregates the hidden activations first and applies
``W2`` once per node instead of once per edge: the same function, with the widest matrix
product moved from ``E`` rows to ``N`` rows.

Shapes: ``h [B, N, F]``, ``edge_index [2, E]`` (row 0 receiver i, row 1 sender j), optional
``edge_attr [E, K]`` or ``[B, E, K]`` appended to the edge-MLP input -> ``out [B, N, F_out]``.
"""

from __future__ import annotations

import torch
from torch import nn

from graphdyn.nn.mlp import MLP
from graphdyn.nn.scatter import in_degree, scatter_sum


class InteractionLayer(nn.Module):
    """Edge MLP on [sender, receiver] (+ edge attributes), sum aggregation, node MLP."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 32, edge_attr_dim: int = 0, act: str = "relu"):
        super().__init__()
        self.edge_mlp = MLP([2 * in_channels + edge_attr_dim, hidden, hidden], act=act)
        self.node_mlp = MLP([in_channels + hidden, hidden, out_channels], act=act)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None = None) -> torch.Tensor:
        i, j = edge_index
        N = h.shape[1]
        parts = [h.index_select(1, j), h.index_select(1, i)]  # index_select: a much cheaper backward than h[:, j]
        if edge_attr is not None:  # [E, K] shared by the batch, or [B, E, K]
            parts.append(edge_attr if edge_attr.dim() == 3 else edge_attr.expand(h.shape[0], *edge_attr.shape))
        first, act, last = self.edge_mlp
        hidden = act(first(torch.cat(parts, dim=-1)))  # [B, E, hidden]
        summed = scatter_sum(hidden, i, N, dim=1)  # [B, N, hidden]
        aggregated = nn.functional.linear(summed, last.weight) + in_degree(i, N).to(h.dtype)[:, None] * last.bias
        return self.node_mlp(torch.cat([h, aggregated], dim=-1))
