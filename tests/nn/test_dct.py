"""DCT-II: orthonormal matrix, the cosine formula, inverse round trip along any axis."""

from __future__ import annotations

import math

import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.nn.dct import dct, dct_matrix, idct


@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_matrix_is_orthonormal(n):
    d = dct_matrix(n, dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64)
    torch.testing.assert_close(d @ d.T, eye, rtol=0, atol=1e-14)
    torch.testing.assert_close(d.T @ d, eye, rtol=0, atol=1e-14)


def test_matches_the_cosine_sum_written_out():
    n = 7
    x = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = [math.sqrt(1 / n)] + [math.sqrt(2 / n)] * (n - 1)
    ref = torch.tensor(
        [w[k] * sum(math.cos(math.pi * (t + 0.5) * k / n) * x[t].item() for t in range(n)) for k in range(n)],
        dtype=torch.float64,
    )
    torch.testing.assert_close(dct(x), ref, rtol=0, atol=1e-13)


def test_constant_sequence_has_only_the_zero_frequency():
    out = dct(torch.full((10,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(out[0], torch.tensor(2.0 * math.sqrt(10), dtype=torch.float64))
    assert out[1:].abs().max() < 1e-13


@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1, -2])
def test_inverse_round_trip_along_any_axis(dim):
    x = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    c = dct(x, dim=dim)
    assert c.shape == x.shape
    torch.testing.assert_close(idct(c, dim=dim), x, rtol=0, atol=1e-13)
    torch.testing.assert_close(dct(idct(x, dim=dim), dim=dim), x, rtol=0, atol=1e-13)


def test_transforms_each_series_along_the_chosen_axis_only():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 6, 3, generator=g, dtype=torch.float64)  # [B, N, T, D], time on axis 2
    d = dct_matrix(6, dtype=torch.float64)
    c = dct(x, dim=2)
    for b in range(2):
        for n in range(3):
            torch.testing.assert_close(c[b, n], d @ x[b, n], rtol=0, atol=1e-13)
    y = x.clone()
    y[1, 2, 4, 0] += 1.0  # one entry of one series: only that series' coefficients move
    delta = dct(y, dim=2) - c
    torch.testing.assert_close(delta[1, 2, :, 0], d[:, 4], rtol=0, atol=1e-13)
    delta[1, 2, :, 0] = 0
    assert delta.abs().max() < 1e-13


def test_keeps_the_input_dtype_and_rejects_an_empty_axis():
    assert dct(torch.randn(4, 3)).dtype == torch.float32
    assert dct(torch.randn(4, 3, dtype=torch.float64), dim=0).dtype == torch.float64
    with pytest.raises(GraphdynError, match="length 0"):
        dct_matrix(0)
