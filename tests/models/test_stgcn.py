"""STGCN: shapes in both layouts, the residual on x(T-1), the adjacency modes, and the axes
(tagged inputs through the node-major conversion; what perturbing one node, frame and sample
may change at each stage)."""

from __future__ import annotations

import pytest
import torch

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model
from graphdyn.nn.graph_conv import normalized_adjacency
from graphdyn.nn.node_features import frame_features

B, T, N = 3, 8, 8
_ring = torch.stack([torch.arange(N), (torch.arange(N) + 1) % N])
EDGES = torch.cat([_ring, _ring.flip(0)], 1)  # an even ring: 2-walks reach distance 0 and 2 only


def make(channels=None, params=None, seed=0, T=T):
    g = torch.Generator().manual_seed(seed)
    node = (N,) + ((channels,) if channels else ()) + (3,)
    batch = Batch(
        x=torch.randn(B, T, *node, generator=g, dtype=torch.float64),
        target_x=torch.randn(B, *node, generator=g, dtype=torch.float64),
        node_attr=torch.randn(B, N, 2, generator=g, dtype=torch.float64),
        edge_index=EDGES,
        edge_attr=torch.rand(EDGES.shape[1], 1, generator=g, dtype=torch.float64) + 1,
        dt=1.0,
    )
    info = DataInfo(dim=3, channels=channels, node_attr_dim=2, edge_attr_dim=1, T=T, n_nodes=N, has_velocities=False)
    torch.manual_seed(seed)
    return build_model("stgcn", params or {}, info).double(), batch


def capture(module, store, key, pre=False):
    if pre:
        return module.register_forward_pre_hook(lambda m, args: store.__setitem__(key, args[0].detach().clone()))
    return module.register_forward_hook(lambda m, args, out: store.__setitem__(key, out.detach().clone()))


@pytest.mark.parametrize("channels", [None, 4])
def test_shapes_and_residual_on_the_last_frame(channels):
    model, batch = make(channels)
    y = model(batch)
    assert y.shape == batch.x[:, -1].shape and model.frames_out == T - 5
    assert model.head.in_features == (T - 5) * 64 and model.embed.in_features == 2 + 3 * (channels or 1)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    assert torch.equal(model(batch), batch.x[:, -1])


def test_too_few_frames():
    with pytest.raises(GraphdynError, match="T >= 6"):
        make(T=5)


def test_adjacency_modes():
    model, batch = make(params={"adjacency": "attr"})
    A = model.adjacency(batch, N, torch.float64)
    torch.testing.assert_close(A, normalized_adjacency(EDGES, N, batch.edge_attr[:, 0]))
    with pytest.raises(GraphdynError, match="edge_attr"):
        model(Batch(**{**batch.__dict__, "edge_attr": None}))


def test_tagged_inputs_reach_the_embedding_node_major():
    model, batch = make(4)
    seen = {}
    capture(model.embed, seen, "u", pre=True)
    model(batch)
    u = seen["u"]  # [N, B, T, A + C*D]
    for n, b, t in ((0, 0, 0), (5, 2, 7), (3, 1, 4)):
        assert torch.equal(u[n, b, t], torch.cat([batch.node_attr[b, n], batch.x[b, t, n].flatten()]))
    assert torch.equal(u, frame_features(batch.x, batch.node_attr, node_major=True))


@pytest.mark.parametrize("t", [3, T - 1])
def test_one_node_frame_and_sample_changes_only_what_it_may(t):
    model, batch = make(seed=1)
    model.train()
    model(batch)  # move the running statistics off their initial values
    model.eval()  # BatchNorm in training mode couples samples; eval treats each alone
    b, n = 1, 2
    x2 = batch.x.clone()
    x2[b, t, n] += 0.5
    runs = []
    for x in (batch.x, x2):
        seen = {}
        hooks = [capture(model.blocks[0].temporal1, seen, "t1"), capture(model.blocks[0].spatial, seen, "gc")]
        seen["y"] = model(Batch(**{**batch.__dict__, "x": x}))
        for h in hooks:
            h.remove()
        runs.append(seen)
    diff = {k: (runs[1][k] - runs[0][k]).abs() for k in runs[0]}
    adj = model.adjacency(batch, N, torch.float64)
    frames = [s for s in (t - 1, t) if 0 <= s < T - 1]  # kernel 2: output s reads s, s+1

    # temporal conv [N, B, T-1, F]: node n, sample b, the frames whose kernel covers t
    expect = torch.zeros(N, B, T - 1, dtype=torch.bool)
    expect[n, b, frames] = True
    assert torch.equal(diff["t1"].amax(-1) > 0, expect)

    # graph conv: the same frames of sample b, at n's neighbours (no self loop)
    expect = torch.zeros(N, B, T - 1, dtype=torch.bool)
    for i in adj[:, n].nonzero().flatten().tolist():
        expect[i, b, frames] = True
    assert torch.equal(diff["gc"].amax(-1) > 0, expect)

    # prediction [B, N, D]: sample b only, nodes two graph convs away (plus n through the residual)
    reach = (adj @ adj)[:, n] != 0
    if t == T - 1:
        reach[n] = True
    expect = torch.zeros(B, N, dtype=torch.bool)
    expect[b] = reach
    assert torch.equal(diff["y"].amax(-1) > 0, expect)


def test_node_norm_is_not_permutation_equivariant():
    model, batch = make(params={"norm": "node"})
    assert model.symmetries == ()
    with torch.no_grad():
        for blk in model.blocks:
            blk.norm.norm.weight.uniform_(0.5, 2.0)
            blk.norm.norm.bias.normal_()
    model.eval()
    perm = torch.roll(torch.arange(N), 1)  # a ring rotation maps the graph to itself
    inv = torch.argsort(perm)
    moved = Batch(**{**batch.__dict__, "x": batch.x[:, :, perm], "node_attr": batch.node_attr[:, perm], "edge_index": inv[EDGES]})
    assert (model(moved) - model(batch)[:, perm]).abs().max() > 1e-6
    with pytest.raises(GraphdynError, match="n_nodes"):
        model(Batch(**{**batch.__dict__, "x": batch.x[:, :, :5], "node_attr": batch.node_attr[:, :5], "edge_index": EDGES[:, :4]}))
