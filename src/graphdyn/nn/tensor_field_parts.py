"""Parts shared by the tensor-field layers (:mod:`graphdyn.nn.tfn`, :mod:`graphdyn.nn.se3_attention`).

* :func:`edge_geometry`: per directed edge (i <- j), the relative vector ``r_ij = x_i - x_j``,
  its length and its real spherical harmonics ``Y^l(r_ij / |r_ij|)``, l = 0 .. lmax (e3nn's
  ``component`` normalisation, xyz order for l = 1; ``l`` has parity ``(-1)^l``, so positions
  are ``1o`` vectors and a reflection acts on them correctly).
* :class:`RadialNet`: per-edge weights of a tensor product from rotation-invariant edge data,
  ``W_ij = W_2 act(W_b B(|r_ij|) + W_e e_ij + b_1) + b_2``, with ``B`` a Gaussian basis of
  ``n_basis`` functions spread over ``[0, r_max]`` (no cutoff: the graphs are bond graphs,
  not radius graphs) and ``e_ij`` the dataset's optional edge attributes. The edge-attribute
  term is computed once per edge and broadcast over every batch entry (e.g. all B*T frames).
* :func:`edge_tensor_product`: the tensor product of a sender's features with the filter's
  spherical harmonics, per-edge weights, TFN's channelwise or the SE(3)-Transformer's full kernels.
* :func:`gated`: e3nn's gated nonlinearity for a set of output irreps: even scalars through
  ReLU (odd scalars through tanh, which keeps their parity), every l > 0 irrep multiplied by
  the sigmoid of one extra scalar gate. Returns the gate and the irreps it must be fed.

Shapes (node-major, ``...`` any batch axes shared by every node, e.g. ``B*T`` frames)::

    x [N, ..., 3], edge_index [2, E]  ->  sh [E, ..., (lmax+1)^2], dist [E, ..., 1]
    dist [E, ..., 1], edge_attr broadcastable to [E, ..., K]  ->  weights [E, ..., n_weights]
"""

from __future__ import annotations

from typing import Literal

import torch
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
    """Per-edge tensor-product weights from lengths and edge attributes; see the module docstring.

    Args:
        n_weights: weights per edge (the tensor product's ``weight_numel``).
        n_basis: Gaussian basis functions over ``[0, r_max]``.
        r_max: end of the basis, in the data's length unit.
        hidden: width of the hidden layer.
        edge_attr_dim: width K of the edge attributes (0: none).
    """

    def __init__(self, n_weights: int, n_basis: int = 8, r_max: float = 5.0, hidden: int = 32, edge_attr_dim: int = 0):
        super().__init__()
        self.n_basis, self.r_max = n_basis, r_max
        self.basis = nn.Linear(n_basis, hidden)
        self.edge = nn.Linear(edge_attr_dim, hidden, bias=False) if edge_attr_dim else None
        self.out = nn.Linear(hidden, n_weights)

    def forward(self, dist: torch.Tensor, edge_attr: torch.Tensor | None = None) -> torch.Tensor:
        b = soft_one_hot_linspace(dist.squeeze(-1), 0.0, self.r_max, self.n_basis, basis="gaussian", cutoff=False)
        z = self.basis(b)
        if self.edge is not None:
            if edge_attr is None:
                raise ValueError("this radial network was built for edge attributes and got none")
            z = z + self.edge(edge_attr)
        return self.out(torch.relu(z))


def edge_tensor_product(
    irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_target: o3.Irreps, kernel: Literal["channelwise", "full"]
) -> o3.TensorProduct:
    """The tensor product ``h_j (x) Y_ij`` of an edge, with per-edge weights (``weight_numel`` each).

    Only paths ``l_in (x) l_f -> l_out`` whose output irrep (parity included) is in
    ``irreps_target`` are kept.

    * ``"channelwise"`` (TFN's filter, Thomas et al. eq. 4): channel ``c`` of an input irrep
      meets the filter ``R_c(|r|) Y(r)`` and stays channel ``c``; every path yields its own
      block of ``mul_in`` output channels (``uvu``). Channels are mixed afterwards by a
      node-level self-interaction, so the per-edge work is a few elementwise products.
    * ``"full"`` (the SE(3)-Transformer's kernels, Fuchs et al. eq. 8): every path has its own
      ``[mul_out, mul_in]`` matrix per edge (``uvw``), ``mul_out`` the width of the widest
      input irrep (a node-level linear maps the result to the layer's output).
    """
    irreps_in, irreps_sh, irreps_target = o3.Irreps(irreps_in), o3.Irreps(irreps_sh), o3.Irreps(irreps_target)
    if kernel == "full":
        width = max((m for m, _ in irreps_in), default=0)
        out = o3.Irreps([(width, ir) for _, ir in irreps_target]).simplify()
        return o3.FullyConnectedTensorProduct(irreps_in, irreps_sh, out, shared_weights=False, internal_weights=False)
    if kernel != "channelwise":
        raise ValueError(f"kernel must be 'channelwise' or 'full', got {kernel!r}")
    wanted = {ir for _, ir in irreps_target}
    out, instructions = [], []
    for i1, (mul, ir1) in enumerate(irreps_in):
        for i2, (_, ir2) in enumerate(irreps_sh):
            for ir in ir1 * ir2:
                if ir in wanted:
                    instructions.append((i1, i2, len(out), "uvu", True))
                    out.append((mul, ir))
    return o3.TensorProduct(
        irreps_in, irreps_sh, o3.Irreps(out), instructions, shared_weights=False, internal_weights=False
    )


def gated(irreps_out: o3.Irreps) -> tuple[enn.Gate, o3.Irreps]:
    """e3nn ``Gate`` producing ``irreps_out``, and the irreps ``irreps_out + gates`` it takes."""
    irreps_out = o3.Irreps(irreps_out)
    scalars = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l == 0])
    vectors = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l > 0])
    acts = [torch.relu if ir.p == 1 else torch.tanh for _, ir in scalars]
    gates = o3.Irreps(f"{vectors.num_irreps}x0e") if vectors.num_irreps else o3.Irreps("")
    gate = enn.Gate(scalars, acts, gates, [torch.sigmoid] if vectors.num_irreps else [], vectors)
    return gate, gate.irreps_in
