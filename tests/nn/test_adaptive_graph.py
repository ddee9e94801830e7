"""AdaptiveGraphConv: Chebyshev supports, the learned row-stochastic graph, the formula, one frame at a time."""

from __future__ import annotations

import pytest
import torch

from graphdyn.nn.adaptive_graph import AdaptiveGraphConv, chebyshev_supports

N = 5


def test_chebyshev_recursion():
    S = torch.rand(N, N, dtype=torch.float64)
    I = torch.eye(N, dtype=torch.float64)
    sup = chebyshev_supports(S, 4)
    want = torch.stack([I, S, 2 * S @ S - I, 2 * S @ (2 * S @ S - I) - S])
    torch.testing.assert_close(sup, want)
    torch.testing.assert_close(chebyshev_supports(S, 1), I[None])
    with pytest.raises(ValueError):
        chebyshev_supports(S, 0)


def test_learned_graph_is_row_stochastic_and_formula_holds():
    torch.manual_seed(0)
    conv = AdaptiveGraphConv(N, 4, 3, order=3).double()
    emb = torch.randn(N, 16, dtype=torch.float64)
    sup = conv.supports(emb)
    S = torch.softmax(torch.relu(conv.mix(emb @ emb.T)), dim=1)
    torch.testing.assert_close(sup[1], S)
    torch.testing.assert_close(S.sum(1), torch.ones(N, dtype=torch.float64))
    x = torch.randn(2, 6, N, 4, dtype=torch.float64)  # [B, T, N, F]
    want = conv.linear(torch.cat([torch.einsum("nm,btmf->btnf", sup[k], x) for k in range(3)], -1))
    torch.testing.assert_close(conv(x, emb), want)


def test_each_frame_of_each_sample_is_convolved_alone():
    torch.manual_seed(0)
    conv = AdaptiveGraphConv(N, 4, 3).double()
    emb = torch.randn(N, 16, dtype=torch.float64)
    x = torch.randn(2, 6, N, 4, dtype=torch.float64)
    x2 = x.clone()
    x2[1, 3, 2] += 1.0
    changed = (conv(x2, emb) - conv(x, emb)).abs().amax((-1, -2)) > 0  # [B, T]
    expect = torch.zeros_like(changed)
    expect[1, 3] = True
    assert torch.equal(changed, expect)
