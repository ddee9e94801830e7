"""Gated temporal convolution of STGCN (Yu et al., IJCAI 2018), in the form behind the ESTAG paper's numbers.

A 1-D convolution over time with kernel ``k``, no padding, shared by every node; three
convolutions P, Q, R of the same kernel make a gated linear unit with a learned residual::

    [P, Q, R](t) = b + sum_{s=0}^{k-1} W_s x(t + s)            t = 0 .. T - k
    y(t)         = ReLU(P(t) * sigmoid(Q(t)) + R(t))

(Yu et al. write the GLU as ``(P + x) * sigmoid(Q)``; the ESTAG authors' STGCN gates as above,
with a convolved residual R and a ReLU, and this layer follows them.) Output frame ``t``
reads input frames ``t .. t + k - 1`` of the same node only.

Shapes: ``x [..., T, ..., F_in]`` with the time axis ``dim`` (not the last) ->
``[..., T - k + 1, ..., F_out]``.
"""

from __future__ import annotations

import torch
from torch import nn


class GatedTemporalConv(nn.Module):
    """``ReLU(P * sigmoid(Q) + R)`` over a kernel of ``kernel_size`` frames; see the module docstring.

    Args:
        in_channels: input feature width.
        out_channels: output feature width.
        kernel_size: frames per kernel (the output has ``kernel_size - 1`` fewer frames).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be at least 1, got {kernel_size}")
        self.kernel_size = kernel_size
        # one Linear over the k stacked frames gives P, Q and R in one matmul
        self.linear = nn.Linear(kernel_size * in_channels, 3 * out_channels)

    def forward(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Convolve ``x`` along its time axis ``dim``."""
        dim = dim % x.dim()
        if dim == x.dim() - 1:
            raise ValueError("the time axis cannot be the feature (last) axis")
        k, T = self.kernel_size, x.shape[dim]
        if T < k:
            raise ValueError(f"{T} frames are fewer than the kernel size {k}")
        taps = torch.cat([x.narrow(dim, s, T - k + 1) for s in range(k)], dim=-1) if k > 1 else x
        p, q, r = self.linear(taps).chunk(3, dim=-1)
        return torch.addcmul(r, p, torch.sigmoid(q)).relu_()  # in place: addcmul's backward does not read its output
