"""ST_EGNN: EGNN (Satorras et al., ICML 2021) on every observed frame, softmax-pooled over time;
the spatio-temporal EGNN baseline of the ESTAG paper (Wu et al., NeurIPS 2023, spec section 5).

For each frame t independently (shared weights, no message passing between frames), with
``d_ij = x_i(t) - x_j(t)`` (not unit-normalised) and the dataset's edge attributes ``e_ij``::

    h_i(t) = W a_i + b + E[t]                                    learned time table E
    m_ij   = act(W2 act(W1 [h_i, h_j, r_ij, e_ij] + b1) + b2)    r_ij = ||d_ij||^2
    x_i    <- x_i + w mean_j clamp(d_ij phi_x(m_ij), -100, 100)  coordinate update (old h)
    h_i    <- h_i + phi_h([h_i, sum_j m_ij])                     node update
    x_hat_i = sum_t softmax(theta)_t x_i^(L)(t)                  absolute coordinates, no residual

Single-channel (MD17, motion): SiLU, clamp +-100, coordinate weight w = 1. Multi-channel (AdK,
C D-vectors per node): LeakyReLU(0.2), radial = the normalised C x C Gram matrix of
``D_ij = X_i - X_j``, one coordinate weight per channel (``X_i += w mean_j diag(phi_x) D_ij``),
w = 3.0, no clamp. These are the authors' settings; ``clamp``/``coord_weight``/``act`` override
them. The layers are :class:`graphdyn.nn.egnn.EGNNLayer`, run node-major by
:class:`graphdyn.nn.per_frame.PerFrameNetwork` (node-major). Every step is E(n)-equivariant per
frame (the clamp acts per Cartesian component, so exactly only while inactive, as in EGNN) and
the pooling is an affine combination, so the output is E(n) x S_N-equivariant; a different shift
per frame moves it by the weighted mean of the shifts, not with the last frame.

Shapes: ``batch.x [B, T, N, D]`` or ``[B, T, N, C, D]``, ``batch.node_attr [B, N, A]``,
``batch.edge_attr [E, K]`` -> positions ``[B, N, (C,) D]`` (target ``position``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field

from graphdyn.data.windows import Batch
from graphdyn.models.base import DEFAULT_SYMMETRIES, DataInfo, DynamicsModel, Params
from graphdyn.nn.egnn import EGNNLayer
from graphdyn.nn.per_frame import PerFrameNetwork


class PerFrameParams(Params):
    """Parameters shared by the models that run a :class:`~graphdyn.nn.per_frame.PerFrameNetwork`
    (ST_EGNN, ST_GNN, ST_GMN)."""

    hidden: int = Field(16, ge=1)
    layers: int = Field(2, ge=1)
    act: Literal["silu", "leaky_relu", "relu", "tanh", "gelu"] | None = None  # None: silu, or leaky_relu multi-channel
    use_edge_attr: bool = True  # the dataset's edge attributes in the messages (when it has any)


class PerFrameModel(DynamicsModel):
    """Base of the models whose whole forward pass is ``self.net``, a
    :class:`~graphdyn.nn.per_frame.PerFrameNetwork`; subclasses build it."""

    net: PerFrameNetwork

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.net(batch.x, batch.node_attr, batch.edge_index, batch.edge_attr)

    def run(self, x, node_attr, edge_index, edge_attr=None, trace=None) -> torch.Tensor:
        """Predict from tensors; ``trace`` receives the network's trace, named in the class
        docstring (see :meth:`graphdyn.nn.per_frame.PerFrameNetwork.forward`)."""
        return self.net(x, node_attr, edge_index, edge_attr, trace=trace)


def egnn_per_frame_network(
    info: DataInfo, params: PerFrameParams, act: str, clamp: float | None, coord_weight: float, passes: int = 1
) -> PerFrameNetwork:
    """``params.layers`` :class:`~graphdyn.nn.egnn.EGNNLayer` (messages summed, coordinate
    updates averaged) of width ``params.hidden``, run per frame ``passes`` times by a
    :class:`~graphdyn.nn.per_frame.PerFrameNetwork`; the network of ST_EGNN and ST_GMN."""
    edge_dim = info.edge_attr_dim if params.use_edge_attr else 0
    layer = dict(
        channels=info.channels,
        edge_attr_dim=edge_dim,
        act=act,
        message_agg="sum",
        coord_agg="mean",
        clamp=clamp,
        coord_weight=coord_weight,
    )
    return PerFrameNetwork(
        [EGNNLayer(params.hidden, **layer) for _ in range(params.layers)],
        node_attr_dim=info.node_attr_dim,
        hidden=params.hidden,
        T=info.T,
        edge_attr_dim=edge_dim,
        passes=passes,
    )


class STEGNNParams(PerFrameParams):
    clamp: float | None = Field(None, gt=0)  # None: 100 single-channel, none multi-channel; inf: no clamp
    coord_weight: float | None = None  # None: 1.0 single-channel, 3.0 multi-channel


class STEGNN(PerFrameModel):
    """EGNN per frame with a time embedding, softmax time pooling; see the module docstring.

    ``run``'s trace: ``layers.{l}.h|x`` and ``x_hat``.
    """

    Params = STEGNNParams
    target = "position"
    equivariant = True
    symmetries = DEFAULT_SYMMETRIES
    layouts = ("single", "multi")

    def __init__(self, info: DataInfo, params: STEGNNParams):
        super().__init__(info, params)
        multi = info.channels is not None
        clamp = params.clamp if params.clamp is not None else (None if multi else 100.0)
        self.net = egnn_per_frame_network(
            info,
            params,
            act=params.act or ("leaky_relu" if multi else "silu"),
            clamp=None if clamp is None or math.isinf(clamp) else clamp,
            coord_weight=params.coord_weight if params.coord_weight is not None else (3.0 if multi else 1.0),
        )
