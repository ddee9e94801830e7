"""STGCN: spatio-temporal graph convolutional network (Yu et al., IJCAI 2018), the ESTAG paper's baseline.

Non-equivariant: coordinates enter as plain features. Per node and frame the input is
``u(t) = [a, x(t)]`` (attributes, then the C*D coordinates flattened); then::

    h   = W_in u + b                                        Linear(A + C*D -> 32)
    for each of 2 ST-Conv blocks:
        h = Gamma_1(h)                                       gated temporal conv, k = 2, -> 64
        h = ReLU(A_hat h Theta)                              graph conv, 64 -> 32
        h = Gamma_2(h)                                       gated temporal conv, k = 2, -> 64
        h = BatchNorm(h)
    h   = Gamma_out(h)                                       gated temporal conv, 64 -> 64
    x_hat = x(T-1) + W_fc [h(0), ..., h(T-6)]                Linear((T-5)*64 -> C*D), per node

Gamma is :class:`graphdyn.nn.temporal_conv.GatedTemporalConv` (``ReLU(P*sigmoid(Q) + R)``,
each drops ``k - 1`` frames, hence T - 5 frames at the end), the graph conv
:class:`graphdyn.nn.graph_conv.GraphConv` with the fixed ``A_hat`` of
:func:`graphdyn.nn.graph_conv.dataset_adjacency` rebuilt from the batch's edges every call
(``adjacency``: ``"edges"`` 1 per edge; ``"hop"`` the authors' ``D^-1/2 (A + A^2) D^-1/2`` for
MD17 and Motion; ``"attr"`` the edge attribute as weight, the authors' distance-weighted AdK
adjacency). Widths and kernel as the authors' code (spec section 5).

Choices where the spec is open:

* ``norm="channel"`` (default): BatchNorm of each feature channel over samples, frames and
  nodes, so the model commutes with node relabelling. ``norm="node"`` is the authors'
  BatchNorm over nodes (one statistic and affine pair per node index: built for a fixed N,
  not permutation-equivariant).
* ``adjacency="edges"`` (default) reads only the edge list, so it fits any dataset; for MD17
  and Motion (edges = 1-hop plus 2-hop pairs) it is the spec's "``A + A^2`` without self
  loops" taken as a 0/1 matrix. The authors' code keeps ``A^2``'s counts and its diagonal
  (the node degrees): ``adjacency="hop"``. Their AdK weights are the raw CA-CA distances:
  ``adjacency="attr"``. A config reproducing the paper sets these per dataset.
* The input Linear has no activation after it (as the authors').

Layout: internally node-major ``[N, B, T, F]``: the graph conv is then one ``[N, N]`` matmul
and each temporal conv a Linear over stacked frames (:func:`graphdyn.nn.node_features.frame_features`
is the one conversion in; the head reads ``[N, B, (T-5)*64]`` and moves nodes back after the Linear).

Shapes: ``batch.x [B, T, N, D]`` or ``[B, T, N, C, D]``, ``batch.node_attr [B, N, A]``
-> positions ``[B, N, D]`` or ``[B, N, C, D]`` (target ``position``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo, DynamicsModel, Params
from graphdyn.nn.graph_batch_norm import GraphBatchNorm
from graphdyn.nn.graph_conv import AdjacencyMode, GraphConv, dataset_adjacency
from graphdyn.nn.node_features import frame_features
from graphdyn.nn.temporal_conv import GatedTemporalConv


class STConvBlock(nn.Module):
    """Temporal conv -> graph conv + ReLU -> temporal conv -> BatchNorm, on ``h [N, B, T, F]``."""

    def __init__(self, in_width: int, spatial_width: int, out_width: int, kernel: int, norm: GraphBatchNorm):
        super().__init__()
        self.temporal1 = GatedTemporalConv(in_width, out_width, kernel)
        self.spatial = GraphConv(out_width, spatial_width)
        self.temporal2 = GatedTemporalConv(spatial_width, out_width, kernel)
        self.norm = norm

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        h = self.temporal1(h, dim=2)
        h = torch.relu(self.spatial(h, adj, node_dim=0))
        return self.norm(self.temporal2(h, dim=2))


class FixedGraphParams(Params):
    """The graph settings of the models on the dataset's fixed ``A_hat`` (STGCN, non-equivariant STAG)."""

    adjacency: AdjacencyMode = "edges"
    adjacency_column: int = -1  # edge-attribute column read by adjacency "hop" / "attr"
    norm: Literal["channel", "node"] = "channel"


