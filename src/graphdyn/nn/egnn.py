"""E(n)-equivariant graph convolution (EGNN, Satorras, Hoogeboom & Welling, ICML 2021).

For every directed edge (i <- j) of a graph, with node features ``h`` and coordinates ``x``::

    d_ij  = x_i - x_j
    r_ij  = ||d_ij||^2                          (single-channel, R = 1)
          | vec(D_ij D_ij^T) / ||D_ij D_ij^T||  (multi-channel: D_ij = X_i - X_j is C x 3, R = C*C)
    m_ij  = act(W2 act(W1 [h_i, h_j, r_ij, e_ij] + b1) + b2)      message (edge MLP, final act)
    x_i  <- x_i + w * AGG_x_j clamp(u_ij * phi_x(m_ij))           coordinate update (old h)
    h_i  <- h_i + phi_h([h_i, AGG_h_j m_ij, a_i])                  node update (residual)

``u_ij`` is ``d_ij`` or, with ``unit_vectors``, ``d_ij / ||d_ij||``; ``AGG`` is a sum or a mean
over the incoming edges of i (a node without incoming edges receives 0). ``phi_x`` ends in a
bias-free Linear whose output is one scalar per edge (single-channel) or one per channel
(multi-channel: ``X_i += w * AGG_j diag(phi_x(m_ij)) D_ij``); its weight may be initialised
Xavier-uniform with a small gain so that a fresh layer barely moves the coordinates.
``e_ij`` (edge attributes) and ``a_i`` (extra node inputs, e.g. EDFT amplitudes) are optional.

Shapes (``...`` any batch axes, e.g. ``B, T``; the node axis is ``node_dim``, by default the
axis just before the feature axis)::

    h          [..., N, H]
    x          [..., N, D]  or  [..., N, C, D]
    edge_index [2, E]       row 0 receiver i, row 1 sender j, shared by every batch entry
    edge_attr  broadcastable to [..., E, K_e]  (e.g. [B, 1, E, K] shared by all frames)
    node_attr  broadcastable to [..., N, K_n]
    -> (h [..., N, H], x like the input)

The same layer also runs node-major, ``h [N, ..., H]`` with ``node_dim=0``: gathers and
scatters then move contiguous blocks, which is several times faster on CPU. Node-major, the
per-edge part and the node update run as chunked autograd ops (``fused``, on by default; see
:mod:`graphdyn.nn.egnn_fused`) that bound the memory a training step needs for edge-sized intermediates.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from graphdyn.nn import egnn_fused, node_update_fused
from graphdyn.nn.egnn_fused import ACTS, EdgeConfig, egnn_edges
from graphdyn.nn.mlp import MLP
from graphdyn.nn.node_update_fused import node_update
from graphdyn.nn.scatter import in_degree


class EGNNLayer(nn.Module):
    """One EGNN layer; see the module docstring for the update rule and shapes.

    Args:
        hidden: node feature and message width H.
        channels: None for one D-vector per node, C for C D-vectors per node.
        edge_attr_dim: width K_e of edge attributes appended to the message input (0: none).
        node_attr_dim: width K_n of extra node inputs appended to the node-MLP input (0: none).
        act: activation name (see :func:`graphdyn.nn.mlp.activation`).
        message_agg: aggregation of messages for the node update, ``"sum"`` or ``"mean"``.
        coord_agg: aggregation of coordinate updates, ``"mean"`` or ``"sum"``.
        unit_vectors: divide ``d_ij`` by its length (single-channel only).
        clamp: clamp every component of each per-edge coordinate update to ``[-clamp, clamp]``
            (None: no clamp).
        coord_weight: factor ``w`` of the coordinate update.
        coord_gain: Xavier-uniform gain of the last coordinate Linear (None: PyTorch default init).
        update_coords: False leaves x unchanged (an invariant GNN layer).
        fused: in the node-major layout (``node_dim=0``), run the per-edge part as the chunked
            autograd op :func:`graphdyn.nn.egnn_fused.egnn_edges` (same numbers, several times
            faster and far less memory in training); False always uses plain autograd.
    """

    def __init__(
        self,
        hidden: int,
        *,
        channels: int | None = None,
        edge_attr_dim: int = 0,
        node_attr_dim: int = 0,
        act: str = "silu",
        message_agg: Literal["sum", "mean"] = "sum",
        coord_agg: Literal["sum", "mean"] = "mean",
        unit_vectors: bool = False,
        clamp: float | None = None,
        coord_weight: float = 1.0,
        coord_gain: float | None = 0.001,
        update_coords: bool = True,
        fused: bool = True,
    ):
        super().__init__()
        if message_agg not in ("sum", "mean") or coord_agg not in ("sum", "mean"):
            raise ValueError("aggregations must be 'sum' or 'mean'")
        if unit_vectors and channels is not None:
            raise ValueError("unit_vectors applies to single-channel coordinates only")
        self.hidden = hidden
        self.channels = channels
        self.radial_dim = 1 if channels is None else channels * channels
        self.edge_attr_dim = edge_attr_dim
        self.node_attr_dim = node_attr_dim
        self.message_agg = message_agg
        self.coord_agg = coord_agg
        self.unit_vectors = unit_vectors
        self.clamp = clamp
        self.coord_weight = coord_weight
        self.update_coords = update_coords
        self.act = act
        self.fused = fused
        self.message = MLP([2 * hidden + self.radial_dim + edge_attr_dim, hidden, hidden], act=act, final_act=True)
        self.node = MLP([2 * hidden + node_attr_dim, hidden, hidden], act=act)
        if update_coords:
            self.coord = MLP([hidden, hidden, 1 if channels is None else channels], act=act, final_bias=False)
            if coord_gain is not None:
                nn.init.xavier_uniform_(self.coord[-1].weight, gain=coord_gain)

    def forward(
        self,
        h: torch.Tensor,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor | None = None,
        node_attr: torch.Tensor | None = None,
        node_dim: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Update ``(h, x)``; shapes in the module docstring. ``node_dim`` defaults to ``h.dim() - 2``."""
        nd = h.dim() - 2 if node_dim is None else node_dim % h.dim()
        n_nodes = h.shape[nd]
        i, j = edge_index[0], edge_index[1]
        H = self.hidden
        if self.fused and nd == 0 and self.act in ACTS and (edge_attr is None or edge_attr.dim() == h.dim()):
            return self._forward_fused(h, x, edge_index, edge_attr, node_attr, n_nodes)

        d = x.index_select(nd, i) - x.index_select(nd, j)  # [..., E, (C,) D]
        if self.channels is None:
            radial = (d * d).sum(-1, keepdim=True)  # [..., E, 1]
        else:
            gram = d @ d.transpose(-1, -2)  # [..., E, C, C]
            gram = gram.flatten(-2)
            radial = gram / gram.norm(dim=-1, keepdim=True).clamp_min(1e-12)

        # The first message Linear acts on [h_i, h_j, r, e]; applying its column blocks to the
        # N node rows before gathering, and to e before it is broadcast over frames, is the same
        # sum with far fewer multiply-adds than concatenating per-edge inputs.
        # In-place adds below are safe for autograd (an add's backward needs no inputs) and save
        # allocating several [..., E, H] tensors per layer.
        lin = self.message[0]
        w = lin.weight
        pre = F.linear(h, w[:, :H], lin.bias).index_select(nd, i)
        pre += F.linear(h, w[:, H : 2 * H]).index_select(nd, j)
        if self.channels is None:
            pre.addcmul_(radial, w[:, 2 * H])  # a width-1 Linear is a broadcast multiply
        else:
            pre += F.linear(radial, w[:, 2 * H : 2 * H + self.radial_dim])
        if self.edge_attr_dim:
            if edge_attr is None:
                raise ValueError(f"this layer expects edge attributes of width {self.edge_attr_dim}")
            pre += F.linear(edge_attr, w[:, 2 * H + self.radial_dim :])
        m = self.message[3](self.message[2](self.message[1](pre)))  # [..., E, H]

        deg = None
        if self.update_coords:
            phi = self.coord(m)  # [..., E, 1] or [..., E, C]
            if self.channels is None:
                u = d / d.norm(dim=-1, keepdim=True) if self.unit_vectors else d
                trans = u * phi
            else:
                trans = d * phi.unsqueeze(-1)
            if self.clamp is not None:
                trans = trans.clamp(-self.clamp, self.clamp)
            agg_x = _sum_at(trans, i, n_nodes, nd)
            if self.coord_agg == "mean":
                deg = _inverse_degree(i, n_nodes, nd, agg_x)
                agg_x = agg_x * deg
            x = x + self.coord_weight * agg_x if self.coord_weight != 1.0 else x + agg_x

        agg_h = _sum_at(m, i, n_nodes, nd)  # [..., N, H]
        return self._node_update(h, agg_h, node_attr, i, n_nodes, nd), x

    def _forward_fused(self, h, x, edge_index, edge_attr, node_attr, n_nodes):
        """Node-major forward with the per-edge part in one chunked autograd op."""
        H, R = self.hidden, self.radial_dim
        lin = self.message[0]
        w = lin.weight
        Q = None
        if self.edge_attr_dim:
            if edge_attr is None:
                raise ValueError(f"this layer expects edge attributes of width {self.edge_attr_dim}")
            Q = F.linear(edge_attr, w[:, 2 * H + R :])
        coord = (self.coord[0].weight, self.coord[0].bias, self.coord[2].weight) if self.update_coords else (None,) * 3
        slope = getattr(self.message[1], "negative_slope", 0.2)
        cfg = EdgeConfig(act=self.act, slope=slope, channels=self.channels, unit_vectors=self.unit_vectors,
                         clamp=self.clamp, update_coords=self.update_coords,
                         chunk_rows=egnn_fused.CHUNK_ROWS, store_bytes=egnn_fused.STORE_BYTES)
        agg_h, agg_x = egnn_edges(h, w[:, : 2 * H], lin.bias, x, Q, w[:, 2 * H : 2 * H + R], self.message[2].weight,
                                  self.message[2].bias, *coord, edge_index, cfg)
        i = edge_index[0]
        if self.update_coords:
            if self.coord_agg == "mean":
                agg_x = agg_x * _inverse_degree(i, n_nodes, 0, agg_x)
            x = x + self.coord_weight * agg_x if self.coord_weight != 1.0 else x + agg_x
        return self._node_update(h, agg_h, node_attr, i, n_nodes, 0, cfg), x

    def _node_update(self, h, agg_h, node_attr, i, n_nodes, nd, cfg: EdgeConfig | None = None):
        """h + phi_h([h, AGG m, a]) from the summed messages (``cfg``: as one chunked op)."""
        H = self.hidden
        if self.message_agg == "mean":
            agg_h = agg_h * _inverse_degree(i, n_nodes, nd, agg_h)
        lin = self.node[0]
        w = lin.weight
        if cfg is not None and (node_attr is None or node_attr.dim() == h.dim()):
            q = None
            if self.node_attr_dim:
                if node_attr is None:
                    raise ValueError(f"this layer expects node attributes of width {self.node_attr_dim}")
                q = F.linear(node_attr, w[:, 2 * H :])
            cfg = replace(cfg, chunk_rows=node_update_fused.CHUNK_ROWS)
            return node_update(h, agg_h, q, w[:, :H], w[:, H : 2 * H], lin.bias, self.node[2].weight, self.node[2].bias, cfg)
        pre = F.linear(h, w[:, :H], lin.bias) + F.linear(agg_h, w[:, H : 2 * H])
        if self.node_attr_dim:
            if node_attr is None:
                raise ValueError(f"this layer expects node attributes of width {self.node_attr_dim}")
            pre = pre + F.linear(node_attr, w[:, 2 * H :])
        return h + self.node[2](self.node[1](pre))


def _sum_at(src: torch.Tensor, index: torch.Tensor, n_nodes: int, dim: int) -> torch.Tensor:
    """Sum ``src`` rows along ``dim`` into ``n_nodes`` slots named by ``index`` (index_add_)."""
    shape = list(src.shape)
    shape[dim] = n_nodes
    return src.new_zeros(shape).index_add_(dim, index, src)


def _inverse_degree(index: torch.Tensor, n_nodes: int, dim: int, like: torch.Tensor) -> torch.Tensor:
    """1 / max(in-degree, 1) shaped to broadcast against ``like`` along ``dim``."""
    inv = 1.0 / in_degree(index, n_nodes).clamp_min(1).to(like.dtype)
    view = [1] * like.dim()
    view[dim] = n_nodes
    return inv.view(view)
