"""ESTAG: shapes for both data layouts, ablation switches, trace, gradients, equivariance in float64."""

from __future__ import annotations

import pytest
import torch

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model

B, T, N = 2, 6, 5
EDGES = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4, 4, 0], [1, 0, 2, 1, 3, 2, 4, 3, 0, 4]])


def make(channels=None, params=None, dtype=torch.float64, edge_attr_dim=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    node = (N,) + ((channels,) if channels else ()) + (3,)
    x = torch.randn(B, T, *node, generator=g, dtype=dtype)
    batch = Batch(
        x=x,
        target_x=torch.randn(B, *node, generator=g, dtype=dtype),
        node_attr=torch.randn(B, N, 2, generator=g, dtype=dtype),
        edge_index=EDGES,
        edge_attr=torch.randn(EDGES.shape[1], edge_attr_dim, generator=g, dtype=dtype) if edge_attr_dim else None,
        dt=1.0,
    )
    info = DataInfo(dim=3, channels=channels, node_attr_dim=2, edge_attr_dim=edge_attr_dim, T=T, n_nodes=N, has_velocities=False)
    torch.manual_seed(seed)
    model = build_model("estag", params or {}, info).to(dtype)
    return model, batch


def enliven(model):
    """Give the zero-initialised pooling and tiny coordinate heads real weight, so every path shows."""
    with torch.no_grad():
        model.pool.weights.uniform_(-0.5, 0.5)
        for name, p in model.named_parameters():
            if ".coord.2." in name:
                p.normal_(0, 0.5)


def rotation(seed=1):
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


@pytest.mark.parametrize("channels", [None, 4])
def test_shapes_defaults_and_fresh_model_predicts_last_processed_frame(channels):
    model, batch = make(channels)
    assert model.target == "position" and model.equivariant
    assert model.params.hidden == 16 and model.params.layers == 2 and model.params.pooling == "etp"
    act = type(model.layers[0]["spatial"].message[1]).__name__
    assert act == ("SiLU" if channels is None else "LeakyReLU")
    assert model.edft.eps == (1e-9 if channels is None else 1e-6)
    trace = {}
    out = model.run(batch.x, batch.node_attr, batch.edge_index, trace=trace)
    assert out.shape == batch.target_x.shape
    assert torch.equal(model(batch), out)
    # ETP weights start at 0: the prediction is the last frame leaving the last layer
    torch.testing.assert_close(out, trace["layers.1.temporal.x"][:, -1])
    assert trace["edft.A"].shape == (B, EDGES.shape[1], T - 1) and trace["edft.c"].shape == (B, N, T - 1)
    assert set(trace) == {"edft.A", "edft.c", "x_hat"} | {f"layers.{l}.{m}.{v}" for l in (0, 1) for m in ("spatial", "temporal") for v in "hx"}


def test_each_module_changes_what_it_claims():
    model, batch = make()
    enliven(model)
    trace = {}
    model.run(batch.x, batch.node_attr, batch.edge_index, trace=trace)
    x0 = batch.x
    sx, tx = trace["layers.0.spatial.x"], trace["layers.0.temporal.x"]
    assert (sx - x0).abs().max() > 1e-3  # ESM moves coordinates in every frame
    assert (tx - sx).abs().max() > 1e-3  # ETM moves them across frames...
    torch.testing.assert_close(tx[:, 0], sx[:, 0])  # ...but never frame 0 under the causal mask
    assert (trace["layers.0.temporal.h"] - trace["layers.0.spatial.h"]).abs().max() > 1e-3
    assert (trace["x_hat"] - trace["layers.1.temporal.x"][:, -1]).abs().max() > 1e-3  # ETP pools


@pytest.mark.parametrize(
    "params",
    [
        {"edft": False},
        {"etm": False},
        {"causal_mask": False},
        {"pooling": "softmax"},
        {"node_amplitude": "poster"},
        {"spectral_gate": False},
        {"layers": 1, "hidden": 8, "act": "tanh"},
    ],
    ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()),
)
def test_ablation_switches_change_the_prediction(params):
    base, batch = make()
    enliven(base)
    model, _ = make(params=params)
    own = model.state_dict()
    shared = {k: v for k, v in base.state_dict().items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(shared, strict=False)
    out = model(batch)
    assert out.shape == batch.target_x.shape and torch.isfinite(out).all()
    assert (out - base(batch)).abs().max() > 1e-6
    if "etm" in params:
        assert all("temporal" not in block for block in model.layers)
    if params.get("edft") is False:
        assert model.edft is None


def test_without_edft_the_dataset_edge_attributes_are_used():
    model, batch = make(params={"edft": False}, edge_attr_dim=3)
    assert model.layers[0]["spatial"].edge_attr_dim == 3
    out1 = model(batch)
    batch.edge_attr = batch.edge_attr + 1.0
    assert (model(batch) - out1).abs().max() > 0


def test_every_parameter_gets_a_gradient_in_float32():
    model, batch = make(dtype=torch.float32)
    loss = ((model(batch) - batch.target_x) ** 2).mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.pool.weights.grad.abs().sum() > 0
    assert model.edft.spectral_gate.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("channels", [None, 4])
def test_rotation_translation_equivariance_float64(channels):
    model, batch = make(channels)
    enliven(model)
    Q = rotation()
    shift = torch.tensor([3.0, -2.0, 5.0], dtype=torch.float64)
    out = model(batch)
    moved = Batch(x=batch.x @ Q.T + shift, target_x=batch.target_x, node_attr=batch.node_attr, edge_index=EDGES, dt=1.0)
    torch.testing.assert_close(model(moved), out @ Q.T + shift, rtol=1e-9, atol=1e-9)


def test_bad_configurations_are_reported():
    model, batch = make()
    short = Batch(x=batch.x[:, 1:], target_x=batch.target_x, node_attr=batch.node_attr, edge_index=EDGES, dt=1.0)
    with pytest.raises(GraphdynError, match="T="):
        model(short)
    with pytest.raises(GraphdynError, match="edft_channel"):
        make(channels=2, params={"edft_channel": 2})
    with pytest.raises(GraphdynError, match="unknown key"):
        make(params={"heads": 2})
