"""SE(3)-Transformer attention layer (Fuchs, Worrall, Fischer & Welling, NeurIPS 2020), on e3nn.

Node features are direct sums of irreps of O(3), as in :mod:`graphdyn.nn.tfn`. For every
directed edge (i <- j), row 0 of ``edge_index`` the receiver i and row 1 the sender j::

    r_ij   = x_i - x_j,   Y_ij = Y^{0..lmax}(r_ij / |r_ij|)
    q_i    = L_Q h_i                                         query: a linear map of the receiver
    k_ij   = (h_j (x) Y_ij)_{R_K(|r_ij|, e_ij)}              key:   tensor product with a TFN filter
    v_ij   = (h_j (x) Y_ij)_{R_V(|r_ij|, e_ij)}              value: the same with its own radial weights
    a_ij^h = <q_i^h, k_ij^h> / sqrt(d_h)                     per head h: dot product of matching irreps
                                                           (sum over channels and the 2l+1 components,
                                                           so a rotation-invariant scalar)
    alpha_ij^h = exp(a_ij^h) / sum_{j' in N(i)} exp(a_ij'^h)   softmax over i's incoming edges
    h_i'   = Gate(L_V sum_j alpha_ij^h v_ij^h + L_S h_i)       self-interaction, gated nonlinearity

Keys and values are two weightings of one e3nn tensor product (one radial network, two output
layers; :class:`~graphdyn.nn.tensor_field_parts.EdgeTensorProduct`), like
:class:`~graphdyn.nn.tfn.TFNLayer`'s messages, and share its irreps. ``kernel="channelwise"``
(default) uses TFN's per-channel filters, ``"full"`` the paper's per-edge ``[mul_out, mul_in]``
radial matrices (same symmetry, about three times the work of a training step). Each head
owns an equal share of the channels of every irrep block. The query lives in the key's irreps,
so ``L_Q`` absorbs any linear map one would put on the key. A node without incoming edges gets
``Gate(L_S h_i)``. ``gate=False`` ends at the linear maps (an output layer).

Logits are built from dot products of equal irreps, hence invariant under rotations and
reflections; the weighted sum of values is then equivariant, and so is the layer (E(3) and
node permutations).

Shapes (node-major; ``...`` any batch axes shared by all nodes, e.g. ``B*T`` frames)::

    h          [N, ..., irreps_in.dim]
    x          [N, ..., 3]
    edge_index [2, E]                      row 0 receiver i, row 1 sender j, shared by every batch entry
    edge_attr  broadcastable to [E, ..., K], or None
    -> h'      [N, ..., irreps_out.dim]    (``return_attention``: and alpha [E, ..., heads])
"""

from __future__ import annotations

from typing import Literal

import torch
from e3nn import o3
from torch import nn

from graphdyn.nn.tensor_field_parts import EdgeTensorProduct, edge_geometry
from graphdyn.nn.tfn import GatedTensorFieldLayer


def segment_softmax(logits: torch.Tensor, index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Softmax of ``logits [E, ...]`` over the edges that share a receiver ``index [E]``.

    The per-receiver maximum is subtracted first (a constant per segment, so it changes
    nothing but the range of ``exp``); every segment's weights sum to one.
    """
    expand = index.view(-1, *([1] * (logits.dim() - 1))).expand_as(logits)
    top = logits.new_zeros((num_nodes, *logits.shape[1:]))
    top = top.scatter_reduce(0, expand, logits.detach(), reduce="amax", include_self=False)
    e = torch.exp(logits - top.index_select(0, index))
    total = torch.zeros_like(top).index_add_(0, index, e)
    return e / total.index_select(0, index)


def _heads_of(irreps: o3.Irreps, heads: int) -> torch.Tensor:
    """Head of every component of ``irreps``: channel u of a block of mul channels -> u * heads // mul."""
    out = []
    for mul, ir in irreps:
        if mul % heads:
            raise ValueError(f"{heads} heads do not divide the {mul} channels of {ir} in {irreps}")
        out.append((torch.arange(mul) * heads // mul).repeat_interleave(ir.dim))
    return torch.cat(out)


class SE3AttentionLayer(GatedTensorFieldLayer):
    """One SE(3)-Transformer attention block (+ gate); see the module docstring.

    Args:
        irreps_in: irreps of the input node features.
        irreps_out: irreps of the output node features (after the gate).
        heads: attention heads (must divide every multiplicity of the keys and values).
        lmax: highest degree of the filters' spherical harmonics.
        kernel: ``"channelwise"`` (TFN filters) or ``"full"`` (per-edge channel-mixing matrices).
        n_basis, r_max, radial_hidden: the radial network (:class:`~graphdyn.nn.tensor_field_parts.RadialNet`).
        edge_attr_dim: width K of the edge attributes fed to the radial network (0: none).
        gate: end in the gated nonlinearity (hidden layers) or not (output layers).
    """

    def __init__(
        self,
        irreps_in: str | o3.Irreps,
        irreps_out: str | o3.Irreps,
        *,
        heads: int = 1,
        lmax: int = 1,
        kernel: Literal["channelwise", "full"] = "channelwise",
        n_basis: int = 8,
        r_max: float = 5.0,
        radial_hidden: int = 32,
        edge_attr_dim: int = 0,
        gate: bool = True,
    ):
        super().__init__(irreps_in, irreps_out, lmax, n_basis, r_max, radial_hidden, edge_attr_dim, gate)
        self.heads = heads
        irreps_pre = self.irreps_pre
        # keys and values: two weightings of one product, in the irreps the output needs
        self.kv = EdgeTensorProduct(self.irreps_in, self.irreps_sh, irreps_pre, kernel, radial_hidden, weightings=2)
        self.query = o3.Linear(self.irreps_in, self.kv.irreps_out)
        self.lin_value = o3.Linear(self.kv.irreps_out, irreps_pre)
        self.lin_self = o3.Linear(self.irreps_in, irreps_pre)
        head = _heads_of(self.kv.irreps_out, heads)  # head of every key/value component
        self.register_buffer("head", head, persistent=False)
        self.register_buffer("head_sum", nn.functional.one_hot(head, heads).float(), persistent=False)
        self.scale = (self.kv.irreps_out.dim // heads) ** -0.5

    def forward(
        self,
        h: torch.Tensor,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        receiver, sender = edge_index
        n = h.shape[0]
        sh, dist = edge_geometry(x, edge_index, self.lmax)
        k, v = self.kv(h.index_select(0, sender), sh, self.radial(dist, edge_attr))  # [E, ..., key] each
        q = self.query(h).index_select(0, receiver)
        if self.heads == 1:
            logits = (q * k).sum(-1, keepdim=True) * self.scale  # [E, ..., 1]
            alpha = segment_softmax(logits, receiver, n)
            weighted = v * alpha
        else:
            logits = (q * k) @ self.head_sum.to(k.dtype) * self.scale  # [E, ..., heads]
            alpha = segment_softmax(logits, receiver, n)
            weighted = v * alpha.index_select(-1, self.head)
        agg = weighted.new_zeros((n, *weighted.shape[1:])).index_add_(0, receiver, weighted)
        out = self.self_interaction(agg, self.lin_value, h)
        return (out, alpha) if return_attention else out
