"""sinusoidal_encoding: the table's entries, odd widths, dtype."""

from __future__ import annotations

import math

import pytest
import torch

from graphdyn.nn.positional_encoding import sinusoidal_encoding


@pytest.mark.parametrize("d", [8, 39])
def test_entries(d):
    pe = sinusoidal_encoding(10, d, dtype=torch.float64)
    assert pe.shape == (10, d)
    for t in (0, 3, 9):
        for i in range(0, d, 2):
            w = 10000 ** (-i / d)
            assert pe[t, i].item() == pytest.approx(math.sin(t * w), abs=1e-12)
            if i + 1 < d:
                assert pe[t, i + 1].item() == pytest.approx(math.cos(t * w), abs=1e-12)


def test_dtype_and_bad_sizes():
    assert sinusoidal_encoding(4, 6).dtype == torch.get_default_dtype()
    with pytest.raises(ValueError):
        sinusoidal_encoding(4, 0)
