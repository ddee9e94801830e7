"""GatedTemporalConv: its formula, the frames it drops, the time axis argument, locality in time and nodes."""

from __future__ import annotations

import pytest
import torch

from graphdyn.nn.temporal_conv import GatedTemporalConv


@pytest.mark.parametrize("k", [1, 2, 3])
def test_formula_and_frames_out(k):
    torch.manual_seed(0)
    conv = GatedTemporalConv(3, 4, kernel_size=k).double()
    x = torch.randn(2, 7, 5, 3, dtype=torch.float64)  # [B, T, N, F]
    y = conv(x, dim=1)
    assert y.shape == (2, 8 - k, 5, 4)
    Wt = conv.linear.weight.view(3, 4, k, 3)  # [P/Q/R, out, tap, in]
    z = conv.linear.bias.view(3, 1, 1, 1, 4) + sum(
        torch.einsum("gof,btnf->gbtno", Wt[:, :, s], x[:, s : 8 - k + s]) for s in range(k)
    )
    torch.testing.assert_close(y, torch.relu(z[0] * torch.sigmoid(z[1]) + z[2]))


def test_time_axis_argument():
    torch.manual_seed(0)
    conv = GatedTemporalConv(3, 2).double()
    x = torch.randn(2, 6, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(conv(x.movedim(2, 0), dim=2).movedim(0, 2), conv(x, dim=1))


def test_a_frame_reaches_only_the_outputs_whose_kernel_covers_it_on_its_own_node():
    torch.manual_seed(0)
    conv = GatedTemporalConv(3, 8, kernel_size=2).double()
    x = torch.randn(2, 6, 5, 3, dtype=torch.float64)
    x2 = x.clone()
    x2[1, 3, 2] += 1.0  # sample 1, frame 3, node 2
    changed = (conv(x2) - conv(x)).abs().amax(-1) > 0  # [B, T-1, N]
    expect = torch.zeros_like(changed)
    expect[1, [2, 3], 2] = True  # output t reads frames t, t+1
    assert torch.equal(changed, expect)


def test_bad_input():
    conv = GatedTemporalConv(3, 2, kernel_size=3)
    with pytest.raises(ValueError, match="fewer than the kernel"):
        conv(torch.randn(1, 2, 4, 3))
    with pytest.raises(ValueError, match="feature"):
        conv(torch.randn(1, 2, 4, 3), dim=-1)
    with pytest.raises(ValueError):
        GatedTemporalConv(3, 2, kernel_size=0)
