"""ETM: equivariant temporal attention of ESTAG (Wu et al., NeurIPS 2023).

Each node attends over its own T frames (single head, no 1/sqrt(d) scaling)::

    q(t) = phi_q(h(t)),  k(s) = phi_k(h(s)),  v(s) = phi_v(h(s))     (Linear, act, Linear, act)
    alpha(t, s) = softmax_s(q(t) . k(s))          keys s > t masked out when ``causal``
    h(t) <- h(t) + sum_s alpha(t, s) v(s)
    x(t) <- x(t) + sum_s alpha(t, s) (x(s) - x(t)) phi_x(v(s))            single-channel
    X(t) <- X(t) + sum_s alpha(t, s) diag(phi_x(v(s))) (X(t) - X(s))      multi-channel

(the multi-channel sign follows the authors' implementation; ``sign`` overrides it).
``phi_x`` = Linear, act, bias-free Linear (Xavier-uniform, gain 0.001) with one output per
channel. Only differences of coordinates enter, so the update is E(n)-equivariant; with the
causal mask, frame 0 attends only to itself and its coordinates never move.

Shapes (``...`` batch axes, e.g. ``N, B``; time is the axis before features)::

    h [..., T, H],  x [..., T, D] or [..., T, C, D]  ->  (h, x) of the same shapes

The update is the op :func:`graphdyn.ops.temporal_attention` (reference or C kernel, as the
layer's ``backend`` says: see :mod:`graphdyn.ops.backend`) on the MLPs' weights, the three
projections stacked.
"""

from __future__ import annotations

import torch
from torch import nn

from graphdyn.nn.mlp import MLP
from graphdyn.ops.temporal_attention import temporal_attention


class TemporalAttention(nn.Module):
    """Per-node attention across frames updating features and coordinates.

    Args:
        hidden: feature width H.
        channels: None for one D-vector per node and frame, else C.
        act: activation name.
        causal: mask keys later than the query frame.
        sign: +1 uses ``x(s) - x(t)``, -1 uses ``x(t) - x(s)``; None picks +1 single-channel
            and -1 multi-channel (the authors' choices).
        coord_gain: Xavier-uniform gain of the last coordinate Linear (None: default init).
    """

    def __init__(
        self,
        hidden: int,
        *,
        channels: int | None = None,
        act: str = "silu",
        causal: bool = True,
        sign: int | None = None,
        coord_gain: float | None = 0.001,
    ):
        super().__init__()
        self.act = act
        self.channels = channels
        self.causal = causal
        self.sign = (1 if channels is None else -1) if sign is None else sign
        if self.sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, got {sign!r}")
        self.backend = "auto"  # set once per model by graphdyn.ops.configure
        self.query = MLP([hidden, hidden, hidden], act=act, final_act=True)
        self.key = MLP([hidden, hidden, hidden], act=act, final_act=True)
        self.value = MLP([hidden, hidden, hidden], act=act, final_act=True)
        self.coord = MLP([hidden, hidden, 1 if channels is None else channels], act=act, final_bias=False)
        if coord_gain is not None:
            nn.init.xavier_uniform_(self.coord[-1].weight, gain=coord_gain)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Update ``(h, x)``; shapes in the module docstring."""
        qkv = (self.query, self.key, self.value)
        W1 = torch.stack([m[0].weight for m in qkv])  # [3, H, H]
        b1 = torch.stack([m[0].bias for m in qkv])  # [3, H]
        W2 = torch.stack([m[2].weight for m in qkv])
        b2 = torch.stack([m[2].bias for m in qkv])
        c = self.coord
        return temporal_attention(h, x, W1, b1, W2, b2, c[0].weight, c[0].bias, c[2].weight, self.act, self.causal,
                                  self.sign, self.backend)
