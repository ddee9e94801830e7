"""EqMotion baseline (Xu et al., "EqMotion: Equivariant Multi-agent Motion Prediction with
Invariant Interaction Reasoning", CVPR 2023), as the ESTAG paper ran it, with its axes right.

From T observed frames of N agents, predict the positions one stride after the last::

    x~_i(t) = x_i(t) - c,   c = mean over agents and frames            (one centroid per sample)
    X_i     = DCT_t(x~_i)                                              [T, D]: T coefficients per agent
    G_i     = W_in (X_i - Xbar) + Xbar                                 C geometric vectors; W_in: T -> C, Xbar
                                                                       the mean over agents and coefficients
    h_i     = W_h [a_i, a_i, ..., a_i] + b_h                           the attributes tiled T times
    p       = InteractionReasoning(h, G)                               K category probabilities per pair
    (h, G)  = EqMotionLayer_l(h, G, p)     for l = 0 .. L-1
    y_i     = IDCT(W_out (G_i - Gbar) + Gbar)                          W_out: C -> 1 (one predicted frame;
                                                                       the IDCT of length 1 is the identity)
    x_hat_i = x_i(T-1) + y_i

on the fully connected graph of every sample (all ordered pairs ``i != j``; the dataset's
edges and edge attributes are ignored). Layers: :mod:`graphdyn.nn.eqmotion`; the DCT:
:mod:`graphdyn.nn.dct`.

Defaults are the ESTAG authors' configuration (spec section 5): H = 16, L = 2, C = 32
coordinate channels, K = 2 categories, softmax temperature 1, SiLU; no velocities (the node
input is the attribute tiled T times). EqMotion's own MD17 runs used H = 64 and L = 4, with
speeds and velocity angles as node input.

Two bugs of the ESTAG authors' EqMotion run are not reproduced (spec section 7, item 10):
the time-major ``(T, B*N, D)`` coordinates are *permuted* to ``[B, N, T, D]`` (the authors
reshaped them, mixing nodes and frames), and the centroid ``c`` is removed once and never added
back: ``y`` is a translation-invariant displacement added to ``x(T-1)`` (the authors added
``c`` to ``y`` and then also ``x(T-1)``, counting the absolute position twice).

Shapes: ``batch.x [B, T, N, D]``, ``batch.node_attr [B, N, A]`` -> positions ``[B, N, D]``
(target ``position``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DEFAULT_SYMMETRIES, DataInfo, DynamicsModel, Params
from graphdyn.nn.dct import dct, idct
from graphdyn.nn.eqmotion import EqMotionLayer, InteractionReasoning, channel_mix


class EqMotionParams(Params):
    hidden: int = Field(16, ge=1)  # H, invariant pattern features
    channels: int = Field(32, ge=1)  # C, geometric vectors per agent
    layers: int = Field(2, ge=1)  # L
    categories: int = Field(2, ge=1)  # K, inferred interaction types
    tau: float = Field(1.0, gt=0)  # softmax temperature of the interaction reasoning
    eps: float = Field(1e-4, gt=0)  # equivariant non-linearity's guard against |k| = 0
    act: Literal["silu", "leaky_relu", "relu", "tanh", "gelu"] = "silu"


class EqMotion(DynamicsModel):
    """EqMotion on the fully connected graph; see the module docstring."""

    Params = EqMotionParams
    target = "position"
    equivariant = True
    layouts = ("single",)
    # not "frame_translation": the centred channel vectors G_i - Gbar see a per-frame shift
    symmetries = DEFAULT_SYMMETRIES

    def __init__(self, info: DataInfo, params: EqMotionParams):
        super().__init__(info, params)
        H, C, T = params.hidden, params.channels, info.T
        self.embed = nn.Linear(T * info.node_attr_dim, H)
        self.lift = nn.Linear(T, C, bias=False)
        self.reasoning = InteractionReasoning(H, C, params.categories, act=params.act, tau=params.tau)
        self.layers = nn.ModuleList(
            EqMotionLayer(H, C, params.categories, act=params.act, eps=params.eps) for _ in range(params.layers)
        )
        self.head = nn.Linear(C, 1, bias=False)

    def invariant_features(self, batch: Batch) -> dict[str, tuple[torch.Tensor, str]]:
        """The inferred interaction categories on the batch's edges: invariant to rotations,
        reflections, node relabelling and even a different translation of every frame (they see
        the initial G only through differences G_i - G_j, and a per-frame shift moves every
        agent's G alike); :func:`graphdyn.testing.assert_equivariant` checks them. The final
        pattern features are not listed: after a layer, G_i - Gbar carries a per-frame shift
        into the distances."""
        trace: dict[str, torch.Tensor] = {}
        self.run(batch.x, batch.node_attr, trace=trace)
        i, j = batch.edge_index
        return {"categories": (trace["categories"][:, i, j], "edge")}

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.run(batch.x, batch.node_attr)

    def run(self, x: torch.Tensor, node_attr: torch.Tensor, trace: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Predict ``[B, N, D]`` from ``x [B, T, N, D]`` and ``node_attr [B, N, A]``.

        ``trace``, when a dict, receives the layout conversions and intermediates:
        ``series`` ``[B, N, T, D]`` (each node's frames in time order), ``centroid`` ``[B, D]``,
        ``dct`` ``[B, N, T, D]`` (coefficients of the centred series), ``node_input``
        ``[B, N, T*A]``, ``categories`` ``[B, N, N, K]``, ``h`` ``[B, N, H]``,
        ``displacement`` ``[B, N, D]``.
        """
        if x.dim() != 4:
            raise GraphdynError(f"EqMotion takes x of shape [B, T, N, D], got {tuple(x.shape)}", field="x")
        B, T, N, _ = x.shape
        if T != self.info.T:
            raise GraphdynError(f"EqMotion was built for T={self.info.T} observed frames, got {T}", field="T")
        if node_attr.shape[-1] != self.info.node_attr_dim:
            raise GraphdynError(
                f"EqMotion was built for {self.info.node_attr_dim} node attributes, got {node_attr.shape[-1]}",
                field="node_attr",
            )
        series = x.transpose(1, 2)  # [B, N, T, D]: a permutation of axes, never a reshape
        centroid = series.mean(dim=(1, 2), keepdim=True)  # [B, 1, 1, D]
        coeff = dct(series - centroid, dim=2)  # [B, N, T, D]
        node_input = node_attr.expand(B, N, -1).repeat(1, 1, T)  # [a, a, ..., a]
        h = self.embed(node_input)
        mean = coeff.mean(dim=(1, 2), keepdim=True)
        g = channel_mix(self.lift.weight, coeff - mean) + mean  # [B, N, C, D]
        p = self.reasoning(h, g)
        for layer in self.layers:
            h, g = layer(h, g, p)
        mean = g.mean(dim=(1, 2), keepdim=True)
        y = idct(channel_mix(self.head.weight, g - mean) + mean, dim=2)[:, :, 0]  # [B, N, D]
        if trace is not None:
            trace.update(
                series=series, centroid=centroid[:, 0, 0], dct=coeff, node_input=node_input,
                categories=p, h=h, displacement=y,
            )
        return x[:, -1] + y
