"""Non-equivariant STAG: shapes in both layouts, the residual on x(T-1), dropout off by default,
and the axes: the graph conv acts per frame, each (node, sample) sequence is encoded alone."""

from __future__ import annotations

import pytest
import torch

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model
from graphdyn.nn.node_features import frame_features

B, T, N = 3, 10, 6
_path = torch.stack([torch.arange(N - 1), torch.arange(1, N)])
EDGES = torch.cat([_path, _path.flip(0)], 1)  # a path 0 - 1 - ... - 5


def make(channels=None, params=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    node = (N,) + ((channels,) if channels else ()) + (3,)
    batch = Batch(
        x=torch.randn(B, T, *node, generator=g, dtype=torch.float64),
        target_x=torch.randn(B, *node, generator=g, dtype=torch.float64),
        node_attr=torch.randn(B, N, 1, generator=g, dtype=torch.float64),
        edge_index=EDGES,
        dt=1.0,
    )
    info = DataInfo(dim=3, channels=channels, node_attr_dim=1, edge_attr_dim=0, T=T, n_nodes=N, has_velocities=False)
    torch.manual_seed(seed)
    return build_model("stag_neq", params or {}, info).double(), batch


@pytest.mark.parametrize("channels", [None, 4])
def test_shapes_and_residual_on_the_last_frame(channels):
    model, batch = make(channels)
    assert model(batch).shape == batch.x[:, -1].shape
    assert model.head.in_features == T * 8 and model.head.bias is None
    with torch.no_grad():
        model.head.weight.zero_()
    assert torch.equal(model(batch), batch.x[:, -1])


def test_training_mode_is_deterministic_without_dropout():
    model, batch = make()
    assert torch.equal(model(batch), model(batch))
    noisy, _ = make(params={"dropout": 0.1})
    assert not torch.equal(noisy(batch), noisy(batch))
    noisy.eval()
    assert torch.equal(noisy(batch), noisy(batch))


def test_heads_must_divide_the_width():
    with pytest.raises(GraphdynError, match="heads"):
        make(params={"heads": 3})


def test_tagged_inputs_reach_the_graph_conv_node_major():
    model, batch = make(4)
    seen = {}
    model.spatial.register_forward_pre_hook(lambda m, args: seen.__setitem__("u", args[0].clone()))
    model(batch)
    assert torch.equal(seen["u"], frame_features(batch.x, batch.node_attr, node_major=True))
    assert torch.equal(seen["u"][4, 2, 7, 1:], batch.x[2, 7, 4].flatten())  # node 4, sample 2, frame 7


@pytest.mark.parametrize("t", [2, T - 1])
def test_one_node_frame_and_sample_changes_only_what_it_may(t):
    model, batch = make(seed=1)
    model(batch)  # move the BatchNorm running statistics
    model.eval()
    b, n = 1, 2
    x2 = batch.x.clone()
    x2[b, t, n] += 0.5
    runs = []
    for x in (batch.x, x2):
        seen = {}
        hooks = [
            model.spatial.register_forward_hook(lambda m, a, out, s=seen: s.__setitem__("gc", out.detach().clone())),
            model.encoder[0].register_forward_hook(lambda m, a, out, s=seen: s.__setitem__("enc", out.detach().clone())),
        ]
        seen["y"] = model(Batch(**{**batch.__dict__, "x": x}))
        for h in hooks:
            h.remove()
        runs.append(seen)
    diff = {k: (runs[1][k] - runs[0][k]).abs() for k in runs[0]}
    neighbours = [n - 1, n + 1]  # the path's neighbours of n; no self loop
    # graph conv [N, B, T, H]: frame t of sample b, at n's neighbours
    expect = torch.zeros(N, B, T, dtype=torch.bool)
    expect[neighbours, b, t] = True
    assert torch.equal(diff["gc"].amax(-1) > 0, expect)
    # encoder [N*B, T, H]: row i*B + b is node i of sample b; its whole sequence changes, no other row
    expect = torch.zeros(N * B, dtype=torch.bool)
    expect[[i * B + b for i in neighbours]] = True
    assert torch.equal(diff["enc"].amax((-1, -2)) > 0, expect)
    assert (diff["enc"][[i * B + b for i in neighbours]].amax(-1) > 0).all()
    # prediction [B, N, D]: sample b, the neighbours, and n itself through the residual at t = T-1
    expect = torch.zeros(B, N, dtype=torch.bool)
    expect[b, neighbours] = True
    if t == T - 1:
        expect[b, n] = True
    assert torch.equal(diff["y"].amax(-1) > 0, expect)
