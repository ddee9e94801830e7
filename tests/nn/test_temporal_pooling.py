"""TemporalPooling: initial behaviour, the ETP and softmax formulas, the time axis argument."""

from __future__ import annotations

import pytest
import torch

from graphdyn.nn.temporal_pooling import TemporalPooling


def test_etp_starts_at_last_frame_and_follows_its_formula():
    x = torch.randn(2, 5, 3, 3, dtype=torch.float64)  # [B, T, N, D]
    pool = TemporalPooling(5, "etp").double()
    assert pool.weights.shape == (4,) and torch.equal(pool(x), x[:, -1])
    with torch.no_grad():
        pool.weights.copy_(torch.tensor([0.1, -0.2, 0.3, 0.05]))
    want = x[:, -1] + sum(pool.weights[t] * (x[:, t] - x[:, -1]) for t in range(4))
    torch.testing.assert_close(pool(x), want)


def test_softmax_starts_as_mean_and_is_affine():
    x = torch.randn(2, 4, 3, 2, 3, dtype=torch.float64)  # multi-channel
    pool = TemporalPooling(4, "softmax").double()
    assert pool.weights.shape == (4,)
    torch.testing.assert_close(pool(x), x.mean(1))
    with torch.no_grad():
        pool.weights.normal_()
    torch.testing.assert_close(pool(x + 7.0), pool(x) + 7.0)  # weights sum to one


def test_time_axis_argument():
    x = torch.randn(3, 2, 6, 3)  # node-major [N, B, T, D]
    pool = TemporalPooling(6)
    with torch.no_grad():
        pool.weights.uniform_()
    torch.testing.assert_close(pool(x, dim=2), pool(x.movedim(2, 1), dim=1))


def test_unknown_mode():
    with pytest.raises(ValueError):
        TemporalPooling(3, "mean")
