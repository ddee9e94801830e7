"""EGNNLayer: shapes in both layouts, what each update path changes, aggregation, clamp, equivariance."""

from __future__ import annotations

import pytest
import torch

from graphdyn.nn.egnn import EGNNLayer

N, H = 5, 8
# receiver row, sender row; node 4 sends to 0 but receives nothing
EDGES = torch.tensor([[0, 1, 1, 2, 2, 3, 0], [1, 0, 2, 1, 3, 2, 4]])


def random_rotation(gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def inputs(channels=None, lead=(2, 3), dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    node = (N,) + ((channels,) if channels else ()) + (3,)
    return torch.randn(*lead, N, H, generator=g, dtype=dtype), torch.randn(*lead, *node, generator=g, dtype=dtype)


def big_coord_layer(**kw) -> EGNNLayer:
    torch.manual_seed(0)
    return EGNNLayer(H, coord_gain=1.0, **kw).double()


@pytest.mark.parametrize("channels", [None, 4])
def test_shapes_and_node_major_layout_agree(channels):
    layer = big_coord_layer(channels=channels, edge_attr_dim=2, node_attr_dim=3)
    h, x = inputs(channels)
    e = torch.randn(2, 1, EDGES.shape[1], 2, dtype=torch.float64)  # shared by the 3 frames
    a = torch.randn(2, 1, N, 3, dtype=torch.float64)
    h1, x1 = layer(h, x, EDGES, e, a)
    assert h1.shape == h.shape and x1.shape == x.shape
    # the same numbers node-major: [N, B, T, ...] with node_dim=0
    h2, x2 = layer(h.movedim(2, 0), x.movedim(2, 0), EDGES, e.movedim(2, 0), a.movedim(2, 0), node_dim=0)
    torch.testing.assert_close(h2.movedim(0, 2), h1)
    torch.testing.assert_close(x2.movedim(0, 2), x1)


def test_coordinate_update_moves_x_and_can_be_switched_off():
    h, x = inputs()
    _, x1 = big_coord_layer()(h, x, EDGES)
    assert (x1 - x).abs().max() > 1e-3
    torch.manual_seed(0)
    frozen = EGNNLayer(H, update_coords=False).double()
    h2, x2 = frozen(h, x, EDGES)
    assert torch.equal(x2, x) and (h2 - h).abs().max() > 1e-3


def test_small_gain_starts_with_tiny_coordinate_updates():
    torch.manual_seed(0)
    h, x = inputs()
    _, x1 = EGNNLayer(H).double()(h, x, EDGES)  # Xavier gain 0.001 on the last coordinate Linear
    assert 0 < (x1 - x).abs().max() < 1e-2


def test_node_without_incoming_edges_keeps_its_coordinates_and_gets_no_messages():
    h, x = inputs()
    layer = big_coord_layer()
    h1, x1 = layer(h, x, EDGES)
    assert torch.equal(x1[..., 4, :], x[..., 4, :])
    # moving node 4's receivers changes nothing at node 4 except through its own h
    x_moved = x.clone()
    x_moved[..., 0, :] += 1.0
    h2, _ = layer(h, x_moved, EDGES)
    torch.testing.assert_close(h2[..., 4, :], h1[..., 4, :])


def test_mean_is_sum_divided_by_in_degree():
    h, x = inputs()
    mean = big_coord_layer(coord_agg="mean")
    total = big_coord_layer(coord_agg="sum")
    total.load_state_dict(mean.state_dict())
    deg = torch.bincount(EDGES[0], minlength=N).clamp(min=1).double()[:, None]
    _, xm = mean(h, x, EDGES)
    _, xs = total(h, x, EDGES)
    torch.testing.assert_close((xs - x) / deg, xm - x)


def test_clamp_bounds_each_edge_update():
    h, x = inputs()
    x = x * 1000  # huge relative vectors
    layer = big_coord_layer(clamp=0.5, coord_agg="sum")
    _, x1 = layer(h, x, EDGES)
    deg = torch.bincount(EDGES[0], minlength=N).double()[:, None]
    assert ((x1 - x).abs() <= 0.5 * deg + 1e-12).all()
    _, x2 = big_coord_layer(coord_agg="sum")(h, x, EDGES)
    assert ((x2 - x).abs() > 0.5 * deg + 1e-6).any()


def test_edge_and_node_attributes_enter_the_features():
    h, x = inputs()
    layer = big_coord_layer(edge_attr_dim=1, node_attr_dim=1)
    e0 = torch.zeros(EDGES.shape[1], 1, dtype=torch.float64)
    a0 = torch.zeros(N, 1, dtype=torch.float64)
    h0, _ = layer(h, x, EDGES, e0, a0)
    h1, _ = layer(h, x, EDGES, e0 + 1, a0)
    h2, _ = layer(h, x, EDGES, e0, a0 + 1)
    assert (h1 - h0).abs().max() > 1e-4 and (h2 - h0).abs().max() > 1e-4


@pytest.mark.parametrize("channels,unit", [(None, False), (None, True), (3, False)])
def test_rotation_translation_equivariance_float64(channels, unit):
    g = torch.Generator().manual_seed(3)
    layer = big_coord_layer(channels=channels, unit_vectors=unit, clamp=100.0)
    h, x = inputs(channels)
    Q, t = random_rotation(g), torch.randn(3, generator=g, dtype=torch.float64)
    h1, x1 = layer(h, x, EDGES)
    h2, x2 = layer(h, x @ Q.T + t, EDGES)
    torch.testing.assert_close(h2, h1, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(x2, x1 @ Q.T + t, rtol=1e-10, atol=1e-10)


def test_edge_order_does_not_matter():
    h, x = inputs()
    layer = big_coord_layer(edge_attr_dim=1)
    e = torch.randn(EDGES.shape[1], 1, dtype=torch.float64)
    perm = torch.randperm(EDGES.shape[1])
    h1, x1 = layer(h, x, EDGES, e)
    h2, x2 = layer(h, x, EDGES[:, perm], e[perm])
    torch.testing.assert_close(h2, h1)
    torch.testing.assert_close(x2, x1)
