"""GNNLayer: the update rule against a direct evaluation, both layouts, native vs torch backend, edge attributes."""

from __future__ import annotations

import pytest
import torch

from graphdyn import native
from graphdyn.nn.gnn_layer import GNNLayer
from graphdyn.ops import backend as ops_backend

N, H, K = 5, 6, 3
# node 4 sends but receives nothing
EDGES = torch.tensor([[0, 1, 1, 2, 3, 0, 2], [1, 0, 2, 1, 2, 4, 4]])


def layer(seed=0, edge_attr_dim=K, **kw):
    torch.manual_seed(seed)
    return GNNLayer(H, edge_attr_dim=edge_attr_dim, **kw).double()


def direct(lay, h, e):
    """h [B, N, H], e [E, K]: the module docstring's rule, written per edge with concatenation."""
    i, j = EDGES
    B = h.shape[0]
    inp = torch.cat([h[:, i], h[:, j], e.expand(B, *e.shape)], -1)
    m = lay.message(inp)
    agg = torch.zeros(B, N, H, dtype=h.dtype).index_add_(1, i, m)
    return h + lay.node(torch.cat([h, agg], -1))


def test_matches_the_update_rule_in_both_layouts():
    g = torch.Generator().manual_seed(1)
    lay = layer()
    h = torch.randn(2, N, H, generator=g, dtype=torch.float64)
    e = torch.randn(EDGES.shape[1], K, generator=g, dtype=torch.float64)
    want = direct(lay, h, e)
    torch.testing.assert_close(lay(h, EDGES, e), want, rtol=1e-12, atol=1e-12)
    # node-major, edge attributes broadcast over the batch axis
    got = lay(h.movedim(1, 0).contiguous(), EDGES, e[:, None, :], node_dim=0)
    torch.testing.assert_close(got.movedim(0, 1), want, rtol=1e-12, atol=1e-12)
    # the node without incoming edges only sees its own features
    torch.testing.assert_close(want[:, 4], h[:, 4] + lay.node(torch.cat([h[:, 4], torch.zeros_like(h[:, 4])], -1)))


@pytest.mark.parametrize("act,width", [("silu", H), ("leaky_relu", H), ("silu", 16)])  # 16: the C kernels' width
def test_native_backend_equals_torch_backend(act, width):
    g = torch.Generator().manual_seed(2)
    h = torch.randn(N, 2, 3, width, generator=g, dtype=torch.float64, requires_grad=True)
    e = torch.randn(EDGES.shape[1], 1, 1, K, generator=g, dtype=torch.float64)
    results = []
    backends = ("native", "torch") if native.available() else ("torch", "torch")
    for backend in backends:
        torch.manual_seed(0)
        lay = GNNLayer(width, edge_attr_dim=K, act=act).double()
        lay.backend = backend
        ops_backend.reset_usage()
        out = lay(h, EDGES, e, node_dim=0)
        if backend == "native":  # the kernels ran where they take the call
            takes = width == 16 and act in native.ACTS
            assert ops_backend.usage()["egnn_edges"]["native"] == ops_backend.usage()["node_update"]["native"] == int(takes)
        grads = torch.autograd.grad((out**2).sum(), [h, *lay.parameters()])
        results.append((out, grads))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-12, atol=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_edge_attributes_enter_the_messages_and_are_required():
    lay = layer()
    h = torch.randn(1, N, H, dtype=torch.float64)
    e = torch.randn(EDGES.shape[1], K, dtype=torch.float64)
    assert (lay(h, EDGES, e) - lay(h, EDGES, e + 1.0)).abs().max() > 1e-6
    with pytest.raises(ValueError, match="edge attributes"):
        lay(h, EDGES)
    plain = layer(edge_attr_dim=0)
    assert plain.message[0].in_features == 2 * H
    assert plain(h, EDGES).shape == h.shape
