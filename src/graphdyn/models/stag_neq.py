"""Non-equivariant STAG: graph convolution, then a Transformer over time (the ESTAG paper's ablation).

The authors' ``stag_neq`` (spec section 5, "(extra) STAG, non-equivariant"), probably the
paper's "non-equivariant" ablation of ESTAG. Per node and frame the input is
``u(t) = [a, x(t)]`` (attributes, then the C*D coordinates flattened)::

    h(t)  = BatchNorm(ReLU(A_hat u(t) Theta))           per frame, Theta: A + C*D -> 8
    z     = LayerNorm(h + PE)                           per node, over its T frames
    z     = Enc_2(Enc_1(z))                             Transformer layers, d 8, 4 heads, FFN 12
    x_hat = x(T-1) + W [z(0), ..., z(T-1)]              Linear(T*8 -> C*D), no bias, per node

``A_hat`` is the fixed normalised adjacency of :func:`graphdyn.nn.graph_conv.dataset_adjacency`
rebuilt from the batch's edges every call (``adjacency`` and the graph settings shared with :mod:`graphdyn.models.stgcn`),
the graph conv :class:`graphdyn.nn.graph_conv.GraphConv`, PE
:func:`graphdyn.nn.positional_encoding.sinusoidal_encoding`, each Enc a
``torch.nn.TransformerEncoderLayer`` (post-LN, ReLU, LN epsilon 1e-6), as the authors'
encoder (an input LayerNorm, then post-LN layers); ``norm_first=True`` gives pre-LN layers.
Every (node, sample) sequence is encoded alone.

Choices where the spec is open:

* ``dropout`` defaults to 0 (the authors' encoder used 0.1 after the PE and in every layer;
  set ``dropout: 0.1`` to match).
* The head Linear has PyTorch's default initialisation (the authors' U(-1, 1) makes the
  initial correction several Angstrom large) and no bias, as theirs.
* ``norm="channel"`` (default) normalises each feature over samples, frames and nodes, so the
  model commutes with node relabelling; ``norm="node"`` is the authors' BatchNorm over
  nodes (fixed N, not permutation-equivariant). The attention projections keep
  PyTorch's biases (the authors' have none).

Layout: internally node-major ``[N, B, T, F]``; the encoder sees ``[N*B, T, 8]`` (a view:
node-major merging keeps each sequence one node of one sample).

Shapes: ``batch.x [B, T, N, D]`` or ``[B, T, N, C, D]``, ``batch.node_attr [B, N, A]``
-> positions ``[B, N, D]`` or ``[B, N, C, D]`` (target ``position``).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo
from graphdyn.nn.graph_batch_norm import GraphBatchNorm
from graphdyn.models.stgcn import FixedGraphModel, FixedGraphParams
from graphdyn.nn.graph_conv import GraphConv
from graphdyn.nn.node_features import frame_features
from graphdyn.nn.positional_encoding import sinusoidal_encoding


class STAGNeqParams(FixedGraphParams):
    hidden: int = Field(8, ge=1)  # d_model
    heads: int = Field(4, ge=1)
    ffn: int = Field(12, ge=1)
    layers: int = Field(2, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    norm_first: bool = False


class STAGNonEquivariant(FixedGraphModel):
    """Non-equivariant STAG, single- or multi-channel by ``info.channels``; see the module docstring."""

    Params = STAGNeqParams
    label = "STAG"
    target = "position"
    equivariant = False
    layouts = ("single", "multi")

    def __init__(self, info: DataInfo, params: STAGNeqParams):
        super().__init__(info, params)
        p = params
        if p.hidden % p.heads:
            raise GraphdynError(f"hidden {p.hidden} must be divisible by heads {p.heads}", field="model.params.heads")
        self.symmetries = ("permutation",) if p.norm == "channel" else ()
        coords = 1
        for s in info.node_shape:
            coords *= s
        H = p.hidden
        self.spatial = GraphConv(info.node_attr_dim + coords, H)
        self.spatial_norm = GraphBatchNorm(H if p.norm == "channel" else info.n_nodes, p.norm)
        self.input_norm = nn.LayerNorm(H, eps=1e-6)
        self.dropout = nn.Dropout(p.dropout)
        self.encoder = nn.ModuleList(
            nn.TransformerEncoderLayer(
                H, p.heads, p.ffn, dropout=p.dropout, activation="relu", layer_norm_eps=1e-6, batch_first=True, norm_first=p.norm_first
            )
            for _ in range(p.layers)
        )
        self.head = nn.Linear(info.T * H, coords, bias=False)
        self.register_buffer("pos_enc", sinusoidal_encoding(info.T, H), persistent=False)

    def forward(self, batch: Batch) -> torch.Tensor:
        x = batch.x
        B, T, N = x.shape[:3]
        self.check_frames_and_nodes(T, N)
        adj = self.adjacency(batch, N, x.dtype)
        u = frame_features(x, batch.node_attr, node_major=True)  # [N, B, T, A + C*D]
        h = self.spatial_norm(torch.relu(self.spatial(u, adj, node_dim=0)))  # [N, B, T, H]
        z = self.input_norm(self.dropout(h + self.pos_enc.to(h.dtype))).reshape(N * B, T, -1)
        for layer in self.encoder:
            z = layer(z)  # each row is one node of one sample: attention never crosses them
        out = self.head(z.reshape(N, B, -1))  # [N, B, C*D]
        return x[:, -1] + out.movedim(0, 1).reshape(x[:, -1].shape)
