"""Parts shared by the tensor-field layers (:mod:`graphdyn.nn.tfn`, :mod:`graphdyn.nn.se3_attention`).

A TFN filter on the edge i <- j is ``F(r_ij) = R(|r_ij|) Y(r_ij / |r_ij|)``: a learned radial
part times spherical harmonics. Its product with the sender's features, ``(h_j (x) Y_ij)``
weighted by ``R``, is every layer's per-edge message.

* :func:`edge_geometry`: per directed edge (i <- j), the real spherical harmonics
  ``Y^l(r_ij / |r_ij|)``, l = 0 .. lmax, of ``r_ij = x_i - x_j`` (e3nn's ``component``
  normalisation, xyz order for l = 1; ``Y^l`` has parity ``(-1)^l``, so positions are ``1o``
  and a reflection acts on them correctly) and the length ``|r_ij|``.
* :class:`RadialNet`: the hidden layer of the radial network,
  ``phi_ij = relu(W_b [B(|r_ij|), |r_ij|] + W_e e_ij + b)``, with ``B`` a Gaussian basis of
  ``n_basis`` functions over ``[0, r_max]`` (no cutoff: the graphs are bond graphs, not radius
  graphs; the length itself is appended, as the SE(3)-Transformer's radial network reads it,
  so edges longer than ``r_max`` keep a length signal) and ``e_ij`` the dataset's optional
  edge attributes. The edge-attribute term is computed once per
  edge and broadcast over every batch entry (all B*T frames). One ``phi`` feeds the output
  layers of all of a layer's products (a TFN message; an attention key and value).
* :class:`EdgeTensorProduct`: ``(h_j (x) Y_ij)`` with per-edge weights ``R_ij = W phi_ij + c``
  (its own output layers), one or several weightings of the same product.
* :func:`gated`: e3nn's gated nonlinearity for a set of output irreps: even scalars through
  ReLU (odd scalars through tanh, which keeps their parity), every l > 0 irrep multiplied by
  the sigmoid of one extra scalar gate. Returns the gate and the irreps it must be fed.

Shapes (node-major, ``...`` any batch axes shared by every node, e.g. ``B*T`` frames)::

    x [N, ..., 3], edge_index [2, E]                   ->  sh [E, ..., (lmax+1)^2], dist [E, ..., 1]
    dist [E, ..., 1], edge_attr bcast. to [E, ..., K]  ->  phi [E, ..., hidden]
    h_j [E, ..., irreps_in.dim], sh, phi               ->  [E, ..., irreps_out.dim] (or a tuple of them)
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from e3nn import nn as enn
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from torch import nn


def edge_geometry(x: torch.Tensor, edge_index: torch.Tensor, lmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spherical harmonics ``[E, ..., (lmax+1)^2]`` and lengths ``[E, ..., 1]`` of ``x_i - x_j``."""
    r = x.index_select(0, edge_index[0]) - x.index_select(0, edge_index[1])
    sh = o3.spherical_harmonics(list(range(lmax + 1)), r, normalize=True, normalization="component")
    return sh, r.norm(dim=-1, keepdim=True)


class RadialNet(nn.Module):
    """The radial network's hidden features ``phi`` from lengths and edge attributes; see the module docstring.

    Args:
        n_basis: Gaussian basis functions over ``[0, r_max]``.
        r_max: end of the basis, in the data's length unit.
        hidden: width of ``phi``.
        edge_attr_dim: width K of the edge attributes (0: none).
    """

    def __init__(self, n_basis: int = 8, r_max: float = 5.0, hidden: int = 32, edge_attr_dim: int = 0):
        super().__init__()
        self.n_basis, self.r_max, self.hidden = n_basis, r_max, hidden
        self.basis = nn.Linear(n_basis + 1, hidden)
        self.edge = nn.Linear(edge_attr_dim, hidden, bias=False) if edge_attr_dim else None

    def forward(self, dist: torch.Tensor, edge_attr: torch.Tensor | None = None) -> torch.Tensor:
        b = soft_one_hot_linspace(dist.squeeze(-1), 0.0, self.r_max, self.n_basis, basis="gaussian", cutoff=False)
        z = self.basis(torch.cat([b, dist], dim=-1))
        if self.edge is not None:
            if edge_attr is None:
                raise ValueError("this radial network was built for edge attributes and got none")
            z = z + self.edge(edge_attr)
        return torch.relu(z)


