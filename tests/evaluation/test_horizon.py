"""The decorrelation horizon on an oscillator whose autocorrelation is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.evaluation.horizon import short_horizon


def oscillators(omega: float, S: int = 64, K: int = 120):
    """``x_s(k) = cos(omega k + 2 pi s / S)``, one node in 1-D: with evenly spread phases,
    copy-last's MSE is exactly ``1 - cos(omega k)`` and the variance over starts and whole
    periods exactly 1/2, so the autocorrelation is ``rho(k) = cos(omega k)``."""
    phase = 2 * math.pi * torch.arange(S, dtype=torch.float64) / S
    k = torch.arange(0, K + 1, dtype=torch.float64)
    x = torch.cos(omega * k[None, :] + phase[:, None])[..., None, None]  # [S, K+1, 1, 1]
    return x[:, 0], x[:, 1:]


def test_horizon_is_where_the_autocorrelation_falls_to_one_half():
    omega = math.pi / 3 / 10.5  # cos(omega k) = 1/2 at k = 10.5: H = 11
    start, truth = oscillators(omega, K=126)  # 2 whole periods (period 63)
    noise = 1e-3 * torch.randn(truth.shape, dtype=torch.float64)
    sim = truth + 1e-4
    res = short_horizon(truth + noise, truth, start, simulator=sim, against="recorded frames")
    assert res.horizon == 11 and res.decorrelated
    k = np.arange(1, 127)
    np.testing.assert_allclose(res.copy_last, 1 - np.cos(omega * k), atol=1e-12)
    s = res.summary()
    assert s["copy_last_mse"] == pytest.approx(np.mean(1 - np.cos(omega * k[:11])), abs=1e-12)
    assert s["model_mse"] == pytest.approx(1e-6, rel=0.1) and s["simulator_mse"] == pytest.approx(1e-8)
    assert s["model_over_copy_last"] < 1e-3 and s["starts_used"] == 64


def test_fixed_horizon_and_never_decorrelated():
    start, truth = oscillators(2 * math.pi / 2000, S=8, K=50)  # a slow oscillator: rho stays near 1
    res = short_horizon(truth, truth, start)
    assert res.horizon == 50 and not res.decorrelated and "whole rollout" in res.rule
    fixed = short_horizon(truth, truth, start, horizon=7)
    assert fixed.horizon == 7 and "fixed" in fixed.rule
    assert short_horizon(truth, truth, start, horizon=500).horizon == 50
    with pytest.raises(GraphdynError, match="eval.short_horizon"):
        short_horizon(truth, truth, start, horizon=0)


def test_diverged_starts_are_left_out_and_counted():
    start, truth = oscillators(math.pi / 3 / 10.5, S=8, K=63)
    pred = truth + 0.01
    pred[2, 5:] = float("nan")  # before H = 11: left out
    pred[5, 30:] = float("inf")  # after H: kept
    s = short_horizon(pred, truth, start).summary()
    assert s["starts_used"] == 7 and s["model_mse"] == pytest.approx(1e-4)
    pred[:, 0] = float("nan")
    s = short_horizon(pred, truth, start).summary()
    assert s["starts_used"] == 0 and s["model_mse"] is None and "model_over_copy_last" not in s
