"""The fused edge kernel computes the PyTorch layer's function and gradients (float64)."""

import pytest
import torch

from graphdyn import native
from graphdyn.nn.edge_sum_native import edge_act_sum
from graphdyn.nn.message_passing import InteractionLayer

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels unavailable (no C compiler)")


def _graph(n=6, e=20, seed=0):
    return torch.randint(0, n, (2, e), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
@pytest.mark.parametrize("edge_attr", [None, "shared", "batched"])
def test_layer_native_matches_pytorch_values_and_gradients(act, edge_attr):
    torch.manual_seed(0)
    B, N, F, K, E = 5, 6, 4, 3, 20
    ei = _graph(N, E)
    layer = InteractionLayer(F, 3, hidden=8, edge_attr_dim=0 if edge_attr is None else K, act=act).double()
    h = torch.randn(B, N, F, dtype=torch.float64, requires_grad=True)
    ea = None if edge_attr is None else torch.randn(*((B,) if edge_attr == "batched" else ()), E, K, dtype=torch.float64,
                                                     requires_grad=True)
    inputs = [h] + ([] if ea is None else [ea]) + list(layer.parameters())
    outs, grads = [], []
    for use_native in (True, False):
        layer.native = use_native
        out = layer(h, ei, ea)
        outs.append(out)
        grads.append(torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), inputs))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
def test_gradcheck(act):
    torch.manual_seed(1)
    ei = _graph(5, 12)
    h = torch.randn(3, 5, 2, dtype=torch.float64, requires_grad=True)
    ea = torch.randn(3, 12, 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h, ea, w, b: edge_act_sum(h, ei, w, b, act, ea), (h, ea, w, b))


def test_deterministic_for_a_thread_count_and_close_across_counts():
    """Per-thread gradient buffers are summed in thread order: reruns are bit-identical; another
    thread count only changes the summation order of the weight gradients."""
    torch.manual_seed(2)
    ei = _graph(6, 30)
    h = torch.randn(64, 6, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(16, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(16, dtype=torch.float64, requires_grad=True)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (2, 2, 1):
            torch.set_num_threads(threads)
            out = edge_act_sum(h, ei, w, b, "silu")
            results.append((out, *torch.autograd.grad(out.square().sum(), (h, w, b))))
    finally:
        torch.set_num_threads(before)
    for a, c, d in zip(*results):
        assert torch.equal(a, c)
        torch.testing.assert_close(a, d, rtol=1e-11, atol=1e-11)


def test_float32_matches_float64():
    torch.manual_seed(3)
    ei = _graph(6, 20)
    h, w, b = torch.randn(8, 6, 4, dtype=torch.float64), torch.randn(32, 8, dtype=torch.float64), torch.randn(32, dtype=torch.float64)
    ref = edge_act_sum(h, ei, w, b, "relu")
    out = edge_act_sum(h.float(), ei, w.float(), b.float(), "relu")
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_bad_input_is_an_error_not_a_crash():
    h, w, b = torch.randn(2, 4, 3), torch.randn(8, 6), torch.randn(8)
    with pytest.raises(IndexError, match="outside"):
        edge_act_sum(h, torch.tensor([[0, 4], [1, 2]]), w, b, "relu")
    with pytest.raises(IndexError, match="outside"):
        edge_act_sum(h, torch.tensor([[0, -1], [1, 2]]), w, b, "relu")
    with pytest.raises(ValueError, match="weight"):
        edge_act_sum(h, torch.tensor([[0], [1]]), torch.randn(8, 5), b, "relu")
    with pytest.raises(ValueError, match="edge_attr"):
        edge_act_sum(h, torch.tensor([[0], [1]]), torch.randn(8, 8), b, "relu", edge_attr=torch.randn(3, 2))


def test_unsupported_cases_fall_back_to_pytorch():
    h, w, b = torch.randn(2, 4, 3), torch.randn(8, 6), torch.randn(8)
    ei = torch.tensor([[0], [1]])
    assert edge_act_sum(h, ei, w, b, "gelu") is None  # no native GELU
    assert edge_act_sum(h.half(), ei, w.half(), b.half(), "relu") is None
    layer = InteractionLayer(3, 2, hidden=8, act="gelu")
    assert layer(h, ei).shape == (2, 4, 2)


def test_empty_edge_list():
    h, w, b = torch.randn(2, 4, 3, requires_grad=True), torch.randn(8, 6, requires_grad=True), torch.randn(8)
    out = edge_act_sum(h, torch.zeros(2, 0, dtype=torch.long), w, b, "relu")
    assert torch.all(out == 0)
    out.sum().backward()
    assert torch.all(w.grad == 0) and torch.all(h.grad == 0)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_node_features_layout_is_h_sum_degree(act):
    torch.manual_seed(4)
    B, N, F, H = 3, 5, 2, 6
    ei = torch.tensor([[0, 0, 1, 2, 4, 4, 4], [1, 2, 0, 0, 3, 1, 2]])  # node 3 receives nothing
    h = torch.randn(B, N, F, dtype=torch.float64, requires_grad=True)
    w = torch.randn(H, 2 * F, dtype=torch.float64, requires_grad=True)
    b = torch.randn(H, dtype=torch.float64, requires_grad=True)
    x = edge_act_sum(h, ei, w, b, act, node_features=True)
    s = edge_act_sum(h, ei, w, b, act)
    deg = torch.tensor([2.0, 1.0, 1.0, 0.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(x, torch.cat([h, s, deg[None, :, None].expand(B, N, 1)], -1), rtol=0, atol=0)
    assert torch.autograd.gradcheck(lambda h, w, b: edge_act_sum(h, ei, w, b, act, node_features=True), (h, w, b))
