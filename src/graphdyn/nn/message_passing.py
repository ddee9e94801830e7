"""Interaction layer: the notebook's message passing, batched.

For every directed edge (i <- j) and every graph of the batch::

    m_ij = W2 relu(W1 [h_j, h_i, e_ij] + b1) + b2     edge MLP on [sender, receiver] features
    M_i  = sum_{j in N(i)} m_ij                          sum aggregation (index_add_)
    out_i = phi_n([h_i, M_i])                            node MLP

The edge MLP's last layer is affine, so it commutes with the sum: ``M_i = W2 (sum_j
relu(...)) + deg_i b2``. The layer aggregates the hidden activations first and applies
``W2`` once per node instead of once per edge: the same function, with the widest matrix
product moved from ``E`` rows to ``N`` rows. And the node MLP's first layer is linear in
``M_i`` too: with ``Wn = [Wh, Wm]``, ``Wn [h_i, M_i] = Wh h_i + (Wm W2) S_i + deg_i Wm b2``. The
``hidden x hidden`` product ``Wm W2`` is formed once per call, which removes one of the two
``[N, hidden] x [hidden, hidden]`` products per graph (forward and backward); with the node MLP's
input laid out as ``[h_i, S_i, deg_i]`` its first layer is one matrix product with the weight
``[Wh, Wm W2, Wm b2]``. Both are the same function and the same parameters as the notebook's
layer, re-associated.

With ``native`` (the default) the whole layer -- edge MLP, sum, node MLP, forward and backward --
runs as the C kernel :func:`graphdyn.nn.interaction_native.interaction_layer` where it can (the
same function, graph by graph, with no edge- or hidden-sized tensor kept; hidden width 32 is
compiled). Otherwise the PyTorch code below runs. The kernel is differentiable once: use
``native=False`` for higher derivatives.

Shapes: ``h [B, N, F]``, ``edge_index [2, E]`` (row 0 receiver i, row 1 sender j), optional
``edge_attr [E, K]`` or ``[B, E, K]`` appended to the edge-MLP input -> ``out [B, N, F_out]``.
"""

from __future__ import annotations

import torch
from torch import nn

from graphdyn.nn.interaction_native import interaction_layer
from graphdyn.nn.mlp import MLP
from graphdyn.nn.scatter import in_degree, scatter_sum


class InteractionLayer(nn.Module):
    """Edge MLP on [sender, receiver] (+ edge attributes), sum aggregation, node MLP."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 32, edge_attr_dim: int = 0, act: str = "relu",
                 native: bool = True):
        super().__init__()
        self.act = act
        self.native = native
        self.edge_mlp = MLP([2 * in_channels + edge_attr_dim, hidden, hidden], act=act)
        self.node_mlp = MLP([in_channels + hidden, hidden, out_channels], act=act)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None = None) -> torch.Tensor:
        first, _, last = self.edge_mlp
        n1, act, n2 = self.node_mlp
        if self.native:  # the kernel composes the weights below itself
            out = interaction_layer(h, edge_index, edge_attr, first.weight, first.bias, last.weight, last.bias, n1.weight,
                                    n1.bias, n2.weight, n2.bias, self.act)
            if out is not None:
                return out
        # the node MLP's first layer on [h_i, S_i, deg_i]: on [h_i, W2 S_i + deg_i b2], composed
        i, N, F = edge_index[0], h.shape[1], h.shape[-1]
        w_h, w_m = n1.weight[:, :F], n1.weight[:, F:]
        w1 = torch.cat([w_h, w_m @ last.weight, (w_m @ last.bias)[:, None]], dim=1)
        deg = in_degree(i, N).to(h.dtype)[:, None].expand(h.shape[0], N, 1)
        x = torch.cat([h, self._edge_sum(h, edge_index, edge_attr), deg], dim=-1)
        return n2(act(nn.functional.linear(x, w1, n1.bias)))

    def _edge_sum(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None) -> torch.Tensor:
        """``sum_j act(W1 [h_j, h_i, e_ij] + b1)`` per receiver ``i`` in PyTorch: ``[B, N, hidden]``."""
        i, j = edge_index
        N = h.shape[1]
        parts = [h.index_select(1, j), h.index_select(1, i)]  # index_select: a much cheaper backward than h[:, j]
        if edge_attr is not None:  # [E, K] shared by the batch, or [B, E, K]
            parts.append(edge_attr if edge_attr.dim() == 3 else edge_attr.expand(h.shape[0], *edge_attr.shape))
        first, act, _ = self.edge_mlp
        hidden = act(first(torch.cat(parts, dim=-1)))  # [B, E, hidden]
        return scatter_sum(hidden, i, N, dim=1)  # [B, N, hidden]
