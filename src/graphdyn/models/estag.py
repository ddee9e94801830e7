"""ESTAG: Equivariant Spatio-Temporal Attentive Graph network (Wu et al., NeurIPS 2023).

From T observed frames, predict the positions one stride after the last::

    h(t)   = W a + b + E[t]                                  node embedding, learned time table E
    A, c   = EDFT(x, h)                                      once, from the raw frames
    for l in 0 .. L-1:
        (h, x) = ESM_l(h, x; A, c)   EGNN layer inside every frame (shared over frames)
        (h, x) = ETM_l(h, x)         per-node attention across frames
    x_hat  = x(T-1) + sum_{t<T-1} w_t (x(t) - x(T-1))        ETP

ESM is :class:`graphdyn.nn.egnn.EGNNLayer` with the EDFT cross-spectrum ``A_ij`` as edge
attributes and the amplitudes ``c_i`` as extra node inputs; single-channel it uses unit relative
vectors, a +-100 clamp and mean coordinate aggregation; multi-channel (C D-vectors per node,
e.g. AdK backbone N, CA, C, O) the normalised Gram radial and per-channel weights, and EDFT
reads channel ``edft_channel`` only. Defaults are the configuration behind the paper's tables.
Ablations: ``edft`` off (the dataset's edge attributes, if any, are used instead), ``etm`` off,
``causal_mask`` off, ``pooling="softmax"``, ``node_amplitude="poster"``.

Internally every tensor is node-major, ``[N, B, T, ...]``: neighbour gathers and scatters then
copy contiguous blocks, and per-node attention over frames is a batched matmul. EDFT's edge
features, the ESM's per-edge pipeline and node update and the ETM are ops (:mod:`graphdyn.ops`:
``edft_edges``, ``egnn_edges``, ``node_update``, ``temporal_attention``): on a CPU with a C
compiler they run as C kernels (:mod:`graphdyn.native`), elsewhere as their plain-autograd
references, which compute the same numbers; the model's backend setting picks
(:func:`graphdyn.ops.configure`). ``benchmarks/estag_step.py`` times a training step.

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
from graphdyn.models.base import DEFAULT_SYMMETRIES, DataInfo, DynamicsModel, Params
from graphdyn.nn.edft import EDFT
from graphdyn.nn.egnn import EGNNLayer
from graphdyn.nn.temporal_attention import TemporalAttention
from graphdyn.nn.temporal_pooling import TemporalPooling


class ESTAGParams(Params):
    hidden: int = Field(16, ge=1)
    layers: int = Field(2, ge=1)
    act: Literal["silu", "leaky_relu", "relu", "tanh", "gelu"] | None = None  # None: silu, or leaky_relu multi-channel
    edft: bool = True
    spectral_gate: bool = True
    etm: bool = True
    causal_mask: bool = True
    pooling: Literal["etp", "softmax"] = "etp"
    node_amplitude: Literal["code", "poster"] = "code"
    eps: float | None = Field(None, ge=0)  # None: 1e-9, or 1e-6 multi-channel
    edft_channel: int = Field(1, ge=0)  # multi-channel only


class ESTAG(DynamicsModel):
    """ESTAG, single- or multi-channel by ``info.channels``; see the module docstring."""

    Params = ESTAGParams
    target = "position"
    equivariant = True
    # not "frame_translation": the temporal module mixes frames through differences
    symmetries = DEFAULT_SYMMETRIES

    def __init__(self, info: DataInfo, params: ESTAGParams):
        super().__init__(info, params)
        multi = info.channels is not None
        if multi and params.edft and params.edft_channel >= info.channels:
            raise GraphdynError(
                f"edft_channel {params.edft_channel} is out of range for {info.channels} coordinate channels",
                field="model.params.edft_channel",
            )
        if params.edft and info.T < 2:
            raise GraphdynError("EDFT needs at least 2 observed frames (T >= 2); set edft: false", field="model.params.edft")
        H, T = params.hidden, info.T
        act = params.act or ("leaky_relu" if multi else "silu")
        K = T - 1
        self.embed = nn.Linear(info.node_attr_dim, H)
        self.time_embed = nn.Embedding(T, H)
        self.edft = None
        if params.edft:
            eps = params.eps if params.eps is not None else (1e-6 if multi else 1e-9)
            self.edft = EDFT(H, eps=eps, amplitude=params.node_amplitude, gate=params.spectral_gate)
        edge_dim = K if params.edft else info.edge_attr_dim
        self.layers = nn.ModuleList()
        for _ in range(params.layers):
            block = nn.ModuleDict()
            block["spatial"] = EGNNLayer(
                H,
                channels=info.channels,
                edge_attr_dim=edge_dim,
                node_attr_dim=K if params.edft else 0,
                act=act,
                message_agg="sum",
                coord_agg="mean",
                unit_vectors=not multi,
                clamp=None if multi else 100.0,
            )
            if params.etm:
                block["temporal"] = TemporalAttention(H, channels=info.channels, act=act, causal=params.causal_mask)
            self.layers.append(block)
        self.pool = TemporalPooling(T, params.pooling)

    def invariant_features(self, batch: Batch) -> dict[str, tuple[torch.Tensor, str]]:
        """EDFT's edge and node features, which must ignore rotations, reflections, node
        permutations and even a different translation of every frame (spec section 2.8);
        :func:`graphdyn.testing.assert_equivariant` checks them on every call."""
        if self.edft is None:
            return {}
        trace: dict[str, torch.Tensor] = {}
        self.run(batch.x, batch.node_attr, batch.edge_index, batch.edge_attr, trace=trace)
        return {"edft.A": (trace["edft.A"], "edge"), "edft.c": (trace["edft.c"], "node")}

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.run(batch.x, batch.node_attr, batch.edge_index, batch.edge_attr)

    def run(
        self,
        x: torch.Tensor,
        node_attr: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor | None = None,
        trace: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Predict ``[B, N, (C,) D]`` from ``x [B, T, N, (C,) D]``, ``node_attr [B, N, A]``.

        ``trace``, when a dict, receives the intermediates in the data layout: ``edft.A``
        ``[B, E, K]``, ``edft.c`` ``[B, N, K]``, ``layers.{l}.spatial.h|x`` and
        ``layers.{l}.temporal.h|x`` ``[B, T, N, ...]``, ``x_hat``.
        """
        B, T = x.shape[0], x.shape[1]
        if T != self.info.T:
            raise GraphdynError(f"ESTAG was built for T={self.info.T} observed frames, got {T}", field="T")
        xn = x.movedim(2, 0).contiguous()  # [N, B, T, ...]
        # node-major before the Linear, so that h comes out contiguous (later layers would copy it)
        h = self.embed(node_attr.movedim(1, 0)).unsqueeze(2) + self.time_embed.weight  # [N, B, T, H]
        e_attr = n_attr = None
        if self.edft is not None:
            x_f = xn if self.info.channels is None else xn[..., self.params.edft_channel, :]
            A, c = self.edft(x_f, h, edge_index)  # [E, B, K], [N, B, K]
            e_attr, n_attr = A.unsqueeze(2), c.unsqueeze(2)  # broadcast over frames
            if trace is not None:
                trace["edft.A"], trace["edft.c"] = A.movedim(0, 1), c.movedim(0, 1)
        elif edge_attr is not None and self.layers[0]["spatial"].edge_attr_dim:
            e_attr = edge_attr.reshape(edge_attr.shape[-2], 1, 1, edge_attr.shape[-1])
        for l, block in enumerate(self.layers):
            h, xn = block["spatial"](h, xn, edge_index, e_attr, n_attr, node_dim=0)
            if trace is not None:
                trace[f"layers.{l}.spatial.h"], trace[f"layers.{l}.spatial.x"] = h.movedim(0, 2), xn.movedim(0, 2)
            if "temporal" in block:
                h, xn = block["temporal"](h, xn)
                if trace is not None:
                    trace[f"layers.{l}.temporal.h"], trace[f"layers.{l}.temporal.x"] = h.movedim(0, 2), xn.movedim(0, 2)
        x_hat = self.pool(xn, dim=2).movedim(0, 1)  # [B, N, ...]
        if trace is not None:
            trace["x_hat"] = x_hat
        return x_hat
