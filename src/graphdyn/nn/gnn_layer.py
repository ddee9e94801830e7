"""Plain (non-equivariant) message-passing layer with a residual node update: EGNN's feature
path without coordinates (Satorras et al. 2021, the "GNN" baseline of their and the ESTAG
paper's tables).

For every directed edge (i <- j) of a graph::

    m_ij = act(W2 act(W1 [h_i, h_j, e_ij] + b1) + b2)      message (edge MLP, final act)
    h_i <- h_i + phi_h([h_i, sum_{j in N(i)} m_ij])        node update (residual, sum aggregation)

``phi_h`` = Linear(2H -> H), act, Linear(H -> H). ``e_ij`` (edge attributes) is optional. No
distances, no coordinates: whatever geometry the network sees comes in through ``h``.

Shapes (``...`` any batch axes; the node axis is ``node_dim``, by default the axis just before
the feature axis)::

    h          [..., N, H]
    edge_index [2, E]       row 0 receiver i, row 1 sender j, shared by every batch entry
    edge_attr  broadcastable to [..., E, K]  (e.g. [E, 1, 1, K] node-major, shared by all frames)
    -> h [..., N, H]

Node-major (``node_dim=0``, ``h [N, B, T, H]``, ``fused``) the per-edge part runs as EGNN's
chunked edge op :func:`graphdyn.nn.egnn_fused.egnn_edges` with the geometry switched off (all
coordinates 0, so its radial term is 0, with a constant zero weight) and the node update as
:func:`graphdyn.nn.node_update_fused.node_update`: the same numbers as the plain autograd path
below, several times faster on CPU, where ``index_add_`` over the node axis is slow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graphdyn.nn import egnn_fused, node_update_fused
from graphdyn.nn.egnn_fused import ACTS, EdgeConfig, egnn_edges
from graphdyn.nn.mlp import MLP
from graphdyn.nn.node_update_fused import node_update


class GNNLayer(nn.Module):
    """One message-passing layer; see the module docstring for the update rule and shapes.

    Args:
        hidden: node feature and message width H.
        edge_attr_dim: width K of edge attributes appended to the message input (0: none).
        act: activation name (see :func:`graphdyn.nn.mlp.activation`).
        fused: node-major, run the per-edge part and the node update as chunked autograd ops
            (same numbers, first-order only); False always uses plain autograd (e.g. for
            higher derivatives).
    """

    def __init__(self, hidden: int, *, edge_attr_dim: int = 0, act: str = "silu", fused: bool = True):
        super().__init__()
        self.hidden = hidden
        self.edge_attr_dim = edge_attr_dim
        self.act = act
        self.fused = fused
        self.message = MLP([2 * hidden + edge_attr_dim, hidden, hidden], act=act, final_act=True)
        self.node = MLP([2 * hidden, hidden, hidden], act=act)

    def forward(
        self,
        h: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor | None = None,
        node_dim: int | None = None,
    ) -> torch.Tensor:
        """Updated ``h``; shapes in the module docstring. ``node_dim`` defaults to ``h.dim() - 2``."""
        nd = h.dim() - 2 if node_dim is None else node_dim % h.dim()
        n_nodes = h.shape[nd]
        i, j = edge_index[0], edge_index[1]
        H = self.hidden
        lin = self.message[0]
        w = lin.weight
        if self.edge_attr_dim and edge_attr is None:
            raise ValueError(f"this layer expects edge attributes of width {self.edge_attr_dim}")
        first, act, last = self.node
        if self.fused and nd == 0 and self.act in ACTS and (edge_attr is None or edge_attr.dim() == h.dim()):
            slope = getattr(act, "negative_slope", 0.2)
            q = F.linear(edge_attr, w[:, 2 * H :]) if self.edge_attr_dim else None
            cfg = EdgeConfig(act=self.act, slope=slope, update_coords=False, chunk_rows=egnn_fused.CHUNK_ROWS,
                             store_bytes=egnn_fused.STORE_BYTES)
            agg, _ = egnn_edges(h, w[:, : 2 * H], lin.bias, h.new_zeros(h.shape[:-1] + (1,)), q, h.new_zeros(H, 1),
                                self.message[2].weight, self.message[2].bias, None, None, None, edge_index, cfg)
            cfg = EdgeConfig(act=self.act, slope=slope, chunk_rows=node_update_fused.CHUNK_ROWS)
            return node_update(h, agg, None, first.weight[:, :H], first.weight[:, H:], first.bias, last.weight, last.bias, cfg)
        # The first Linear on [h_i, h_j, e]: its column blocks act on the N node rows before the
        # gather and on e before it is broadcast over batch axes (the same sum, far fewer products).
        pre = F.linear(h, w[:, :H], lin.bias).index_select(nd, i)
        pre += F.linear(h, w[:, H : 2 * H]).index_select(nd, j)
        if self.edge_attr_dim:
            pre += F.linear(edge_attr, w[:, 2 * H :])
        m = self.message[3](self.message[2](self.message[1](pre)))  # [..., E, H]
        shape = list(m.shape)
        shape[nd] = n_nodes
        agg = m.new_zeros(shape).index_add_(nd, i, m)  # [..., N, H]
        pre_n = F.linear(h, first.weight[:, :H], first.bias) + F.linear(agg, first.weight[:, H:])
        return h + last(act(pre_n))
