"""ST_GNN: a plain message-passing GNN on every observed frame, softmax-pooled over time; the
non-equivariant spatio-temporal baseline of the ESTAG paper (Wu et al., NeurIPS 2023, spec
section 5), with the GNN layer of Satorras et al. (ICML 2021).

Coordinates are ordinary input features. For each frame t independently (shared weights, no
message passing between frames), with the dataset's edge attributes ``e_ij``::

    h_i(t) = W [a_i, vec X_i(t)] + b + E[t]                 learned time table E
    m_ij   = act(W2 act(W1 [h_i, h_j, e_ij] + b1) + b2)      message
    h_i    <- h_i + phi_h([h_i, sum_j m_ij])                 node update, L layers
    y_i(t) = W4 act(W3 h_i(t) + b3) + b4                     decoder: absolute coordinates
    x_hat_i = sum_t softmax(theta)_t y_i(t)

``vec X_i(t)`` is the node's D coordinates, or its C*D coordinates flattened (AdK: 4 charges
+ 12 coordinates in). Activation SiLU, LeakyReLU(0.2) for multi-channel data (our choice,
following the authors' multi-channel models; the spec does not state ST_GNN's). The layers are
:class:`graphdyn.nn.gnn_layer.GNNLayer`, run node-major by
:class:`graphdyn.nn.per_frame.PerFrameNetwork`. Only node relabelling is a symmetry: absolute
positions enter and leave through Linear layers.

Shapes: ``batch.x [B, T, N, D]`` or ``[B, T, N, C, D]``, ``batch.node_attr [B, N, A]``,
``batch.edge_attr [E, K]`` -> positions ``[B, N, (C,) D]`` (target ``position``).
"""

from __future__ import annotations

import math

from graphdyn.models.base import DataInfo
from graphdyn.models.st_egnn import PerFrameModel, PerFrameParams
from graphdyn.nn.gnn_layer import GNNLayer
from graphdyn.nn.mlp import MLP
from graphdyn.nn.per_frame import PerFrameNetwork


class STGNNParams(PerFrameParams):
    """ST_GNN's parameters: those of every per-frame model (hidden, layers, act, use_edge_attr)."""


class STGNN(PerFrameModel):
    """GNN per frame on [attributes, coordinates] with a time embedding, decoder, softmax time pooling.

    ``run``'s trace: ``layers.{l}.h``, ``decoded`` and ``x_hat``.
    """

    Params = STGNNParams
    target = "position"
    equivariant = False
    symmetries = ("permutation",)
    layouts = ("single", "multi")

    def __init__(self, info: DataInfo, params: STGNNParams):
        super().__init__(info, params)
        act = params.act or ("leaky_relu" if info.channels is not None else "silu")
        edge_dim = info.edge_attr_dim if params.use_edge_attr else 0
        coord_dim = math.prod(info.node_shape)
        H = params.hidden
        self.net = PerFrameNetwork(
            [GNNLayer(H, edge_attr_dim=edge_dim, act=act) for _ in range(params.layers)],
            node_attr_dim=info.node_attr_dim,
            hidden=H,
            T=info.T,
            decoder=MLP([H, H, coord_dim], act=act),
            coords_in_input=True,
            node_coord_dim=coord_dim,
            edge_attr_dim=edge_dim,
        )
