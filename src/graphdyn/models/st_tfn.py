"""ST_TFN: a Tensor Field Network (Thomas et al. 2018) on every observed frame, pooled over time.

The ESTAG paper's (Wu et al., NeurIPS 2023) ``ST_`` baseline around TFN: the frame-to-frame
network runs on each of the T frames independently (no message passing between frames), and a
learned softmax average over time pools the T per-frame predictions::

    h_i(t) = W a_i + b + E[t]                        type-0 input: node attribute + learned time table E
    v_i(t) = TFN_L-1( ... TFN_1(h(t), x(t)) ... )    gated layers, c x 0e + c x 1o (+ c x 2e ... to lmax)
    d_i(t) = TFN_L(v(t), x(t))                       last convolution: one 1o vector per node, no gate
    x_hat  = sum_t softmax(theta)_t (x_i(t) + d_i(t))   theta in R^T, initialised to 0

Each ``TFN_l`` is :class:`graphdyn.nn.tfn.TFNLayer` with TFN's channelwise filters (radial
weights from the edge length and, unless ``use_edge_attr=False``, the dataset's edge
attributes); the last one maps its input channels straight to the output vector (``"full"``
kernel, see :meth:`STTFN._output_layer`). The authors fed TFN zero velocities as its type-1
input; a zero input adds nothing through any tensor-product path or self-interaction, so the
first layer takes the type-0 input alone (the same function, less work). Defaults follow the
authors' call (nf = 16 / 2 = 8 channels per degree, degrees 0-1, L = 2 layers in all); e3nn's
gated ReLU replaces the SE(3)-Transformer library's norm nonlinearity, and theta starts at 0
(the authors drew it from U(-1, 1)), so an untrained model predicts the frames' mean.
:class:`graphdyn.models.st_se3tr.STSE3Transformer` is this wrapper with attention blocks.

Internally every tensor is node-major with the B*T frames as one batch axis, ``[N, B*T, ...]``,
so all frames of all samples share one edge list and no Python loop runs over samples or frames.

Symmetry: rotations and reflections (positions and outputs are ``1o``), translations (d is
built from differences and the pooling weights sum to one) and node relabelling; not a
different shift per frame (the average mixes the frames' shifts).

Shapes: ``batch.x [B, T, N, 3]``, ``batch.node_attr [B, N, A]``, ``batch.edge_attr [E, K]``
-> positions ``[B, N, 3]`` (target ``position``); :meth:`STTFN.frames` gives the per-frame
predictions ``[B, T, N, 3]`` before pooling.
"""

from __future__ import annotations

from typing import Literal

import torch
from e3nn import o3
from pydantic import Field
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DEFAULT_SYMMETRIES, DataInfo, DynamicsModel, Params
from graphdyn.nn.temporal_pooling import TemporalPooling
from graphdyn.nn.tfn import TFNLayer


class STTFNParams(Params):
    channels: int = Field(8, ge=1)  # multiplicity of every degree (the authors' nf 16 / 2)
    layers: int = Field(2, ge=1)  # TFN convolutions, the last one to the 1o output
    # degrees 0 .. lmax of features and filters; for lmax >= 2 e3nn keeps Clebsch-Gordan tables in the
    # default dtype at construction: build under float64 for float64-exact equivariance
    lmax: int = Field(1, ge=1)
    kernel: Literal["channelwise", "full"] = "channelwise"  # TFN's filters or per-edge matrices
    radial_basis: int = Field(8, ge=2)  # Gaussian functions over [0, r_max]
    # where the Gaussians end, in the data's length unit (MD17 bonds and 2-hop pairs < 3 A); set it
    # to cover the data's edge lengths (longer edges still see the length itself, not its basis)
    r_max: float = Field(5.0, gt=0)
    radial_hidden: int = Field(32, ge=1)
    aggr: Literal["mean", "sum"] = "mean"
    use_edge_attr: bool = True


class STTFN(DynamicsModel):
    """TFN per frame, softmax pooling over frames; see the module docstring."""

    Params = STTFNParams
    target = "position"
    equivariant = True
    symmetries = DEFAULT_SYMMETRIES
    layouts = ("single",)

    def __init__(self, info: DataInfo, params: STTFNParams):
        super().__init__(info, params)
        if info.dim != 3:
            name = type(self).__name__
            raise GraphdynError(f"{name} needs 3-D positions, this data has {info.dim}-D", field="model.name")
        c = params.channels
        self.edge_dim = info.edge_attr_dim if params.use_edge_attr else 0
        self.embed = nn.Linear(info.node_attr_dim, c)
        self.time_embed = nn.Embedding(info.T, c)
        scalars = o3.Irreps(f"{c}x0e")
        hidden = o3.Irreps([(c, (l, (-1) ** l)) for l in range(params.lmax + 1)])
        self.layers = nn.ModuleList(self._blocks(scalars, hidden))
        self.pool = TemporalPooling(info.T, "softmax")

    def _layer_kwargs(self) -> dict:
        p = self.params
        return dict(
            lmax=p.lmax, kernel=p.kernel, n_basis=p.radial_basis, r_max=p.r_max,
            radial_hidden=p.radial_hidden, edge_attr_dim=self.edge_dim,
        )  # fmt: skip

    def _blocks(self, scalars: o3.Irreps, hidden: o3.Irreps) -> list[nn.Module]:
        """The per-frame stack, from the type-0 input to one ``1o`` vector per node."""
        ins = [scalars] + [hidden] * (self.params.layers - 1)
        kw = {**self._layer_kwargs(), "aggr": self.params.aggr}
        return [TFNLayer(i, hidden, **kw) for i in ins[:-1]] + [self._output_layer(ins[-1])]

    def _output_layer(self, irreps_in: o3.Irreps) -> TFNLayer:
        """The last convolution, to one ``1o`` vector per node, no gate. Its kernel maps the input
        channels straight to that vector (``"full"``): the functions channelwise filters followed by
        a self-interaction to one channel can express, with 3 numbers per edge instead of 16 x 3."""
        kw = {**self._layer_kwargs(), "kernel": "full", "aggr": self.params.aggr}
        return TFNLayer(irreps_in, "1x1o", gate=False, **kw)

    def frames(self, batch: Batch) -> torch.Tensor:
        """Per-frame predictions ``x(t) + d(t)``, ``[B, T, N, 3]``, before the time pooling."""
        B, T, N, _ = batch.x.shape
        x = batch.x.permute(2, 0, 1, 3).reshape(N, B * T, 3)
        h = self.embed(batch.node_attr).movedim(1, 0).unsqueeze(2) + self.time_embed.weight[:T]  # [N, B, T, c]
        h = h.reshape(N, B * T, -1)
        e = None
        if self.edge_dim:
            if batch.edge_attr is None:
                name = type(self).__name__
                raise GraphdynError(f"this {name} was built for edge attributes and the batch has none", field="edge_attr")
            e = batch.edge_attr.reshape(batch.edge_attr.shape[-2], 1, batch.edge_attr.shape[-1])  # [E, 1, K]
        for layer in self.layers:
            h = layer(h, x, batch.edge_index, e)
        return (x + h).reshape(N, B, T, 3).permute(1, 2, 0, 3)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.pool(self.frames(batch), dim=1)
