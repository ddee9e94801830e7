"""PerFrameNetwork: axes kept apart (tagged tensors), frames independent, passes, pooling, errors."""

from __future__ import annotations

import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.nn.egnn import EGNNLayer
from graphdyn.nn.gnn_layer import GNNLayer
from graphdyn.nn.mlp import MLP
from graphdyn.nn.per_frame import PerFrameNetwork

B, T, N, A, K, H = 2, 4, 5, 2, 3, 8
EDGES = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4], [1, 0, 2, 1, 3, 2, 4, 0]])


def tagged(C):
    """x[b, t, n, (c,) d] = 10000 t + 100 b + n + (3 c + d) / 64 (exact in float64): a value names its place."""
    b, t, n = torch.meshgrid(torch.arange(B), torch.arange(T), torch.arange(N), indexing="ij")
    base = (10000 * t + 100 * b + n).double()
    inner = torch.arange((C or 1) * 3, dtype=torch.float64).view(*((C,) if C else ()), 3) / 64
    return base.view(B, T, N, *([1] * inner.dim())) + inner


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    a = 100 * torch.arange(B).view(B, 1, 1) + torch.arange(N).view(1, N, 1) + torch.arange(A).view(1, 1, A) / 8
    return a.double(), torch.randn(EDGES.shape[1], K, generator=g, dtype=torch.float64)


def network(kind, C=None, passes=1, seed=0):
    torch.manual_seed(seed)
    if kind == "coord":
        layers = [EGNNLayer(H, channels=C, edge_attr_dim=K, clamp=None if C else 100.0) for _ in range(2)]
        net = PerFrameNetwork(layers, node_attr_dim=A, hidden=H, T=T, edge_attr_dim=K, passes=passes)
    else:
        cd = 3 * (C or 1)
        net = PerFrameNetwork([GNNLayer(H, edge_attr_dim=K) for _ in range(2)], node_attr_dim=A, hidden=H, T=T,
                              decoder=MLP([H, H, cd], act="silu"), coords_in_input=True, node_coord_dim=cd, edge_attr_dim=K)
    return net.double()


def freeze_layers(net):
    """Zero every layer's last node and coordinate Linear: the layers then return h and x unchanged."""
    with torch.no_grad():
        for layer in net.layers:
            layer.node[2].weight.zero_()
            layer.node[2].bias.zero_()
            if hasattr(layer, "coord"):
                layer.coord[2].weight.zero_()


@pytest.mark.parametrize("kind,C", [("coord", None), ("coord", 2), ("features", None), ("features", 2)])
def test_tagged_tensors_keep_node_frame_and_channel_axes_apart(kind, C):
    net = network(kind, C)
    freeze_layers(net)
    x = tagged(C)
    a, e = inputs()
    trace = {}
    x_hat = net(x, a, EDGES, e, trace=trace)
    # the embedding, written directly in the data layout [B, T, N, H]
    w, E = net.embed.weight, net.time_embed.weight
    want_h = (a @ w[:, :A].T).unsqueeze(1) + net.embed.bias + E.view(1, T, 1, H)
    if kind == "features":
        want_h = want_h + x.flatten(3) @ w[:, A:].T
    for l in range(2):
        torch.testing.assert_close(trace[f"layers.{l}.h"], want_h, rtol=1e-13, atol=1e-10)
    if kind == "coord":
        y = trace["layers.1.x"]
        assert torch.equal(y, x)  # moved node-major and back: every tag where it was
    else:
        y = trace["decoded"]
        torch.testing.assert_close(y, net.decoder(want_h).view(x.shape), rtol=1e-13, atol=1e-10)
    weights = torch.softmax(net.pool.weights, 0)
    torch.testing.assert_close(x_hat, torch.einsum("t,btn...->bn...", weights, y), rtol=1e-13, atol=1e-10)
    assert torch.equal(trace["x_hat"], x_hat)


@pytest.mark.parametrize("kind,C", [("coord", None), ("coord", 3), ("features", None)])
def test_frames_are_processed_independently(kind, C):
    net = network(kind, C)
    with torch.no_grad():
        for layer in net.layers:
            if hasattr(layer, "coord"):
                layer.coord[2].weight.normal_(0, 0.5)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(B, T, N, *((C,) if C else ()), 3, generator=g, dtype=torch.float64)
    a, e = inputs()
    base, bumped = {}, {}
    net(x, a, EDGES, e, trace=base)
    x2 = x.clone()
    x2[:, 2, 1] += 0.5  # one node of frame 2
    net(x2, a, EDGES, e, trace=bumped)
    for name in base:
        if name == "x_hat":
            continue
        diff = (bumped[name] - base[name]).abs().flatten(3).amax(-1)  # [B, T, N]
        assert diff[:, 2].max() > 1e-8, name  # its own frame changes (the node and its neighbours)...
        others = torch.cat([diff[:, :2], diff[:, 3:]], 1)
        assert others.max() == 0, name  # ...no other frame does


def test_passes_run_the_same_stack_again_from_where_it_stopped():
    net = network("coord", 4, passes=2)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(B, T, N, 4, 3, generator=g, dtype=torch.float64)
    a, e = inputs()
    trace = {}
    out = net(x, a, EDGES, e, trace=trace)
    assert set(trace) == {f"{p}layers.{l}.{v}" for p in ("", "pass.1.") for l in (0, 1) for v in "hx"} | {"x_hat"}
    # pass 1, layer 0 = layer 0 applied (in the data layout, frames as batch axes) to what pass 0 left
    h1, x1 = net.layers[0](trace["layers.1.h"], trace["layers.1.x"], EDGES, e.view(-1, 1, 1, K).transpose(0, 2), node_dim=2)
    torch.testing.assert_close(trace["pass.1.layers.0.h"], h1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(trace["pass.1.layers.0.x"], x1, rtol=1e-12, atol=1e-12)
    weights = torch.softmax(net.pool.weights, 0)
    torch.testing.assert_close(out, torch.einsum("t,btn...->bn...", weights, trace["pass.1.layers.1.x"]))


def test_pooling_starts_uniform_in_plus_minus_one_and_errors_are_one_line():
    net = network("coord")
    w = net.pool.weights
    assert w.shape == (T,) and w.abs().max() <= 1 and w.std() > 0
    x = torch.randn(B, T, N, 3, dtype=torch.float64)
    a, e = inputs()
    with pytest.raises(GraphdynError, match="T=4"):
        net(x[:, 1:], a, EDGES, e)
    with pytest.raises(GraphdynError, match="edge_attr"):
        net(x, a, EDGES, None)
