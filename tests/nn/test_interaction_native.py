"""The native interaction-layer kernel computes the PyTorch layer's function and gradients."""

import pytest
import torch

from graphdyn import native
from graphdyn.nn.interaction_native import WIDTHS, interaction_layer
from graphdyn.nn.message_passing import InteractionLayer
from thread_counts import assert_deterministic_across_threads

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels unavailable (no C compiler)")


def _graph(n=6, e=20, seed=0):
    return torch.randint(0, n, (2, e), generator=torch.Generator().manual_seed(seed))


def _both_paths(layer, h, ei, ea):
    """(outputs, gradients w.r.t. inputs and parameters) with and without the kernel."""
    inputs = [t for t in (h, ea) if t is not None and t.requires_grad] + list(layer.parameters())
    outs, grads = [], []
    for use_native in (True, False):
        layer.native = use_native
        out = layer(h, ei, ea)
        outs.append(out)
        weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        grads.append(torch.autograd.grad((out * weights).sum(), inputs))
    layer.native = True
    return outs, grads


@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
@pytest.mark.parametrize("edge_attr", [None, "shared", "batched"])
@pytest.mark.parametrize("input_grad", [True, False])  # False: the kernel skips the input gradients
def test_layer_native_matches_pytorch_values_and_gradients(act, edge_attr, input_grad):
    hidden = WIDTHS[0]
    torch.manual_seed(0)
    B, N, F, K, E = 5, 6, 4, 3, 20
    ei = _graph(N, E)
    layer = InteractionLayer(F, 3, hidden=hidden, edge_attr_dim=0 if edge_attr is None else K, act=act).double()
    h = torch.randn(B, N, F, dtype=torch.float64, requires_grad=input_grad)
    ea = None
    if edge_attr is not None:
        ea = torch.randn(*((B,) if edge_attr == "batched" else ()), E, K, dtype=torch.float64, requires_grad=input_grad)
    (out_n, out_p), (g_n, g_p) = _both_paths(layer, h, ei, ea)
    torch.testing.assert_close(out_n, out_p, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_n, g_p):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


def _random_args(B=3, N=5, F=2, K=2, H=WIDTHS[0], O=2, E=12, seed=1, batched_ea=True):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    ea = r(B, E, K) if batched_ea else r(E, K)
    # the layer's own parameters: edge MLP We1, be1, W2, b2; node MLP Wn1, bn1, Wn2, bn2
    return _graph(N, E, seed), r(B, N, F), ea, [r(H, 2 * F + K), r(H), r(H, H), r(H), r(H, F + H), r(H), r(O, H), r(O)]


@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
@pytest.mark.parametrize("batched_ea", [True, False])
def test_gradcheck(act, batched_ea):
    ei, h, ea, params = _random_args(batched_ea=batched_ea)
    assert torch.autograd.gradcheck(lambda h, ea, *p: interaction_layer(h, ei, ea, *p, act), (h, ea, *params))


@pytest.mark.parametrize("act", ["relu", "silu"])
def test_kept_and_recomputed_activations_give_the_same_gradients(act, monkeypatch):
    """Under KEEP_LIMIT the forward keeps the node MLP's rows for the backward; above it the
    backward recomputes them, with the same arithmetic: the gradients are bit-identical."""
    from graphdyn.nn import interaction_native

    ei, h, ea, params = _random_args(B=7, N=5, E=14, seed=3)
    results = []
    for limit in (1 << 30, 0):
        monkeypatch.setattr(interaction_native, "KEEP_LIMIT", limit)
        out = interaction_layer(h, ei, ea, *params, act)
        xs, zs = out.grad_fn.saved_tensors[-2:]
        assert (xs is not None and zs is not None) == (limit > 0)  # kept, or left to the backward
        results.append((out, *torch.autograd.grad((out * out.detach().cos()).sum(), (h, ea, *params))))
    for kept, recomputed in zip(*results):
        assert torch.equal(kept, recomputed)
    monkeypatch.setattr(interaction_native, "KEEP_LIMIT", 0)
    assert torch.autograd.gradcheck(lambda h, ea, *p: interaction_layer(h, ei, ea, *p, act), (h, ea, *params))


def test_deterministic_for_a_thread_count_and_close_across_counts():
    """Per-thread gradient buffers are summed in thread order: reruns are bit-identical; another
    thread count only changes the summation order of the weight gradients."""
    ei, h, ea, params = _random_args(B=64, N=6, E=30, seed=2)

    def run():
        out = interaction_layer(h, ei, ea, *params, "silu")
        return (out, *torch.autograd.grad(out.square().sum(), (h, ea, *params)))

    assert_deterministic_across_threads(run, tol=1e-11)


def test_float32_matches_float64():
    ei, h, ea, params = _random_args(H=32, seed=3)
    ref = interaction_layer(h, ei, ea, *params, "relu")
    out = interaction_layer(h.float(), ei, ea.float(), *(p.float() for p in params), "relu")
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)


def test_bad_input_is_an_error_not_a_crash():
    ei, h, ea, params = _random_args()
    with pytest.raises(IndexError, match="outside"):
        interaction_layer(h, torch.tensor([[0, 5], [1, 2]]), None, *_random_args(K=0)[3], "relu")
    with pytest.raises(IndexError, match="outside"):
        interaction_layer(h, torch.tensor([[0, -1], [1, 2]]), None, *_random_args(K=0)[3], "relu")
    with pytest.raises(ValueError, match="wn1 has shape"):
        interaction_layer(h, ei, ea, *params[:4], params[4][:, 1:], *params[5:], "relu")
    with pytest.raises(ValueError, match="edge_attr"):
        interaction_layer(h, ei, ea[:, :5], *params, "relu")


def test_unsupported_cases_fall_back_to_pytorch():
    ei, h, ea, params = _random_args()
    assert interaction_layer(h, ei, ea, *params, "gelu") is None  # no native GELU
    assert interaction_layer(h, ei, ea, *_random_args(H=8)[3], "relu") is None  # a width not compiled
    assert interaction_layer(h.half(), ei, ea.half(), *(p.half() for p in params), "relu") is None
    layer = InteractionLayer(3, 2, hidden=8, act="gelu")
    assert layer(torch.randn(2, 4, 3), torch.tensor([[0], [1]])).shape == (2, 4, 2)


def test_no_edges_gives_the_node_mlp_of_h_alone():
    torch.manual_seed(5)
    layer = InteractionLayer(3, 2, hidden=WIDTHS[0]).double()
    h = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    (out_n, out_p), (g_n, g_p) = _both_paths(layer, h, torch.zeros(2, 0, dtype=torch.long), None)
    torch.testing.assert_close(out_n, out_p, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_n, g_p):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
