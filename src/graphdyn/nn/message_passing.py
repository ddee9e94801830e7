"""Interaction layer: the notebook's message passing, batched.

For every directed edge (i <- j) and every graph of the batch::

    m_ij = W2 act(W1 [h_j, h_i, e_ij] + b1) + b2     edge MLP on [sender, receiver] features
    M_i  = sum_{j in N(i)} m_ij                         sum aggregation
    out_i = phi_n([h_i, M_i])                           node MLP

The layer holds the two MLPs' parameters and runs the op :func:`graphdyn.ops.interaction`, whose
docstring gives the math as computed (the edge MLP's last layer moved after the sum, and composed
with the node MLP's first: the same function, re-associated) and its implementations: the plain
PyTorch reference (any width, activation, device; higher derivatives) and a C kernel for the
whole layer (CPU, hidden width 32, relu/silu/tanh). ``self.backend`` picks one
(:mod:`graphdyn.ops.backend`; ``"torch"`` for higher derivatives).

Shapes: ``h [B, N, F]``, ``edge_index [2, E]`` (row 0 receiver i, row 1 sender j), optional
``edge_attr [E, K]`` or ``[B, E, K]`` appended to the edge-MLP input -> ``out [B, N, F_out]``.
"""

from __future__ import annotations

import torch
from torch import nn

from graphdyn.nn.mlp import MLP
from graphdyn.ops.interaction import interaction


class InteractionLayer(nn.Module):
    """Edge MLP on [sender, receiver] (+ edge attributes), sum aggregation, node MLP."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 32, edge_attr_dim: int = 0, act: str = "relu"):
        super().__init__()
        self.act = act
        self.backend = "auto"  # graphdyn.ops.backend: "auto", "torch" or "native"
        self.edge_mlp = MLP([2 * in_channels + edge_attr_dim, hidden, hidden], act=act)
        self.node_mlp = MLP([in_channels + hidden, hidden, out_channels], act=act)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None = None) -> torch.Tensor:
        first, _, last = self.edge_mlp
        n1, _, n2 = self.node_mlp
        return interaction(h, edge_index, edge_attr, first.weight, first.bias, last.weight, last.bias, n1.weight, n1.bias,
                           n2.weight, n2.bias, self.act, backend=self.backend)