class FixedGraphModel(DynamicsModel):
    """Base of the models on the fixed ``A_hat`` with a BatchNorm over channels or nodes.

    Subclasses set ``label`` (the name their errors give) and use ``FixedGraphParams`` fields.
    """

    label = "model"

    def adjacency(self, batch: Batch, n_nodes: int, dtype: torch.dtype) -> torch.Tensor:
        """The normalised ``A_hat [N, N]`` of the batch's graph."""
        return dataset_adjacency(batch.edge_index, n_nodes, self.params.adjacency, batch.edge_attr, self.params.adjacency_column, dtype=dtype)

    def check_frames_and_nodes(self, T: int, N: int) -> None:
        """GraphdynError unless ``T`` is the built one and, with norm ``"node"``, ``N`` too."""
        if T != self.info.T:
            raise GraphdynError(f"{self.label} was built for T={self.info.T} observed frames, got {T}", field="T")
        if self.params.norm == "node" and N != self.info.n_nodes:
            raise GraphdynError(f"{self.label} with norm 'node' was built for {self.info.n_nodes} nodes, got {N}", field="n_nodes")


class STGCNParams(FixedGraphParams):
    embed_width: int = Field(32, ge=1)
    spatial_width: int = Field(32, ge=1)
    temporal_width: int = Field(64, ge=1)
    kernel: int = Field(2, ge=1)
    blocks: int = Field(2, ge=1)


class STGCN(FixedGraphModel):
    """STGCN, single- or multi-channel by ``info.channels``; see the module docstring."""

    Params = STGCNParams
    label = "STGCN"
    target = "position"
    equivariant = False
    layouts = ("single", "multi")

    def __init__(self, info: DataInfo, params: STGCNParams):
        super().__init__(info, params)
        p = params
        self.frames_out = info.T - (2 * p.blocks + 1) * (p.kernel - 1)
        if self.frames_out < 1:
            raise GraphdynError(
                f"STGCN with {p.blocks} blocks and kernel {p.kernel} needs T >= {info.T - self.frames_out + 1} observed frames, got {info.T}",
                field="T",
            )
        # absolute coordinates are features: only node relabelling is respected, and only
        # when the normalisation ignores node indices
        self.symmetries = ("permutation",) if p.norm == "channel" else ()
        coords = 1
        for s in info.node_shape:
            coords *= s
        W = p.temporal_width

        def norm() -> GraphBatchNorm:
            return GraphBatchNorm(W if p.norm == "channel" else info.n_nodes, p.norm)

        self.embed = nn.Linear(info.node_attr_dim + coords, p.embed_width)
        self.blocks = nn.ModuleList(
            STConvBlock(p.embed_width if b == 0 else W, p.spatial_width, W, p.kernel, norm()) for b in range(p.blocks)
        )
        self.last_temporal = GatedTemporalConv(W, W, p.kernel)
        self.head = nn.Linear(self.frames_out * W, coords)

    def forward(self, batch: Batch) -> torch.Tensor:
        x = batch.x
        B, T, N = x.shape[:3]
        self.check_frames_and_nodes(T, N)
        adj = self.adjacency(batch, N, x.dtype)
        h = self.embed(frame_features(x, batch.node_attr, node_major=True))  # [N, B, T, 32]
        for block in self.blocks:
            h = block(h, adj)
        h = self.last_temporal(h, dim=2)  # [N, B, T-5, 64]
        out = self.head(h.reshape(N, B, -1))  # frames then channels, per node and sample
        return x[:, -1] + out.movedim(0, 1).reshape(x[:, -1].shape)
