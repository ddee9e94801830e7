import torch

from graphdyn.nn.scatter import scatter_mean, scatter_sum


def test_star_graph_aggregates_into_the_centre():
    # leaves 1..4 send to centre 0; the centre sends to every leaf
    i = torch.tensor([0, 0, 0, 0, 1, 2, 3, 4])
    msgs = torch.arange(1.0, 9.0)[:, None].repeat(1, 2)  # [E, 2]
    out = scatter_sum(msgs[None], i, 5, dim=1)[0]
    assert out[0].tolist() == [10.0, 10.0]  # 1 + 2 + 3 + 4
    assert out[1:, 0].tolist() == [5.0, 6.0, 7.0, 8.0]
    mean = scatter_mean(msgs, i, 6, dim=0)
    assert mean[0, 0] == 2.5 and mean[5].tolist() == [0.0, 0.0]  # node without edges gets 0


def test_scatter_over_leading_batch_axes():
    i = torch.tensor([1, 1, 0])
    src = torch.randn(3, 4, 3, 5)  # [B, T, E, F]
    out = scatter_sum(src, i, 2, dim=2)
    torch.testing.assert_close(out[:, :, 1], src[:, :, 0] + src[:, :, 1])
    torch.testing.assert_close(out[:, :, 0], src[:, :, 2])
