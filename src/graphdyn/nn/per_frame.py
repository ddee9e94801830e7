"""Per-frame network with softmax time pooling: the ESTAG paper's "ST_" construction (Wu et al.,
NeurIPS 2023, the spatio-temporal baselines ST_GNN, ST_EGNN, ST_GMN).

A frame-to-frame graph network runs on each of the T observed frames independently (shared
weights, no message passing between frames); a learned time embedding tells the frames apart,
and a learned softmax-weighted average over time turns the T per-frame outputs into one
prediction::

    h_i(t) = W u_i(t) + b + E[t]         u_i(t) = a_i, or [a_i, vec X_i(t)] (coords_in_input)
    (h(t), x(t)) <- layer_l(h(t), x(t))  l = 0 .. L-1, the stack applied ``passes`` times,
                                         every frame on its own
    y_i(t) = x_i(t)                      coordinate layers (EGNN-like), or
           = decoder(h_i(t))             feature-only layers (plain GNN): absolute coordinates
    x_hat_i = sum_t softmax(theta)_t y_i(t)          theta in R^T, U(-1, 1) init (authors' code)

``E`` is a learned (T, H) table (``nn.Embedding``, N(0, 1) init). Coordinate layers are called
``layer(h, x, edge_index, edge_attr=e, node_dim=0) -> (h, x)``
(:class:`graphdyn.nn.egnn.EGNNLayer`), feature-only layers ``layer(h, edge_index, edge_attr=e,
node_dim=0) -> h`` (:class:`graphdyn.nn.gnn_layer.GNNLayer`); which one is given by whether a
``decoder`` is given. Internally every tensor is node-major, ``[N, B, T, ...]``: the frames are
just batch axes to the layers, gathers and scatters move contiguous blocks, and the layers run
their ops without moving axes. Edge attributes ``[E, K]`` are shared by all graphs and frames.

Shapes: ``x [B, T, N, D]`` or ``[B, T, N, C, D]``, ``node_attr [B, N, A]``, ``edge_index [2, E]``,
``edge_attr [E, K]`` or None -> ``x_hat`` like one frame of ``x``, ``[B, N, (C,) D]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from graphdyn.errors import GraphdynError
from graphdyn.nn.temporal_pooling import TemporalPooling


class PerFrameNetwork(nn.Module):
    """Embedding, per-frame layers, optional decoder, softmax time pooling; see the module docstring.

    Args:
        layers: the L per-frame layers (own weights each; shared by all frames).
        node_attr_dim: width A of the static node attributes.
        hidden: feature width H of the layers.
        T: observed frames.
        decoder: feature -> flattened node coordinates ``[..., H] -> [..., C*D]``; None when the
            layers update coordinates themselves.
        coords_in_input: the embedding reads ``[a_i, vec X_i(t)]`` (``node_coord_dim`` numbers
            of coordinates) instead of ``a_i`` alone.
        node_coord_dim: C*D, the flattened coordinates per node (with ``coords_in_input``).
        edge_attr_dim: width K of the edge attributes the layers take (0: none).
        passes: how many times the whole layer stack runs (weights shared between passes).
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        *,
        node_attr_dim: int,
        hidden: int,
        T: int,
        decoder: nn.Module | None = None,
        coords_in_input: bool = False,
        node_coord_dim: int = 0,
        edge_attr_dim: int = 0,
        passes: int = 1,
    ):
        super().__init__()
        if passes < 1:
            raise ValueError("passes must be at least 1")
        if coords_in_input and node_coord_dim < 1:
            raise ValueError("coords_in_input needs node_coord_dim, the flattened coordinates per node")
        self.T = T
        self.node_attr_dim = node_attr_dim
        self.coords_in_input = coords_in_input
        self.edge_attr_dim = edge_attr_dim
        self.passes = passes
        self.embed = nn.Linear(node_attr_dim + (node_coord_dim if coords_in_input else 0), hidden)
        self.time_embed = nn.Embedding(T, hidden)
        self.layers = nn.ModuleList(layers)
        self.decoder = decoder
        self.pool = TemporalPooling(T, "softmax")
        nn.init.uniform_(self.pool.weights, -1.0, 1.0)

    def forward(
        self,
        x: torch.Tensor,
        node_attr: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor | None = None,
        trace: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``x_hat [B, N, (C,) D]``; shapes in the module docstring.

        ``trace``, when a dict, receives the intermediates in the data layout ``[B, T, N, ...]``:
        ``layers.{l}.h`` (and ``layers.{l}.x`` for coordinate layers) after layer l of the first
        pass, ``pass.{p}.layers.{l}.h|x`` for later passes p >= 1, ``decoded`` (feature-only
        layers) and ``x_hat``.
        """
        if x.shape[1] != self.T:
            raise GraphdynError(f"this model was built for T={self.T} observed frames, got {x.shape[1]}", field="T")
        node_shape = x.shape[3:]
        xn = x.movedim(2, 0).contiguous()  # [N, B, T, (C,) D]
        a = node_attr.movedim(1, 0)  # [N, B, A]
        if self.coords_in_input:
            w = self.embed.weight
            A = self.node_attr_dim
            h = F.linear(xn.flatten(3), w[:, A:], self.embed.bias)  # [N, B, T, H]
            h += F.linear(a, w[:, :A]).unsqueeze(2)
            h += self.time_embed.weight
        else:
            # node-major before the Linear, so that h comes out contiguous
            h = self.embed(a).unsqueeze(2) + self.time_embed.weight  # [N, B, T, H]
        e = None
        if self.edge_attr_dim:
            if edge_attr is None:
                raise GraphdynError("this model was built for edge attributes and the batch has none", field="edge_attr")
            e = edge_attr.reshape(edge_attr.shape[-2], 1, 1, edge_attr.shape[-1])  # [E, 1, 1, K]: every graph and frame
        coord_layers = self.decoder is None
        for p in range(self.passes):
            for l, layer in enumerate(self.layers):
                if coord_layers:
                    h, xn = layer(h, xn, edge_index, edge_attr=e, node_dim=0)
                else:
                    h = layer(h, edge_index, edge_attr=e, node_dim=0)
                if trace is not None:
                    key = f"layers.{l}" if p == 0 else f"pass.{p}.layers.{l}"
                    trace[f"{key}.h"] = h.movedim(0, 2)
                    if coord_layers:
                        trace[f"{key}.x"] = xn.movedim(0, 2)
        if coord_layers:
            y = xn
        else:
            y = self.decoder(h).unflatten(-1, node_shape)  # [N, B, T, (C,) D]
            if trace is not None:
                trace["decoded"] = y.movedim(0, 2)
        x_hat = self.pool(y, dim=2).movedim(0, 1)  # [B, N, (C,) D]
        if trace is not None:
            trace["x_hat"] = x_hat
        return x_hat
