"""EDFT: the equivariant discrete Fourier transform of ESTAG (Wu et al., NeurIPS 2023).

From the observed frames of every node, frame-centred so that any (even time-varying)
translation cancels::

    x~_i(t) = x_i(t) - (1/N) sum_n x_n(t)
    f_i(k)  = sum_{t=0}^{T-1} exp(-2 pi i k t / T) x~_i(t)      in C^D,  k = 1 .. T-1  (K = T - 1)
    w_k(i)  = sigmoid(u . h_i(k) + b)                           spectral gate (h: initial embedding)
    A_ij(k) = w_k(i) w_k(j) |sum_d conj(f_i,d(k)) f_j,d(k)|     cross-spectrum per directed edge
    c_i(k)  = w_k(i) |sum_d f_i,d(k)^2|     ("code", the authors' implementation)
            | w_k(i) ||f_i(k)||^2           ("poster")
    A_ij(k) <- A_ij(k) / (sum_k' A_ij(k') + eps),  c_i(k) likewise           (L1 over k)

Both are E(n)-invariant: a rotation Q acts on f as Q f, and both the Hermitian product and
the bilinear form f^T f are preserved by a real orthogonal Q.

Shapes (node-major, ``...`` batch axes, the time axis just before the last)::

    x [N, ..., T, D]   h [N, ..., T, H]   edge_index [2, E]
    -> A [E, ..., K],  c [N, ..., K]

``A`` is the op :func:`graphdyn.ops.edft_edges` (reference or C kernel, as the layer's
``backend`` says: see :mod:`graphdyn.ops.backend`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from graphdyn.ops.edft_edges import edft_edges


class EDFT(nn.Module):
    """Frequency-domain edge and node features; see the module docstring.

    Args:
        hidden: width H of the node embedding fed to the spectral gate.
        eps: L1-normalisation epsilon (1e-9 single-channel, 1e-6 multi-channel in ESTAG).
        amplitude: ``"code"`` (|sum_d f_d^2|) or ``"poster"`` (||f||^2) node amplitude.
        gate: False replaces the learned gate by 1 (the authors' ``filter`` switch).
    """

    def __init__(self, hidden: int, eps: float = 1e-9, amplitude: Literal["code", "poster"] = "code", gate: bool = True):
        super().__init__()
        if amplitude not in ("code", "poster"):
            raise ValueError(f"amplitude must be 'code' or 'poster', got {amplitude!r}")
        self.eps = eps
        self.amplitude = amplitude
        self.spectral_gate = nn.Linear(hidden, 1) if gate else None
        self.backend = "auto"  # set once per model by graphdyn.ops.configure

    def forward(self, x: torch.Tensor, h: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(A [E, ..., K], c [N, ..., K])`` from ``x [N, ..., T, D]`` and ``h [N, ..., T, H]``."""
        xc = x - x.mean(dim=0, keepdim=True)
        f = torch.fft.fft(xc, dim=-2)[..., 1:, :]  # [N, ..., K, D], DC term dropped
        fr, fi = f.real, f.imag
        w = None
        if self.spectral_gate is not None:
            # gate every frame, then drop frame 0: slicing h first would copy it, and its gradient
            w = torch.sigmoid(self.spectral_gate(h)[..., 1:, 0])  # [N, ..., K]
        c = self._amplitude(fr, fi, w)
        return edft_edges(fr, fi, w, edge_index, self.eps, self.backend), c

    def _amplitude(self, fr: torch.Tensor, fi: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        """The node features ``c [N, ..., K]``, gated and L1-normalised."""
        if self.amplitude == "code":
            sr = (fr * fr - fi * fi).sum(-1)
            si = 2.0 * (fr * fi).sum(-1)
            c = torch.sqrt(sr * sr + si * si)  # |sum_d f_d^2|
        else:
            c = (fr * fr + fi * fi).sum(-1)  # ||f||^2
        if w is not None:
            c = c * w
        return c / (c.sum(-1, keepdim=True) + self.eps)
