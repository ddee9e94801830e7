"""The interaction op (the notebook's layer): the native kernel computes the reference's function and gradients."""

from __future__ import annotations

import pytest
import torch

from graphdyn import native, ops
from graphdyn.nn.message_passing import InteractionLayer
from graphdyn.ops import backend as ops_backend
from graphdyn.ops.interaction import WIDTH, interaction, native_refusal, reference
from op_spy import spy_on
from thread_counts import assert_deterministic_across_threads

interaction_module = ops.OPS["interaction"]  # (graphdyn.ops.interaction is the op function)
pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels unavailable: " + str(native.status()["error"]))


def _graph(n=6, e=20, seed=0):
    return torch.randint(0, n, (2, e), generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def spy(monkeypatch):
    """Whether each interaction-op call under a backend other than torch ran the kernel."""
    return spy_on(monkeypatch, "interaction")


def _both_backends(layer, h, ei, ea):
    """(outputs, gradients w.r.t. inputs and parameters) under the native and the torch backend."""
    inputs = [t for t in (h, ea) if t is not None and t.requires_grad] + list(layer.parameters())
    outs, grads = [], []
    for backend in ("native", "torch"):
        layer.backend = backend
        out = layer(h, ei, ea)
        outs.append(out)
        weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        grads.append(torch.autograd.grad((out * weights).sum(), inputs))
    layer.backend = "native"
    return outs, grads


@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
@pytest.mark.parametrize("edge_attr", [None, "shared", "batched"])
@pytest.mark.parametrize("input_grad", [True, False])  # False: the kernel skips the input gradients
def test_layer_native_matches_torch_values_and_gradients(act, edge_attr, input_grad, spy):
    torch.manual_seed(0)
    B, N, F, K, E = 5, 6, 4, 3, 20
    ei = _graph(N, E)
    layer = InteractionLayer(F, 3, hidden=WIDTH, edge_attr_dim=0 if edge_attr is None else K, act=act).double()
    h = torch.randn(B, N, F, dtype=torch.float64, requires_grad=input_grad)
    ea = None
    if edge_attr is not None:
        ea = torch.randn(*((B,) if edge_attr == "batched" else ()), E, K, dtype=torch.float64, requires_grad=input_grad)
    (out_n, out_p), (g_n, g_p) = _both_backends(layer, h, ei, ea)
    assert spy == [True]  # the kernel ran under "native" (the torch backend is not recorded)
    torch.testing.assert_close(out_n, out_p, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_n, g_p):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


def _random_args(B=3, N=5, F=2, K=2, H=WIDTH, O=2, E=12, seed=1, batched_ea=True):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    ea = r(B, E, K) if batched_ea else r(E, K)
    # the layer's own parameters: edge MLP We1, be1, W2, b2; node MLP Wn1, bn1, Wn2, bn2
    return _graph(N, E, seed), r(B, N, F), ea, [r(H, 2 * F + K), r(H), r(H, H), r(H), r(H, F + H), r(H), r(O, H), r(O)]


def _native(h, ei, ea, params, act):
    return interaction(h, ei, ea, *params, act, backend="native")


@pytest.mark.parametrize("act", ["relu", "silu"])
def test_kept_and_recomputed_activations_give_the_same_gradients(act, monkeypatch, spy):
    """Under KEEP_LIMIT the forward keeps the node MLP's rows for the backward; above it the
    backward recomputes them, with the same arithmetic: the gradients are bit-identical."""
    ei, h, ea, params = _random_args(B=7, N=5, E=14, seed=3)
    results = []
    for limit in (1 << 30, 0):
        monkeypatch.setattr(interaction_module, "KEEP_LIMIT", limit)
        op, args = interaction_module.native_call(h, ei, ea, *params, act)
        assert args[-1] == (limit > 0)  # kept, or left to the backward
        out, _, xs, zs = op(*args)
        assert (xs.numel() > 0 and zs.numel() > 0) == (limit > 0)
        results.append((out, *torch.autograd.grad((out * out.detach().cos()).sum(), (h, ea, *params))))
    for kept, recomputed in zip(*results):
        assert torch.equal(kept, recomputed)
    monkeypatch.setattr(interaction_module, "KEEP_LIMIT", 0)
    assert torch.autograd.gradcheck(lambda h, ea, *p: _native(h, ei, ea, p, act), (h, ea, *params))
    assert spy and all(spy)


def test_nothing_is_kept_without_gradients():
    ei, h, ea, params = _random_args()
    with torch.no_grad():
        assert interaction_module.native_call(h, ei, ea, *params, "relu")[1][-1] is False
    plain = [t.detach() for t in (h, ea, *params)]
    assert interaction_module.native_call(plain[0], ei, plain[1], *plain[2:], "relu")[1][-1] is False


def test_deterministic_for_a_thread_count_and_close_across_counts():
    """Per-thread gradient buffers are summed in thread order: reruns are bit-identical; another
    thread count only changes the summation order of the weight gradients."""
    ei, h, ea, params = _random_args(B=64, N=6, E=30, seed=2)

    def run():
        out = _native(h, ei, ea, params, "silu")
        return (out, *torch.autograd.grad(out.square().sum(), (h, ea, *params)))

    assert_deterministic_across_threads(run, tol=1e-11)


def test_float32_matches_float64(spy):
    ei, h, ea, params = _random_args(seed=3)
    ref = _native(h, ei, ea, params, "relu")
    out = _native(h.float(), ei, ea.float(), [p.float() for p in params], "relu")
    assert out.dtype == torch.float32 and spy == [True, True]
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)


