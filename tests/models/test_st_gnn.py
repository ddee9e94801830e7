"""ST_GNN: input and output widths per layout, each path, frames independent, pooling, what it is not."""

from __future__ import annotations

import pytest
import torch

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model

B, T, N, K = 2, 5, 6, 3
EDGES = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 0], [1, 0, 2, 1, 3, 2, 4, 3, 5, 4, 3]])


def make(channels=None, params=None, edge_attr_dim=K, seed=0):
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
    return build_model("st_gnn", params or {}, info).double(), batch


def run(model, batch):
    trace = {}
    out = model.run(batch.x, batch.node_attr, batch.edge_index, batch.edge_attr, trace=trace)
    return out, trace


@pytest.mark.parametrize("channels", [None, 4])
def test_shapes_and_widths_per_layout(channels):
    model, batch = make(channels)
    multi = channels is not None
    assert model.target == "position" and not model.equivariant and model.symmetries == ("permutation",)
    coords = 12 if multi else 3
    assert model.net.embed.in_features == 2 + coords  # [a_i, vec X_i(t)]: e.g. AdK 4 charges + 12 coordinates
    assert model.net.decoder[2].out_features == coords
    assert model.net.layers[0].message[0].in_features == 2 * 16 + K
    assert type(model.net.layers[0].message[1]).__name__ == ("LeakyReLU" if multi else "SiLU")
    out, trace = run(model, batch)
    assert out.shape == batch.target_x.shape and torch.equal(model(batch), out)
    assert set(trace) == {"layers.0.h", "layers.1.h", "decoded", "x_hat"}
    assert trace["decoded"].shape == batch.x.shape


def test_each_path_changes_what_it_claims():
    model, batch = make()
    out, trace = run(model, batch)
    assert (trace["layers.1.h"] - trace["layers.0.h"]).abs().max() > 1e-3
    # absolute coordinates are inputs: shifting every frame changes the output by something else than the shift
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    moved = model(Batch(**{**batch.__dict__, "x": batch.x + shift}))
    assert (moved - (out + shift)).abs().max() > 1e-3
    # edge attributes enter the messages
    assert (model(Batch(**{**batch.__dict__, "edge_attr": batch.edge_attr + 1.0})) - out).abs().max() > 1e-6
    # the time embedding reaches frame t only
    with torch.no_grad():
        model.net.time_embed.weight[4] += 1.0
    _, bumped = run(model, batch)
    diff = (bumped["decoded"] - trace["decoded"]).abs().amax((2, 3))
    assert diff[:, 4].min() > 1e-6 and diff[:, :4].max() == 0
    w = torch.softmax(model.net.pool.weights, 0)
    torch.testing.assert_close(bumped["x_hat"], torch.einsum("t,btnd->bnd", w, bumped["decoded"]))


@pytest.mark.parametrize("channels", [None, 4])
def test_frames_are_independent(channels):
    model, batch = make(channels)
    _, base = run(model, batch)
    x = batch.x.clone()
    x[:, 3, 2] += 0.3
    _, bumped = run(model, Batch(**{**batch.__dict__, "x": x}))
    for name in ("layers.0.h", "layers.1.h", "decoded"):
        diff = (bumped[name] - base[name]).abs().flatten(3).amax(-1)
        assert diff[:, 3].max() > 1e-8 and torch.cat([diff[:, :3], diff[:, 4:]], 1).max() == 0, name


def test_pooling_weights_sum_to_one():
    """A decoder that outputs its bias alone: every frame decodes to it, and so must the average."""
    model, batch = make()
    with torch.no_grad():
        model.net.decoder[2].weight.zero_()
        model.net.decoder[2].bias.copy_(torch.tensor([1.5, -2.0, 3.0]))
        model.net.pool.weights.copy_(torch.linspace(-1, 1, T))
    out = model(batch)
    torch.testing.assert_close(out, torch.tensor([1.5, -2.0, 3.0], dtype=torch.float64).expand_as(out), rtol=1e-14, atol=1e-14)


def test_permutation_equivariant_only():
    from graphdyn.testing import assert_equivariant

    model, batch = make()
    report = assert_equivariant(model, batch, n_trials=1)
    assert report.get("prediction", "permutation").max_abs < 1e-10
    assert report.get("prediction", "rotation").max_abs > 1e-3  # measured, not claimed


def test_every_parameter_gets_a_gradient_and_missing_edge_attributes_are_reported():
    model, batch = make()
    ((model(batch) - batch.target_x) ** 2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(GraphdynError, match="edge attributes"):
        model(Batch(**{**batch.__dict__, "edge_attr": None}))
    plain, batch = make(edge_attr_dim=0)
    assert plain.net.layers[0].edge_attr_dim == 0 and plain(batch).shape == batch.target_x.shape
