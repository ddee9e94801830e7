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
"""

from __future__ import annotations

import torch
from torch import nn

from graphdyn.nn import attention_fused
from graphdyn.nn.attention_fused import ACTS, AttentionConfig, temporal_attention
from graphdyn.nn.mlp import MLP


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
        fused: run as the chunked autograd op :func:`graphdyn.nn.attention_fused.temporal_attention`
            (same numbers, faster, far less memory in training); False uses plain autograd.
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
        fused: bool = True,
    ):
        super().__init__()
        self.act = act
        self.fused = fused
        self.channels = channels
        self.causal = causal
        self.sign = (1 if channels is None else -1) if sign is None else sign
        self.query = MLP([hidden, hidden, hidden], act=act, final_act=True)
        self.key = MLP([hidden, hidden, hidden], act=act, final_act=True)
        self.value = MLP([hidden, hidden, hidden], act=act, final_act=True)
        self.coord = MLP([hidden, hidden, 1 if channels is None else channels], act=act, final_bias=False)
        if coord_gain is not None:
            nn.init.xavier_uniform_(self.coord[-1].weight, gain=coord_gain)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Update ``(h, x)``; shapes in the module docstring."""
        if self.fused and self.act in ACTS:
            return self._forward_fused(h, x)
        T = h.shape[-2]
        q, k, v = self.query(h), self.key(h), self.value(h)
        scores = q @ k.transpose(-1, -2)  # [..., T, S]
        if self.causal:
            mask = torch.ones(T, T, dtype=torch.bool, device=h.device).triu_(1)
            scores = scores + torch.zeros(T, T, dtype=h.dtype, device=h.device).masked_fill_(mask, float("-inf"))
        # softmax over s written out: PyTorch's kernel is slow on a last axis this short (T ~ 10);
        # the max is a constant shift (no gradient in exact arithmetic), so it is detached
        e = (scores - scores.detach().amax(-1, keepdim=True)).exp()
        alpha = e / e.sum(-1, keepdim=True)
        h = h + alpha @ v
        phi = self.coord(v)  # [..., S, 1 | C]
        # sum_s a(t,s) phi(s) (x(s) - x(t)) = (beta @ x)(t) - x(t) sum_s beta(t,s), beta = a * phi(s);
        # coordinates are first taken relative to the last frame so the difference of the two
        # terms cancels little even for far-from-origin coordinates in float32.
        y = x - x[..., -1:, :] if self.channels is None else x - x[..., -1:, :, :]
        if self.channels is None:
            beta = alpha * phi.transpose(-1, -2)  # [..., T, S]
            delta = beta @ y - y * beta.sum(-1, keepdim=True)
        else:
            beta = alpha.unsqueeze(-3) * phi.movedim(-1, -2).unsqueeze(-2)  # [..., C, T, S]
            yc = y.movedim(-2, -3)  # [..., C, T, D]
            delta = (beta @ yc - yc * beta.sum(-1, keepdim=True)).movedim(-3, -2)  # [..., T, C, D]
        return h, x + delta if self.sign > 0 else x - delta

    def _forward_fused(self, h: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mlps = (self.query, self.key, self.value)
        # the three projections read the same h: one stacked first layer, one block-diagonal second
        W1 = torch.cat([m[0].weight for m in mlps])
        b1 = torch.cat([m[0].bias for m in mlps])
        W2 = torch.block_diag(*(m[2].weight for m in mlps))
        b2 = torch.cat([m[2].bias for m in mlps])
        cfg = AttentionConfig(act=self.act, slope=getattr(self.query[1], "negative_slope", 0.2), channels=self.channels,
                              causal=self.causal, sign=self.sign, chunk_rows=attention_fused.CHUNK_ROWS,
                              store_bytes=attention_fused.STORE_BYTES)
        c = self.coord
        return temporal_attention(h, x, W1, b1, W2, b2, c[0].weight, c[0].bias, c[2].weight, cfg)
