"""AGL-STAN: adaptive-graph-learning spatio-temporal attention network, the ESTAG paper's baseline.

Non-equivariant, and built for one graph size: a learned graph over node indices, frames as
tokens of all N nodes' features. Per node and frame the input is ``u(t) = [a, x(t)]``
(attributes, then the C*D coordinates flattened); with ``F = C*D`` (3, or 12 for AdK)::

    E     learned node embeddings [N, 16]  (normal init, shared by the layers)
    for l in 0 .. L-1:                                              L = 2
        h(t) = AGC_l(h(t), E)              per frame, adaptive graph conv, -> F per node
        z(t) = [h_1(t), ..., h_N(t)]       one token of width N*F per frame
        z    = z + PE                      sinusoidal over time, after the first layer only
        z    = TSA_l(z)                    pre-LN Transformer layer over the T frames
    z     = LayerNorm(z)
    x_hat = Conv2d_{T -> 1, 5x5}(z viewed as [T, N, F])             ABSOLUTE coordinates

AGC is :class:`graphdyn.nn.adaptive_graph.AdaptiveGraphConv` (supports ``I, S, 2S^2 - I`` of
``S = softmax(ReLU(Linear(E E^T)))``), TSA :class:`graphdyn.nn.time_transformer.PreNormTransformerLayer`
(6 heads, FFN 32), PE :func:`graphdyn.nn.positional_encoding.sinusoidal_encoding`. The last
Conv2d takes the T frames as input channels and slides a 5x5 window over (node index,
feature), padding 2. Sizes as the authors' code (spec section 5).

Choices where the spec is open:

* Heads when ``N*F`` is not divisible by 6 (aspirin: 39): every head is ``floor(N*F / 6)``
  wide and the attention's inner width ``6 * floor(N*F / 6)`` may be below ``N*F`` (the
  projections map to it and back), as the authors' attention does; no padding or
  projection of the tokens.
* The spec's "reshape-not-permute" bug (section 7 item 10) is not reproduced: the frames
  stay ``[B, T, N, F]`` throughout, and a frame's token is its N nodes' features in node
  order (:func:`frames_to_tokens`, :func:`tokens_to_frames`).
* Fixed N: the embeddings, the adjacency Linear and the 5x5 kernel read node indices, so the
  model respects no symmetry (``symmetries = ()``); other graph sizes are an error.

Shapes: ``batch.x [B, T, N, D]`` or ``[B, T, N, C, D]``, ``batch.node_attr [B, N, A]``
-> positions ``[B, N, D]`` or ``[B, N, C, D]`` (target ``position``).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo, DynamicsModel, Params
from graphdyn.nn.adaptive_graph import AdaptiveGraphConv
from graphdyn.nn.node_features import frame_features
from graphdyn.nn.positional_encoding import sinusoidal_encoding
from graphdyn.nn.time_transformer import PreNormTransformerLayer


def frames_to_tokens(h: torch.Tensor) -> torch.Tensor:
    """``h [B, T, N, F] -> z [B, T, N*F]``: token ``z[b, t]`` is ``h[b, t, 0], ..., h[b, t, N-1]``."""
    return h.flatten(-2)


def tokens_to_frames(z: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """Inverse of :func:`frames_to_tokens`: ``z [B, T, N*F] -> h [B, T, N, F]``."""
    return z.unflatten(-1, (n_nodes, -1))


class AGLSTANParams(Params):
    embed_dim: int = Field(16, ge=1)  # node embedding width d_e
    order: int = Field(3, ge=1)  # Chebyshev supports
    layers: int = Field(2, ge=1)  # (graph conv, Transformer layer) pairs
    heads: int = Field(6, ge=1)
    ffn: int = Field(32, ge=1)
    kernel: int = Field(5, ge=1)  # Conv2d kernel (odd), padded to keep N and F


class AGLSTAN(DynamicsModel):
    """AGL-STAN, single- or multi-channel by ``info.channels``; see the module docstring."""

    Params = AGLSTANParams
    target = "position"
    equivariant = False
    layouts = ("single", "multi")

    def __init__(self, info: DataInfo, params: AGLSTANParams):
        super().__init__(info, params)
        p = params
        if p.kernel % 2 == 0:
            raise GraphdynError(f"kernel must be odd to keep the node and feature sizes, got {p.kernel}", field="model.params.kernel")
        self.symmetries = ()  # learned per-index graph and a convolution over node indices
        N, T = info.n_nodes, info.T
        F = 1
        for s in info.node_shape:
            F *= s
        self.width = F
        self.node_embeddings = nn.Parameter(torch.randn(N, p.embed_dim))
        self.gconvs = nn.ModuleList(
            AdaptiveGraphConv(N, info.node_attr_dim + F if l == 0 else F, F, p.order) for l in range(p.layers)
        )
        self.encoders = nn.ModuleList(PreNormTransformerLayer(N * F, p.heads, p.ffn) for _ in range(p.layers))
        self.norm = nn.LayerNorm(N * F, eps=1e-6)
        self.head = nn.Conv2d(T, 1, p.kernel, padding=p.kernel // 2)
        self.register_buffer("pos_enc", sinusoidal_encoding(T, N * F), persistent=False)

    def forward(self, batch: Batch) -> torch.Tensor:
        x = batch.x
        B, T, N = x.shape[:3]
        if T != self.info.T or N != self.info.n_nodes:
            raise GraphdynError(
                f"AGL-STAN was built for T={self.info.T} frames of {self.info.n_nodes} nodes, got T={T} and {N} nodes",
                field="n_nodes" if T == self.info.T else "T",
            )
        h = frame_features(x, batch.node_attr)  # [B, T, N, A + F]
        z = None
        for l, (gconv, encoder) in enumerate(zip(self.gconvs, self.encoders)):
            h = gconv(h, self.node_embeddings)  # [B, T, N, F], each frame alone
            z = frames_to_tokens(h)  # [B, T, N*F]
            if l == 0:
                z = z + self.pos_enc.to(z.dtype)
            z = encoder(z)  # attention across the T frames of each sample
            h = tokens_to_frames(z, N)
        h = tokens_to_frames(self.norm(z), N)  # [B, T, N, F]
        return self.head(h).reshape(x[:, -1].shape)  # frames are the Conv2d's input channels
