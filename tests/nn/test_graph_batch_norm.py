"""GraphBatchNorm: what each mode normalises over, node relabelling, samples apart in eval mode."""

from __future__ import annotations

import pytest
import torch

from graphdyn.nn.graph_batch_norm import GraphBatchNorm


def test_channel_mode_normalises_each_feature_over_everything_else():
    h = torch.randn(5, 3, 6, 4, dtype=torch.float64) * torch.tensor([1.0, 2, 3, 4]) + 7  # [N, B, T, F]
    y = GraphBatchNorm(4, "channel").double()(h)
    torch.testing.assert_close(y.mean((0, 1, 2)), torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(y.var((0, 1, 2), unbiased=False), torch.ones(4, dtype=torch.float64), atol=1e-4, rtol=0)
    perm = torch.randperm(5)
    torch.testing.assert_close(GraphBatchNorm(4, "channel").double()(h[perm]), y[perm])


def test_node_mode_normalises_each_node():
    h = torch.randn(5, 3, 6, 4, dtype=torch.float64) + torch.arange(5.0).double()[:, None, None, None]
    y = GraphBatchNorm(5, "node").double()(h)
    torch.testing.assert_close(y.mean((1, 2, 3)), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("over,size", [("channel", 4), ("node", 5)])
def test_eval_mode_keeps_samples_apart(over, size):
    norm = GraphBatchNorm(size, over).double()
    h = torch.randn(5, 3, 6, 4, dtype=torch.float64)
    norm(h)  # one training step moves the running statistics
    norm.eval()
    h2 = h.clone()
    h2[:, 1] += 1.0
    changed = (norm(h2) - norm(h)).abs().amax((0, 2, 3)) > 0
    assert changed.tolist() == [False, True, False]


def test_unknown_mode():
    with pytest.raises(ValueError):
        GraphBatchNorm(4, "time")