class EdgeTensorProduct(nn.Module):
    """``(h_j (x) Y_ij)`` weighted per edge by ``R_ij = W phi_ij + c``, ``weightings`` times.

    Only paths ``l_in (x) l_f -> l_out`` whose output irrep (parity included) is in
    ``irreps_target`` are kept.

    * ``"channelwise"`` (TFN's filter, Thomas et al. eq. 4): channel ``u`` of an input irrep
      meets the filter ``R_u(|r|) Y(r)`` and stays channel ``u``; every path yields its own
      block of ``mul_in`` output channels. The unweighted product is computed once (an e3nn
      ``uvu`` product without weights) and multiplied by each weighting's per-channel radial
      weights, tied across the 2l+1 components of an irrep (which keeps it equivariant). The
      channels are mixed afterwards by a node-level self-interaction.
    * ``"full"`` (the SE(3)-Transformer's kernels, Fuchs et al. eq. 8): every path has its own
      radial ``[mul_out, mul_in]`` matrix per edge (an e3nn ``uvw`` product with per-edge
      weights), ``mul_out`` as in ``irreps_target`` but at most the widest input irrep (a
      node-level linear widens the result for a fraction of the per-edge cost). Towards a
      narrow output (one ``1o`` vector) it is the cheaper kernel: a few numbers per edge
      instead of one block per path and input channel.

    ``forward(h_j, sh, phi)`` returns ``[E, ..., irreps_out.dim]``, or a tuple of ``weightings``
    such tensors (e.g. an attention key and value from one product).
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_target: o3.Irreps,
        kernel: Literal["channelwise", "full"],
        radial_hidden: int,
        weightings: int = 1,
    ):
        super().__init__()
        irreps_in, irreps_sh, irreps_target = o3.Irreps(irreps_in), o3.Irreps(irreps_sh), o3.Irreps(irreps_target)
        self.kernel, self.weightings = kernel, weightings
        if kernel == "full":
            width = max((m for m, _ in irreps_in), default=0)
            out = o3.Irreps([(min(m, width), ir) for m, ir in irreps_target]).simplify()
            self.tp = o3.FullyConnectedTensorProduct(
                irreps_in, irreps_sh, out, shared_weights=False, internal_weights=False
            )  # fmt: skip
            n_free = self.tp.weight_numel
        elif kernel == "channelwise":
            wanted = {ir for _, ir in irreps_target}
            out, instructions = [], []
            for i1, (mul, ir1) in enumerate(irreps_in):
                for i2, (_, ir2) in enumerate(irreps_sh):
                    for ir in ir1 * ir2:
                        if ir in wanted:
                            instructions.append((i1, i2, len(out), "uvu", False))
                            out.append((mul, ir))
            self.tp = o3.TensorProduct(irreps_in, irreps_sh, o3.Irreps(out), instructions)
            # component -> its (path, channel) weight: block p of mul channels, each 2l+1 long
            offsets = torch.tensor([0] + [m for m, _ in out]).cumsum(0)
            tie = [offsets[p] + torch.arange(m).repeat_interleave(ir.dim) for p, (m, ir) in enumerate(out)]
            self.register_buffer("tie", torch.cat(tie) if tie else torch.zeros(0, dtype=torch.long), persistent=False)
            n_free = int(offsets[-1])
        else:
            raise ValueError(f"kernel must be 'channelwise' or 'full', got {kernel!r}")
        self.irreps_out = self.tp.irreps_out
        self.radial_out = nn.ModuleList(nn.Linear(radial_hidden, n_free) for _ in range(weightings))

    def forward(
        self, h_j: torch.Tensor, sh: torch.Tensor, phi: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.kernel == "full":
            out = tuple(self.tp(h_j, sh, lin(phi)) for lin in self.radial_out)
        else:
            product = self.tp(h_j, sh)
            out = tuple(product * F.linear(phi, lin.weight[self.tie], lin.bias[self.tie]) for lin in self.radial_out)
        return out if self.weightings > 1 else out[0]


def gated(irreps_out: o3.Irreps) -> tuple[enn.Gate, o3.Irreps]:
    """e3nn ``Gate`` producing ``irreps_out``, and the irreps ``irreps_out + gates`` it takes."""
    irreps_out = o3.Irreps(irreps_out)
    scalars = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l == 0])
    vectors = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l > 0])
    acts = [torch.relu if ir.p == 1 else torch.tanh for _, ir in scalars]
    gates = o3.Irreps(f"{vectors.num_irreps}x0e") if vectors.num_irreps else o3.Irreps("")
    gate = enn.Gate(scalars, acts, gates, [torch.sigmoid] if vectors.num_irreps else [], vectors)
    return gate, gate.irreps_in