def test_bad_input_is_an_error_not_a_crash():
    ei, h, ea, params = _random_args()
    no_attr = _random_args(K=0)[3]
    with pytest.raises(IndexError, match="outside"):
        _native(h, torch.tensor([[0, 5], [1, 2]]), None, no_attr, "relu")
    with pytest.raises(IndexError, match="outside"):
        _native(h, torch.tensor([[0, -1], [1, 2]]), None, no_attr, "relu")
    with pytest.raises(ValueError, match="wn1 has shape"):
        _native(h, ei, ea, [*params[:4], params[4][:, 1:], *params[5:]], "relu")
    with pytest.raises(ValueError, match="edge_attr"):
        _native(h, ei, ea[:, :5], params, "relu")


def test_unsupported_cases_are_refused_with_a_reason_and_run_the_reference():
    ei, h, ea, params = _random_args()
    assert native_refusal(h, ei, ea, *params, "relu") is None
    assert "activation 'gelu'" in native_refusal(h, ei, ea, *params, "gelu")
    narrow = _random_args(H=8)[3]
    assert f"compiled for {WIDTH}" in native_refusal(h, ei, ea, *narrow, "relu")
    assert "dtype" in native_refusal(h.half(), ei, ea.half(), *(p.half() for p in params), "relu")
    assert "dtype" in native_refusal(h.float(), ei, ea, *params, "relu")  # mixed dtypes
    assert "dimensions" in native_refusal(h[0], ei, ea[0], *params, "relu")
    ops_backend.reset_usage()
    torch.testing.assert_close(interaction(h, ei, ea, *narrow, "relu", backend="native"),
                               reference(h, ei, ea, *narrow, "relu"), rtol=0, atol=0)
    assert ops_backend.usage()["interaction"] == {"native": 0, "torch": 1,
                                                  "reason": f"hidden width 8 (the kernel is compiled for {WIDTH})"}
    layer = InteractionLayer(3, 2, hidden=8, act="gelu")
    layer.backend = "native"
    assert layer(torch.randn(2, 4, 3), torch.tensor([[0], [1]])).shape == (2, 4, 2)


def test_no_edges_gives_the_node_mlp_of_h_alone(spy):
    torch.manual_seed(5)
    layer = InteractionLayer(3, 2, hidden=WIDTH).double()
    h = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    (out_n, out_p), (g_n, g_p) = _both_backends(layer, h, torch.zeros(2, 0, dtype=torch.long), None)
    assert spy == [True]
    torch.testing.assert_close(out_n, layer.node_mlp(torch.cat([h, torch.zeros(2, 4, WIDTH, dtype=h.dtype)], -1)))
    torch.testing.assert_close(out_n, out_p, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_n, g_p):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
