"""Pre-LN Transformer encoder layer with bias-free projections, for any width (AGL-STAN's time attention).

Self-attention over a sequence of T tokens of width d (Vaswani et al. 2017, with the
layer normalisation before each sub-layer, Xiong et al. 2020)::

    y = LN_1(z);   z <- z + W_o MHA(W_q y, W_k y, W_v y)
    y = LN_2(z);   z <- z + W_2 ReLU(W_1 y + b_1) + b_2

``heads`` heads of width ``d_h = max(1, d // heads)`` each; the projections map d to
``heads * d_h`` and back, so d need not be divisible by ``heads`` (as in the ESTAG authors'
AGL-STAN, whose tokens are N * 3 coordinates wide, e.g. 39 for aspirin). Scores are scaled
by ``1 / sqrt(d_h)``; LN epsilon 1e-6; no dropout. ``torch.nn.TransformerEncoderLayer``
needs d divisible by the head count, hence this layer.

Shapes: ``z [B, T, d] -> [B, T, d]`` (batch first; B may be several leading axes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PreNormTransformerLayer(nn.Module):
    """One pre-LN encoder layer; see the module docstring.

    Args:
        d_model: token width d.
        heads: number of heads.
        ffn: hidden width of the feed-forward block.
        eps: LayerNorm epsilon.
    """

    def __init__(self, d_model: int, heads: int = 6, ffn: int = 32, eps: float = 1e-6):
        super().__init__()
        if d_model < 1 or heads < 1 or ffn < 1:
            raise ValueError(f"d_model, heads and ffn must be positive, got {d_model}, {heads}, {ffn}")
        self.heads = heads
        self.head_dim = max(1, d_model // heads)
        inner = heads * self.head_dim
        self.norm_attn = nn.LayerNorm(d_model, eps=eps)
        self.qkv = nn.Linear(d_model, 3 * inner, bias=False)
        self.out = nn.Linear(inner, d_model, bias=False)
        self.norm_ffn = nn.LayerNorm(d_model, eps=eps)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn), nn.ReLU(), nn.Linear(ffn, d_model))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Attend over the token axis (second to last) of ``z [..., T, d]``."""
        q, k, v = self.qkv(self.norm_attn(z)).unflatten(-1, (3, self.heads, self.head_dim)).unbind(-3)  # [..., T, h, d_h]
        a = F.scaled_dot_product_attention(q.transpose(-3, -2), k.transpose(-3, -2), v.transpose(-3, -2))  # [..., h, T, d_h]
        z = z + self.out(a.transpose(-3, -2).flatten(-2))
        return z + self.ffn(self.norm_ffn(z))
