"""frame_features: every entry lands at its node, sample and frame in both layouts (tagged inputs)."""

from __future__ import annotations

import pytest
import torch

from graphdyn.nn.node_features import frame_features

B, T, N = 3, 4, 5


def tagged(channels):
    """x[b, t, n, (c,) d] = 10000 b + 1000 n + 100 t + 10 c + d; node_attr[b, n, k] = -(100 b + 10 n + k)."""
    b, t, n = torch.meshgrid(torch.arange(B), torch.arange(T), torch.arange(N), indexing="ij")
    base = (10000 * b + 1000 * n + 100 * t).double()[..., None]
    if channels:
        base = base[..., None] + 10 * torch.arange(channels).double()[:, None]
    x = base + torch.arange(3).double()
    bb, nn_ = torch.meshgrid(torch.arange(B), torch.arange(N), indexing="ij")
    a = -(100 * bb + 10 * nn_).double()[..., None] - torch.arange(2).double()
    return x, a


@pytest.mark.parametrize("channels", [None, 4])
def test_tags_land_in_place(channels):
    x, a = tagged(channels)
    u = frame_features(x, a)
    un = frame_features(x, a, node_major=True)
    C = channels or 1
    assert u.shape == (B, T, N, 2 + 3 * C) and un.shape == (N, B, T, 2 + 3 * C)
    for b in range(B):
        for t in range(T):
            for n in range(N):
                want = torch.cat([a[b, n], x[b, t, n].flatten()])
                assert torch.equal(u[b, t, n], want) and torch.equal(un[n, b, t], want)
    # channel-major flattening: channel c, component d at 2 + 3 c + d
    if channels:
        assert u[1, 2, 3, 2 + 3 * 2 + 1].item() == 10000 + 3000 + 200 + 20 + 1


def test_mismatched_attributes():
    x, a = tagged(None)
    with pytest.raises(ValueError, match="node_attr"):
        frame_features(x, a[:, :-1])
