"""Fused temporal attention: the same values and gradients as plain autograd, gradcheck in float64."""

from __future__ import annotations

import pytest
import torch

from graphdyn.nn import attention_fused
from graphdyn.nn.attention_fused import AttentionConfig, temporal_attention
from graphdyn.nn.temporal_attention import TemporalAttention

H, T = 4, 5


def build(channels=None, act="silu", causal=True, sign=None, seed=0):
    torch.manual_seed(seed)
    att = TemporalAttention(H, channels=channels, act=act, causal=causal, sign=sign, coord_gain=1.0).double()
    g = torch.Generator().manual_seed(seed + 1)
    node = ((channels,) if channels else ()) + (3,)
    h = torch.randn(3, 2, T, H, generator=g, dtype=torch.float64, requires_grad=True)
    x = (10 * torch.randn(3, 2, T, *node, generator=g, dtype=torch.float64)).requires_grad_(True)
    return att, h, x


@pytest.mark.parametrize("store", [False, True], ids=["recompute", "store"])
@pytest.mark.parametrize("chunk_rows", [1, 12, 10_000])
@pytest.mark.parametrize(
    "channels,act,causal,sign",
    [(None, "silu", True, None), (None, "tanh", False, -1), (4, "leaky_relu", True, None), (2, "gelu", False, 1)],
)
def test_fused_matches_plain_autograd(channels, act, causal, sign, chunk_rows, store, monkeypatch):
    monkeypatch.setattr(attention_fused, "STORE_BYTES", 1 << 40 if store else 0)
    monkeypatch.setattr(attention_fused, "CHUNK_ROWS", chunk_rows)
    att, h, x = build(channels, act, causal, sign)
    res = {}
    for fused in (False, True):
        att.fused = fused
        g = torch.Generator().manual_seed(5)
        h1, x1 = att(h, x)
        loss = (h1 * torch.randn(h1.shape, generator=g, dtype=h1.dtype)).sum() + (x1 * torch.randn(x1.shape, generator=g, dtype=x1.dtype)).sum()
        res[fused] = (h1.detach(), x1.detach(), torch.autograd.grad(loss, [h, x, *att.parameters()]))
    (hp, xp, gp), (hf, xf, gf) = res[False], res[True]
    torch.testing.assert_close(hf, hp, rtol=0, atol=1e-12)
    torch.testing.assert_close(xf, xp, rtol=0, atol=1e-12)
    names = ["h", "x"] + [n for n, _ in att.named_parameters()]
    for name, a, b in zip(names, gf, gp):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("channels", [None, 2])
def test_gradcheck_float64(channels):
    g = torch.Generator().manual_seed(0)
    C = channels or 1
    R = 3
    h = torch.randn(R, T, H, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(R, T, *(((channels,) if channels else ()) + (3,)), generator=g, dtype=torch.float64, requires_grad=True)
    shapes = [(3 * H, H), (3 * H,), (3 * H, 3 * H), (3 * H,), (H, H), (H,), (C, H)]
    w = [torch.randn(s, generator=g, dtype=torch.float64).mul_(0.5).requires_grad_(True) for s in shapes]
    cfg = AttentionConfig(channels=channels, causal=True, sign=1 if channels is None else -1, chunk_rows=2 * T)
    assert torch.autograd.gradcheck(lambda h, x, *w: temporal_attention(h, x, *w, cfg), (h, x, *w), eps=1e-6, atol=1e-6)
