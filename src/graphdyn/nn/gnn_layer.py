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

The per-edge part runs as EGNN's edge op :func:`graphdyn.ops.egnn_edges` with the geometry
switched off (all coordinates 0, so its radial term is 0, with a constant zero weight) and the
node update as :func:`graphdyn.ops.node_update`; both take node-major tensors, so in another
layout the layer moves the node axis to the front and back. ``self.backend`` (set by
:func:`graphdyn.ops.configure`) picks their implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graphdyn.nn.mlp import MLP
from graphdyn.ops.egnn_edges import egnn_edges, node_major
from graphdyn.ops.node_update import node_update


class GNNLayer(nn.Module):
    """One message-passing layer; see the module docstring for the update rule and shapes.

    Args:
        hidden: node feature and message width H.
        edge_attr_dim: width K of edge attributes appended to the message input (0: none).
        act: activation name (see :func:`graphdyn.nn.mlp.activation`).

    ``backend`` (attribute, ``"auto"`` until :func:`graphdyn.ops.configure` sets it): the
    implementation of the ops (:mod:`graphdyn.ops.backend`).
    """

    def __init__(self, hidden: int, *, edge_attr_dim: int = 0, act: str = "silu"):
        super().__init__()
        self.hidden = hidden
        self.edge_attr_dim = edge_attr_dim
        self.act = act
        self.backend = "auto"
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
        if self.edge_attr_dim and edge_attr is None:
            raise ValueError(f"this layer expects edge attributes of width {self.edge_attr_dim}")
        H = self.hidden
        w = self.message[0].weight
        q = None
        if self.edge_attr_dim:
            # the first Linear's edge-attribute block acts on e before it is broadcast over batch axes
            q = node_major(F.linear(edge_attr, w[:, 2 * H :]), h.dim(), nd)  # edges first, as the op takes them
        hn = h.movedim(nd, 0)
        agg, _ = egnn_edges(hn, w[:, : 2 * H], self.message[0].bias, hn.new_zeros(hn.shape[:-1] + (1,)), q, w.new_zeros(H, 1),
                            self.message[2].weight, self.message[2].bias, None, None, None, edge_index, act=self.act,
                            backend=self.backend)
        first, _, last = self.node
        out = node_update(hn, agg, None, first.weight[:, :H], first.weight[:, H:], first.bias, last.weight, last.bias,
                          act=self.act, backend=self.backend)
        return out.movedim(0, nd)
