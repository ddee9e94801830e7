"""ST_EGNN: the authors' settings per layout, each update path, frames independent, pooling, symmetries."""

from __future__ import annotations

import pytest
import torch

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DEFAULT_SYMMETRIES, DataInfo
from graphdyn.models.registry import build_model
from graphdyn.testing import assert_equivariant

B, T, N, K = 2, 5, 6, 3
EDGES = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 0], [1, 0, 2, 1, 3, 2, 4, 3, 5, 4, 3]])


def make(channels=None, params=None, edge_attr_dim=K, seed=0, name="st_egnn"):
    g = torch.Generator().manual_seed(seed)
    node = (N,) + ((channels,) if channels else ()) + (3,)
    batch = Batch(
        x=torch.randn(B, T, *node, generator=g, dtype=torch.float64),
        target_x=torch.randn(B, *node, generator=g, dtype=torch.float64),
        node_attr=torch.randn(B, N, 2, generator=g, dtype=torch.float64),
        edge_index=EDGES,
        edge_attr=torch.randn(EDGES.shape[1], edge_attr_dim, generator=g, dtype=torch.float64) if edge_attr_dim else None,
        dt=1.0,
    )
    info = DataInfo(dim=3, channels=channels, node_attr_dim=2, edge_attr_dim=edge_attr_dim, T=T, n_nodes=N, has_velocities=False)
    torch.manual_seed(seed)
    return build_model(name, params or {}, info).double(), batch


def enliven(model, scale=0.5):
    """Give the tiny (gain 0.001) coordinate heads real weight, so coordinate updates show."""
    with torch.no_grad():
        for layer in model.net.layers:
            layer.coord[2].weight.normal_(0, scale)


def run(model, batch):
    trace = {}
    out = model.run(batch.x, batch.node_attr, batch.edge_index, batch.edge_attr, trace=trace)
    return out, trace


@pytest.mark.parametrize("channels", [None, 4])
def test_shapes_and_the_authors_settings_per_layout(channels):
    model, batch = make(channels)
    multi = channels is not None
    assert model.target == "position" and model.equivariant and model.symmetries == DEFAULT_SYMMETRIES
    assert model.params.hidden == 16 and model.params.layers == 2
    layer = model.net.layers[0]
    assert type(layer.message[1]).__name__ == ("LeakyReLU" if multi else "SiLU")
    assert layer.clamp == (None if multi else 100.0) and layer.coord_weight == (3.0 if multi else 1.0)
    assert not layer.unit_vectors and layer.coord_agg == "mean" and layer.message_agg == "sum"
    assert layer.edge_attr_dim == K and layer.coord[2].out_features == (4 if multi else 1)
    out, trace = run(model, batch)
    assert out.shape == batch.target_x.shape and torch.equal(model(batch), out)
    assert set(trace) == {"layers.0.h", "layers.0.x", "layers.1.h", "layers.1.x", "x_hat"}
    assert trace["layers.1.h"].shape == (B, T, N, 16) and trace["layers.1.x"].shape == batch.x.shape
    assert not any(name.startswith("net.decoder") for name, _ in model.named_parameters())


def test_clamp_and_coordinate_weight_overrides():
    model, _ = make(params={"clamp": float("inf"), "coord_weight": 2.0})
    assert model.net.layers[0].clamp is None and model.net.layers[0].coord_weight == 2.0
    model, _ = make(4, params={"clamp": 5.0})
    assert model.net.layers[0].clamp == 5.0


@pytest.mark.parametrize("channels", [None, 4])
def test_each_update_path_changes_what_it_claims(channels):
    model, batch = make(channels)
    enliven(model)
    out, trace = run(model, batch)
    assert (trace["layers.0.x"] - batch.x).abs().max() > 1e-3  # the layers move coordinates
    assert (trace["layers.1.h"] - trace["layers.0.h"]).abs().max() > 1e-3  # and update features
    # the time embedding reaches frame t only
    with torch.no_grad():
        model.net.time_embed.weight[3] += 1.0
    _, bumped = run(model, batch)
    diff = (bumped["layers.1.x"] - trace["layers.1.x"]).abs().flatten(3).amax(-1)
    assert diff[:, 3].max() > 1e-6 and torch.cat([diff[:, :3], diff[:, 4:]], 1).max() == 0
    # edge attributes enter the messages
    moved = Batch(**{**batch.__dict__, "edge_attr": batch.edge_attr + 1.0})
    assert (model(moved) - model(batch)).abs().max() > 1e-6
    # the pooled output is the softmax(theta)-weighted average of the updated frames
    w = torch.softmax(model.net.pool.weights, 0)
    torch.testing.assert_close(model(batch), torch.einsum("t,btn...->bn...", w, bumped["layers.1.x"]))


def test_frames_are_independent():
    model, batch = make()
    enliven(model)
    _, base = run(model, batch)
    x = batch.x.clone()
    x[:, 1, 0] += 0.3
    _, bumped = run(model, Batch(**{**batch.__dict__, "x": x}))
    for name in ("layers.0.x", "layers.1.h", "layers.1.x"):
        diff = (bumped[name] - base[name]).abs().flatten(3).amax(-1)
        assert diff[:, 1].max() > 1e-8 and torch.cat([diff[:, :1], diff[:, 2:]], 1).max() == 0, name


def test_pooling_weights_sum_to_one():
    """Frozen coordinates (zero coordinate heads) and identical frames: the pooled output is that frame."""
    model, batch = make()
    with torch.no_grad():
        for layer in model.net.layers:
            layer.coord[2].weight.zero_()
        model.net.pool.weights.copy_(torch.linspace(-1, 1, T))
    same = batch.x[:, :1].expand_as(batch.x).contiguous()
    torch.testing.assert_close(model(Batch(**{**batch.__dict__, "x": same})), batch.x[:, 0], rtol=1e-14, atol=1e-14)


def test_works_without_edge_attributes_and_reports_missing_ones():
    model, batch = make(edge_attr_dim=0)
    assert model.net.layers[0].edge_attr_dim == 0 and model(batch).shape == batch.target_x.shape
    model, batch = make(params={"use_edge_attr": False})
    assert model.net.layers[0].edge_attr_dim == 0
    model, batch = make()
    with pytest.raises(GraphdynError, match="edge attributes"):
        model(Batch(**{**batch.__dict__, "edge_attr": None}))
    with pytest.raises(GraphdynError, match="T=5"):
        model(Batch(**{**batch.__dict__, "x": batch.x[:, 1:]}))


@pytest.mark.parametrize("channels", [None, 4])
def test_e_n_and_permutation_equivariance_with_live_coordinate_heads(channels):
    model, batch = make(channels)
    enliven(model, scale=0.2)
    report = assert_equivariant(model, batch, n_trials=1)
    assert report.get("prediction", "rotation").max_abs < 1e-8


def test_every_parameter_but_the_last_node_update_gets_a_gradient_in_float32():
    model, batch = make()
    model = model.float()
    batch = batch.to(dtype=torch.float32)
    ((model(batch) - batch.target_x) ** 2).mean().backward()
    for name, p in model.named_parameters():
        if name.startswith("net.layers.1.node."):  # the last h update reaches no output (as in EGNN)
            assert p.grad is None, name
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
