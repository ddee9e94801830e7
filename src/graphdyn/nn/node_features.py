"""Input features of the non-equivariant baselines: node attributes beside raw coordinates.

STGCN, AGL-STAN and the non-equivariant STAG read, per node n and frame t of sample b::

    u[b, t, n] = [a[b, n], x[b, t, n].flatten()]          width A + D, or A + C*D

in one of two layouts: batch-major ``[B, T, N, F]`` (the data's order) or node-major
``[N, B, T, F]`` (a graph convolution is then one ``[N, N]`` matmul over a contiguous block).
Both move axes with ``movedim`` (a permutation), never a bare reshape across axes: the
authors' AGL-STAN reshaped ``(B*N, T, F)`` into ``(B, T, N, F)`` and mixed nodes and
frames (spec section 7, item 10).

Shapes: ``x [B, T, N, D]`` or ``[B, T, N, C, D]``, ``node_attr [B, N, A]`` -> ``[B, T, N, F]``
or ``[N, B, T, F]`` with ``F = A + D`` or ``A + C*D``.
"""

from __future__ import annotations

import torch


def frame_features(x: torch.Tensor, node_attr: torch.Tensor, *, node_major: bool = False) -> torch.Tensor:
    """``[a, x(t)]`` per node and frame, batch-major ``[B, T, N, F]`` or ``node_major`` ``[N, B, T, F]``."""
    B, T, N = x.shape[:3]
    if node_attr.shape[:2] != (B, N):
        raise ValueError(f"node_attr has shape {tuple(node_attr.shape)}; expected [{B}, {N}, A] for x of shape {tuple(x.shape)}")
    a = node_attr.to(x.dtype)
    if node_major:
        coords = x.movedim(2, 0).reshape(N, B, T, -1)
        attrs = a.movedim(1, 0)[:, :, None].expand(N, B, T, a.shape[-1])
    else:
        coords = x.reshape(B, T, N, -1)
        attrs = a[:, None].expand(B, T, N, a.shape[-1])
    return torch.cat([attrs, coords], dim=-1)
