"""TemporalAttention: causal mask, what moves, sign convention, equivariance."""

from __future__ import annotations

import pytest
import torch

from graphdyn.nn.temporal_attention import TemporalAttention

H, T = 6, 5


def layer(channels=None, causal=True, gain=1.0, sign=None):
    torch.manual_seed(0)
    return TemporalAttention(H, channels=channels, causal=causal, coord_gain=gain, sign=sign).double()


def data(channels=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    node = ((channels,) if channels else ()) + (3,)
    return torch.randn(4, 2, T, H, generator=g, dtype=torch.float64), torch.randn(4, 2, T, *node, generator=g, dtype=torch.float64)


def loop_reference(att, h, x):
    """Attention and coordinate update written per frame pair."""
    q, k, v = att.query(h), att.key(h), att.value(h)
    phi = att.coord(v)
    h_out, x_out = h.clone(), x.clone()
    for t in range(T):
        s_max = t + 1 if att.causal else T
        scores = torch.stack([(q[..., t, :] * k[..., s, :]).sum(-1) for s in range(s_max)], -1)
        a = torch.softmax(scores, -1)
        for s in range(s_max):
            h_out[..., t, :] += a[..., s, None] * v[..., s, :]
            if att.channels is None:
                x_out[..., t, :] += a[..., s, None] * (x[..., s, :] - x[..., t, :]) * phi[..., s, :]
            else:  # multi-channel: diag(phi) (X(t) - X(s))
                x_out[..., t, :, :] += a[..., s, None, None] * phi[..., s, :, None] * (x[..., t, :, :] - x[..., s, :, :])
    return h_out, x_out


@pytest.mark.parametrize("channels", [None, 4])
@pytest.mark.parametrize("causal", [True, False])
def test_matches_per_frame_loop(channels, causal):
    att = layer(channels, causal)
    h, x = data(channels)
    h1, x1 = att(h, x)
    h2, x2 = loop_reference(att, h, x)
    torch.testing.assert_close(h1, h2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x1, x2, rtol=1e-12, atol=1e-12)
    assert (x1 - x).abs().max() > 1e-3  # the coordinate update does move x


def test_causal_mask_freezes_frame_zero_and_ignores_the_future():
    att = layer()
    h, x = data()
    h1, x1 = att(h, x)
    assert torch.equal(x1[..., 0, :], x[..., 0, :])
    torch.testing.assert_close(h1[..., 0, :], h[..., 0, :] + att.value(h)[..., 0, :])
    h_f, x_f = h.clone(), x.clone()
    h_f[..., 3:, :] += 1.0
    x_f[..., 3:, :] += 1.0
    h2, x2 = att(h_f, x_f)
    torch.testing.assert_close(h2[..., :3, :], h1[..., :3, :])
    torch.testing.assert_close(x2[..., :3, :], x1[..., :3, :])
    # without the mask frame 0 sees later frames and moves
    _, x3 = layer(causal=False)(h, x)
    assert (x3[..., 0, :] - x[..., 0, :]).abs().max() > 1e-3


def test_sign_option_flips_the_coordinate_update():
    h, x = data()
    _, xp = layer(sign=1)(h, x)
    _, xm = layer(sign=-1)(h, x)
    torch.testing.assert_close(xp - x, x - xm)


@pytest.mark.parametrize("channels", [None, 2])
def test_rotation_translation_equivariance_float64(channels):
    att = layer(channels, causal=False)
    h, x = data(channels)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    shift = torch.randn(3, dtype=torch.float64) * 100
    h1, x1 = att(h, x)
    h2, x2 = att(h, x @ q.T + shift)
    torch.testing.assert_close(h2, h1)
    torch.testing.assert_close(x2, x1 @ q.T + shift, rtol=1e-10, atol=1e-10)
