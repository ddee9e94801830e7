import pytest
import torch

from graphdyn import native
from graphdyn.nn.message_passing import InteractionLayer


def _random_graph(n=6, e=14, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (2, e), generator=g)


def test_permutation_equivariance():
    layer = InteractionLayer(3, 2, hidden=8)
    h = torch.randn(4, 6, 3)
    ei = _random_graph()
    perm = torch.randperm(6)
    inv = torch.argsort(perm)
    out = layer(h, ei)
    out_p = layer(h[:, perm], inv[ei])  # node k of the permuted graph is old node perm[k]
    torch.testing.assert_close(out_p, out[:, perm])


def test_edge_order_does_not_matter_and_messages_reach_only_receivers():
    layer = InteractionLayer(2, 2, hidden=8)
    h = torch.randn(1, 4, 2)
    ei = torch.tensor([[1, 2, 3], [0, 0, 0]])  # node 0 sends to 1, 2, 3; nobody sends to 0
    out = layer(h, ei)
    torch.testing.assert_close(layer(h, ei[:, [2, 0, 1]]), out)
    h2 = h.clone()
    h2[0, 3] += 1.0  # node 3 sends nothing: only its own output may change
    diff = (layer(h2, ei) - out).abs().sum(-1)[0]
    assert diff[3] > 0 and torch.all(diff[:3] == 0)


def test_aggregating_before_the_last_edge_layer_is_the_plain_formula():
    """out_i = phi_n([h_i, sum_j phi_e([h_j, h_i, e_ij])]), written edge by edge."""
    torch.manual_seed(0)
    layer = InteractionLayer(3, 2, hidden=8, edge_attr_dim=2).double()
    h = torch.randn(2, 5, 3, dtype=torch.float64)
    ei = torch.tensor([[0, 0, 1, 2, 4, 4], [1, 2, 0, 0, 3, 1]])  # node 3 receives nothing
    e = torch.randn(6, 2, dtype=torch.float64)
    expected = torch.zeros(2, 5, 8, dtype=torch.float64)
    for k in range(ei.shape[1]):
        i, j = ei[:, k]
        expected[:, i] += layer.edge_mlp(torch.cat([h[:, j], h[:, i], e[k].expand(2, 2)], -1))
    ref = layer.node_mlp(torch.cat([h, expected], -1))
    torch.testing.assert_close(layer(h, ei, e), ref, rtol=1e-12, atol=1e-12)


def _plain(layer, h, ei, e):
    """The layer written edge by edge, with its MLPs as they are (no re-association)."""
    msgs = torch.zeros(h.shape[0], h.shape[1], layer.edge_mlp[-1].out_features, dtype=h.dtype)
    for k in range(ei.shape[1]):
        i, j = ei[:, k]
        msgs[:, i] += layer.edge_mlp(torch.cat([h[:, j], h[:, i], e[k].expand(h.shape[0], -1)], -1))
    return layer.node_mlp(torch.cat([h, msgs], -1))


@pytest.mark.parametrize("backend", ["torch"] + (["native"] if native.available() else []))
def test_parameter_gradients_are_the_plain_formulas(backend):
    """The composed node-MLP weight carries its gradient back to both MLPs' own parameters."""
    torch.manual_seed(1)
    layer = InteractionLayer(3, 2, hidden=32, edge_attr_dim=2).double()  # the kernel's width
    layer.backend = backend
    h = torch.randn(3, 5, 3, dtype=torch.float64, requires_grad=True)
    ei = torch.tensor([[0, 0, 1, 2, 4, 4], [1, 2, 0, 0, 3, 1]])
    e = torch.randn(6, 2, dtype=torch.float64)
    params = [h, *layer.parameters()]
    w = torch.randn(3, 5, 2, dtype=torch.float64)
    got = torch.autograd.grad((layer(h, ei, e) * w).sum(), params)
    ref = torch.autograd.grad((_plain(layer, h, ei, e) * w).sum(), params)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


def test_torch_backend_has_second_derivatives():
    torch.manual_seed(2)
    layer = InteractionLayer(2, 2, hidden=4, act="tanh").double()
    layer.backend = "torch"
    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    h = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    params = tuple(layer.parameters())

    def f(h, *p):
        return torch.func.functional_call(layer, dict(zip([n for n, _ in layer.named_parameters()], p)), (h, ei))

    assert torch.autograd.gradgradcheck(f, (h, *[p.detach().requires_grad_() for p in params]))
