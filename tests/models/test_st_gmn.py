"""ST_GMN: multi-channel only, the authors' settings, two passes, the clamp (native = torch backend), frames independent."""

from __future__ import annotations

import pytest
import torch

from graphdyn import native
from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DEFAULT_SYMMETRIES, DataInfo
from graphdyn.models.registry import build_model
from graphdyn.testing import assert_equivariant

B, T, N, C, K = 2, 4, 6, 4, 1
EDGES = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 0], [1, 0, 2, 1, 3, 2, 4, 3, 5, 4, 3]])


def make(params=None, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    batch = Batch(
        x=scale * torch.randn(B, T, N, C, 3, generator=g, dtype=torch.float64),
        target_x=torch.randn(B, N, C, 3, generator=g, dtype=torch.float64),
        node_attr=torch.randn(B, N, 4, generator=g, dtype=torch.float64),
        edge_index=EDGES,
        edge_attr=torch.rand(EDGES.shape[1], K, generator=g, dtype=torch.float64),
        dt=1.0,
    )
    info = DataInfo(dim=3, channels=C, node_attr_dim=4, edge_attr_dim=K, T=T, n_nodes=N, has_velocities=False)
    torch.manual_seed(seed)
    return build_model("st_gmn", params or {}, info).double(), batch


def enliven(model, scale=0.5):
    with torch.no_grad():
        for layer in model.net.layers:
            layer.coord[2].weight.normal_(0, scale)


def run(model, batch):
    trace = {}
    out = model.run(batch.x, batch.node_attr, batch.edge_index, batch.edge_attr, trace=trace)
    return out, trace


def test_the_authors_settings_and_multi_channel_only():
    model, batch = make()
    assert model.layouts == ("multi",) and model.equivariant and model.symmetries == DEFAULT_SYMMETRIES
    assert model.params.passes == 2
    layer = model.net.layers[0]
    assert type(layer.message[1]).__name__ == "LeakyReLU"
    assert layer.clamp == 100.0 and layer.coord_weight == 3.0 and layer.coord[2].out_features == C
    assert layer.message[0].in_features == 2 * 16 + C * C + K  # normalised Gram radial, edge attributes
    out, trace = run(model, batch)
    assert out.shape == batch.target_x.shape and torch.equal(model(batch), out)
    assert set(trace) == {f"{p}layers.{l}.{v}" for p in ("", "pass.1.") for l in (0, 1) for v in "hx"} | {"x_hat"}
    info = DataInfo(dim=3, channels=None, node_attr_dim=4, edge_attr_dim=K, T=T, n_nodes=N, has_velocities=False)
    with pytest.raises(GraphdynError, match="model 'st_gmn' takes multi-channel data"):
        build_model("st_gmn", {}, info)


def test_the_second_pass_continues_from_the_first():
    model, batch = make()
    enliven(model)
    twice, trace = run(model, batch)
    once_model, _ = make({"passes": 1})
    once_model.load_state_dict(model.state_dict())
    once, once_trace = run(once_model, batch)
    assert set(once_trace) == {"layers.0.h", "layers.0.x", "layers.1.h", "layers.1.x", "x_hat"}
    for name in once_trace:
        if name != "x_hat":
            torch.testing.assert_close(once_trace[name], trace[name], rtol=0, atol=0)  # pass 0 is the single pass
    assert (trace["pass.1.layers.1.x"] - trace["layers.1.x"]).abs().max() > 1e-3  # pass 1 moves further
    assert (twice - once).abs().max() > 1e-3
    w = torch.softmax(model.net.pool.weights, 0)
    torch.testing.assert_close(twice, torch.einsum("t,btncd->bncd", w, trace["pass.1.layers.1.x"]))


def test_the_clamp_bites_on_large_coordinates_and_both_backends_apply_it():
    model, batch = make(scale=300.0)
    enliven(model, scale=2.0)
    loose, _ = make({"clamp": None}, scale=300.0)
    loose.load_state_dict(model.state_dict())
    assert (model(batch) - loose(batch)).abs().max() > 1.0
    x = batch.x.clone().requires_grad_()
    results = []
    for backend in ("native" if native.available() else "torch", "torch"):
        for layer in model.net.layers:
            layer.backend = backend
        out = model(Batch(**{**batch.__dict__, "x": x}))
        grads = torch.autograd.grad((out**2).mean(), [x, *model.parameters()], allow_unused=True)
        results.append((out, grads))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-12, atol=1e-9)
    for a, b in zip(results[0][1], results[1][1]):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_frames_are_independent_and_pooling_weights_sum_to_one():
    model, batch = make()
    enliven(model)
    _, base = run(model, batch)
    x = batch.x.clone()
    x[:, 2, 5] += 0.3
    _, bumped = run(model, Batch(**{**batch.__dict__, "x": x}))
    for name in ("layers.0.x", "pass.1.layers.1.h", "pass.1.layers.1.x"):
        diff = (bumped[name] - base[name]).abs().flatten(3).amax(-1)
        assert diff[:, 2].max() > 1e-8 and torch.cat([diff[:, :2], diff[:, 3:]], 1).max() == 0, name
    with torch.no_grad():
        for layer in model.net.layers:
            layer.coord[2].weight.zero_()
    same = batch.x[:, :1].expand_as(batch.x).contiguous()
    torch.testing.assert_close(model(Batch(**{**batch.__dict__, "x": same})), batch.x[:, 0], rtol=1e-14, atol=1e-14)


def test_e_n_and_permutation_equivariance_with_live_coordinate_heads():
    model, batch = make()
    enliven(model, scale=0.2)
    report = assert_equivariant(model, batch, n_trials=1)
    assert report.get("prediction", "reflection").max_abs < 1e-8
