"""Tensor Field Network layer (Thomas, Smidt, Kearnes, Yang, Li, Kohlhoff & Riley, arXiv 1802.08219, 2018).

Node features are direct sums of irreps of O(3) (``irreps_in``, e.g. ``8x0e + 8x1o``: 8 scalars
and 8 vectors per node). For every directed edge (i <- j), row 0 of ``edge_index`` the
receiver i and row 1 the sender j::

    r_ij  = x_i - x_j
    Y_ij  = Y^{0..lmax}(r_ij / |r_ij|)                      spherical harmonics (the filter's angular part)
    W_ij  = R(|r_ij|, e_ij)                                 radial MLP on a Gaussian basis (+ edge attributes)
    m_ij  = (h_j (x) Y_ij)_{W_ij}                            Clebsch-Gordan tensor product over every path
                                                           l_in (x) l_f -> l_out, weighted per edge by W_ij
    m_i   = AGG_{j in N(i)} m_ij                            mean (or sum) over incoming edges; 0 if none
    h_i'  = Gate(L_m m_i + L_s h_i)                         self-interaction (per-l linear maps, bias on
                                                           scalars only) and gated nonlinearity

``F_c(r) = R_c(|r|) Y(r/|r|)`` is TFN's rotation-equivariant filter. With ``kernel="channelwise"``
(the paper's eq. 4, default) it acts on each channel c separately and every path keeps its own
output channels, which the self-interaction ``L_m`` then mixes; ``kernel="full"`` gives every
path a radial ``[mul_out, mul_in]`` matrix per edge instead, as the SE(3)-Transformer's code
does (same symmetry, about twice the work of an ST_TFN training step). ``L_s h_i`` is the r = 0 self term.
``Gate`` passes even scalars through ReLU and multiplies each l > 0 irrep by the sigmoid of an
extra scalar (e3nn's gated nonlinearity, in place of the paper's norm nonlinearity). With
``gate=False`` the layer ends at the linear maps and outputs ``irreps_out`` as is (an output
layer, e.g. ``1x1o`` for a displacement).

Only paths whose output irrep, parity included, is in the output are kept, so ``1o`` outputs
turn and mirror like positions: the layer is E(3)- and permutation-equivariant.

Shapes (node-major; ``...`` any batch axes shared by all nodes, e.g. ``B*T`` frames)::

    h          [N, ..., irreps_in.dim]
    x          [N, ..., 3]
    edge_index [2, E]                      row 0 receiver i, row 1 sender j, shared by every batch entry
    edge_attr  broadcastable to [E, ..., K] (e.g. [E, 1, K] shared by all frames), or None
    -> h'      [N, ..., irreps_out.dim]
"""

from __future__ import annotations

from typing import Literal

import torch
from e3nn import o3
from torch import nn

from graphdyn.nn.scatter import in_degree
from graphdyn.nn.tensor_field_parts import EdgeTensorProduct, RadialNet, edge_geometry, gated


class GatedTensorFieldLayer(nn.Module):
    """What TFN and SE(3)-Transformer layers share: irreps, filter harmonics, radial net, gate.

    Sets ``irreps_in``, ``irreps_sh``, ``lmax``, ``gate`` (None with ``gate=False``),
    ``irreps_out``, ``radial`` and ``irreps_pre`` (the irreps before the gate, which the
    layer's linear maps produce); :meth:`self_interaction` ends the forward pass.
    """

    def __init__(
        self,
        irreps_in: str | o3.Irreps,
        irreps_out: str | o3.Irreps,
        lmax: int,
        n_basis: int,
        r_max: float,
        radial_hidden: int,
        edge_attr_dim: int,
        gate: bool,
    ):
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in).simplify()
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.lmax = lmax
        if gate:
            self.gate, irreps_pre = gated(o3.Irreps(irreps_out).simplify())
            self.irreps_out = self.gate.irreps_out
        else:
            self.gate, irreps_pre = None, o3.Irreps(irreps_out).simplify()
            self.irreps_out = irreps_pre
        self.irreps_pre = irreps_pre
        self.radial = RadialNet(n_basis, r_max, radial_hidden, edge_attr_dim)

    def self_interaction(self, agg: torch.Tensor, lin_agg: nn.Module, h: torch.Tensor) -> torch.Tensor:
        """``Gate(L agg + L_s h)`` (no gate with ``gate=False``); ``lin_self`` is the subclass's ``L_s``."""
        out = lin_agg(agg) + self.lin_self(h)
        return out if self.gate is None else self.gate(out)


class TFNLayer(GatedTensorFieldLayer):
    """One TFN convolution + self-interaction (+ gate); see the module docstring.

    Args:
        irreps_in: irreps of the input node features.
        irreps_out: irreps of the output node features (after the gate).
        lmax: highest degree of the filter's spherical harmonics.
        kernel: ``"channelwise"`` (TFN) or ``"full"`` (per-edge channel-mixing matrices).
        n_basis, r_max, radial_hidden: the radial network (:class:`~graphdyn.nn.tensor_field_parts.RadialNet`).
        edge_attr_dim: width K of the edge attributes fed to the radial network (0: none).
        aggr: ``"mean"`` or ``"sum"`` over a receiver's incoming edges.
        gate: end in the gated nonlinearity (hidden layers) or not (output layers).
    """

    def __init__(
        self,
        irreps_in: str | o3.Irreps,
        irreps_out: str | o3.Irreps,
        *,
        lmax: int = 1,
        kernel: Literal["channelwise", "full"] = "channelwise",
        n_basis: int = 8,
        r_max: float = 5.0,
        radial_hidden: int = 32,
        edge_attr_dim: int = 0,
        aggr: Literal["mean", "sum"] = "mean",
        gate: bool = True,
    ):
        if aggr not in ("mean", "sum"):
            raise ValueError(f"aggr must be 'mean' or 'sum', got {aggr!r}")
        super().__init__(irreps_in, irreps_out, lmax, n_basis, r_max, radial_hidden, edge_attr_dim, gate)
        self.aggr = aggr
        irreps_pre = self.irreps_pre
        self.product = EdgeTensorProduct(self.irreps_in, self.irreps_sh, irreps_pre, kernel, radial_hidden)
        self.lin_message = o3.Linear(self.product.irreps_out, irreps_pre)
        self.lin_self = o3.Linear(self.irreps_in, irreps_pre)

    def forward(
        self, h: torch.Tensor, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None = None
    ) -> torch.Tensor:
        sh, dist = edge_geometry(x, edge_index, self.lmax)
        m = self.product(h.index_select(0, edge_index[1]), sh, self.radial(dist, edge_attr))  # [E, ..., msg]
        n = h.shape[0]
        agg = m.new_zeros((n, *m.shape[1:])).index_add_(0, edge_index[0], m)
        if self.aggr == "mean":
            deg = in_degree(edge_index[0], n).clamp_(min=1).to(m.dtype)
            agg = agg / deg.view(n, *([1] * (m.dim() - 1)))
        return self.self_interaction(agg, self.lin_message, h)
