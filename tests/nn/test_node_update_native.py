"""The native EGNN node-update kernel computes the PyTorch op's function and gradients."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from graphdyn import native
from graphdyn.nn import node_update_fused
from graphdyn.nn.egnn import EGNNLayer
from graphdyn.nn.egnn_fused import EdgeConfig
from graphdyn.nn.node_update_fused import node_update
from graphdyn.nn.node_update_native import WIDTHS, node_update_native
from thread_counts import assert_deterministic_across_threads

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels unavailable (no C compiler)")

H = WIDTHS[0]
# rows = N * B * T = 105: neither a multiple of the kernel's row block (16) nor of 4, and with
# q broadcast over frames (rep = T = 5) the row blocks straddle rep-groups
N, B, T = 7, 3, 5
WEIGHT_NAMES = ["Wh", "Wg", "b1", "W2", "b2"]
QSHAPES = ["none", "frames", "full"]  # q None, [N, B, 1, H] (broadcast over T), [N, B, T, H]


def _qshape(kind, n, b, t, width):
    return {"none": None, "frames": (n, b, 1, width), "full": (n, b, t, width)}[kind]


def _inputs(qkind="frames", n=N, b=B, t=T, width=H, seed=0, dtype=torch.float64):
    """h, g [n, b, t, width], q (see QSHAPES) and the five weights, all leaves requiring grad."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_()

    h = r(n, b, t, width)
    g = r(n, b, t, width, scale=0.7)
    qs = _qshape(qkind, n, b, t, width)
    q = None if qs is None else r(*qs, scale=0.5)
    weights = [
        r(width, width, scale=0.3),
        r(width, width, scale=0.3),
        r(width, scale=0.1),
        r(width, width, scale=0.3),
        r(width, scale=0.1),
    ]
    return h, g, q, weights


def _run(fn, h, g, q, weights, seed=1):
    """[h', gradients w.r.t. every input requiring grad] under a random upstream gradient."""
    out = fn(h, g, q, *weights)
    gen = torch.Generator().manual_seed(seed)
    go = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)
    inputs = [t for t in (h, g, q, *weights) if t is not None and t.requires_grad]
    return [out.detach(), *torch.autograd.grad(out, inputs, go)]


def _native(act):
    def f(h, g, q, *w):
        out = node_update_native(h, g, q, *w, act)
        assert out is not None, "the native kernel did not apply"
        return out

    return f


def _pytorch(act):
    return lambda h, g, q, *w: node_update(h, g, q, *w, EdgeConfig(act=act, native=False))


def _public(act):
    return lambda h, g, q, *w: node_update(h, g, q, *w, EdgeConfig(act=act))


def _names(h, g, q, weights):
    return ["h'"] + [n for n, t in zip(["h", "g", "q", *WEIGHT_NAMES], (h, g, q, *weights))
                     if t is not None and t.requires_grad]


def _assert_match(got, ref, names, rtol, atol):
    assert len(got) == len(ref) == len(names)
    for name, a, b in zip(names, got, ref):
        assert a.shape == b.shape, name
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("size", [(N, B, T), (3, 1, 5), (5, 2, 9), (1, 1, 1)], ids=["105rows", "15rows", "90rows", "1row"])
@pytest.mark.parametrize("qkind", QSHAPES)
@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
def test_native_matches_the_pytorch_op(act, qkind, size):
    h, g, q, w = _inputs(qkind, *size, seed=sum(size))
    got = _run(_native(act), h, g, q, w)
    ref = _run(_pytorch(act), h, g, q, w)
    names = _names(h, g, q, w)
    _assert_match(got, ref, names, rtol=1e-10, atol=1e-10)
    if q is not None:
        assert got[names.index("q")].shape == q.shape
    # the public op with native on dispatches to the kernel: the very same numbers
    for a, b in zip(_run(_public(act), h, g, q, w), got):
        assert torch.equal(a, b)


def test_update_is_not_trivial():
    """A guard on the comparisons: h' moves away from h, and q changes h' (so the broadcast is read)."""
    h, g, q, w = _inputs("frames")
    out = _native("silu")(h, g, q, *w).detach()
    assert (out - h).abs().amax() > 1e-2
    assert (out - _native("silu")(h, g, None, *w)).abs().amax() > 1e-2
    # with q broadcast over frames, changing one node's q row changes only that node's frames
    q2 = q.detach().clone()
    q2[2, 1] += 1.0
    diff = (_native("silu")(h, g, q2, *w).detach() - out).abs().amax(-1)  # [N, B, T]
    assert (diff[2, 1] > 1e-3).all()
    diff[2, 1] = 0
    assert diff.amax() == 0


@pytest.mark.parametrize("qkind", ["frames", "full"])
@pytest.mark.parametrize("act", ["silu", "tanh"])
def test_gradcheck(act, qkind):
    h, g, q, w = _inputs(qkind, n=2, b=2, t=3, seed=5)

    def f(h, g, q, *w):
        return _native(act)(h, g, q, *w)

    assert torch.autograd.gradcheck(f, (h, g, q, *w), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("qkind", QSHAPES)
@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
def test_float32_matches_float64(act, qkind):
    size = (9, 4, 5)  # 180 rows
    h, g, q, w = _inputs(qkind, *size, seed=6)
    ref = _run(_pytorch(act), h, g, q, w)
    h32, g32, q32, w32 = _inputs(qkind, *size, seed=6, dtype=torch.float32)
    got = _run(_native(act), h32, g32, q32, w32)
    assert all(t.dtype == torch.float32 for t in got)
    for name, a, b in zip(_names(h, g, q, w), got, ref):
        scale = b.abs().amax().item()  # weight gradients sum over rows: relative to their size
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5 * max(1.0, scale),
                                   msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("scale", [30.0, 1e3, 1e6])
def test_float32_silu_at_extreme_pre_activations(scale):
    """Pre-activations far outside float32 exp's range ([-87, 88], clamped in the kernel; the
    clamp runs in a loop of its own) still give PyTorch's float32 values: silu(z) -> z for
    z >> 0 and -> -0 for z << 0, and finite gradients."""
    h, g, q, w = _inputs("none", 5, 2, 3, dtype=torch.float32, seed=11)
    with torch.no_grad():
        w[0].mul_(scale)  # z = Wh h + ... spans about +-scale
    got = _run(_native("silu"), h, g, q, w)
    ref = _run(_pytorch("silu"), h, g, q, w)
    for name, a, b in zip(_names(h, g, q, w), got, ref):
        assert torch.isfinite(a).all(), name
        bound = b.abs().amax().item()
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * max(1.0, bound), msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("qkind", ["none", "frames"])
def test_deterministic_for_a_thread_count_and_close_across_counts(qkind):
    """Threads own ranges of rep-groups of rows and sum weight-gradient buffers in thread order:
    reruns are bit-identical; another thread count only reorders the weight-gradient sums."""
    h, g, q, w = _inputs(qkind, n=13, b=3, t=5, seed=8)  # 195 rows, 39 rep-groups
    assert_deterministic_across_threads(lambda: _run(_native("silu"), h, g, q, w))


def _assert_fallback(h, g, q, w, act):
    """The kernel declines, and node_update (native on) runs the PyTorch op: the same numbers."""
    assert node_update_native(h, g, q, *w, act) is None
    got = _run(_public(act), h, g, q, w)
    ref = _run(_pytorch(act), h, g, q, w)
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert torch.equal(a, b)


def test_unsupported_cases_fall_back_to_pytorch():
    # hidden width 8 is not compiled
    h, g, q, w = _inputs("frames", width=8)
    _assert_fallback(h, g, q, w, "silu")
    # activations the kernel lacks
    for act in ("gelu", "leaky_relu"):
        h, g, q, w = _inputs("frames")
        _assert_fallback(h, g, q, w, act)
    # q shared over nodes, or broadcast over an axis other than the trailing batch axes
    for qs in ((1, B, 1, H), (1, 1, 1, H), (1, B, T, H), (N, 1, T, H), (N, B, T, 1)):
        h, g, _, w = _inputs("none")
        q = (0.5 * torch.randn(*qs, dtype=torch.float64)).requires_grad_()
        _assert_fallback(h, g, q, w, "tanh")
    # mismatched dtypes: the kernel declines, and the PyTorch op reports the mismatch
    h, g, q, w = _inputs("frames")
    h32 = h.detach().float().requires_grad_()
    assert node_update_native(h32, g, q, *w, "silu") is None
    assert node_update_native(h, g, q.detach().float(), *w, "silu") is None
    assert node_update_native(h, g, q, *w[:-1], w[-1].detach().float(), "silu") is None
    with pytest.raises(RuntimeError):
        node_update(h32, g, q, *w, EdgeConfig())
    # a dtype without kernels (bfloat16): the PyTorch op runs
    hb, gb, qb, wb = _inputs("frames", dtype=torch.bfloat16)
    assert node_update_native(hb, gb, qb, *wb, "silu") is None
    out = node_update(hb, gb, qb, *wb, EdgeConfig())
    ref = node_update(*(t.detach().double() for t in (hb, gb, qb, *wb)), EdgeConfig(native=False))
    torch.testing.assert_close(out.double(), ref, rtol=0.05, atol=0.1)


@pytest.mark.parametrize("grads", ["h", "g", "q", "W", "h,W", "g,q"])
def test_only_some_inputs_require_grad(grads):
    h, g, q, w = _inputs("frames", seed=9)
    wanted = grads.split(",")
    h = h.detach().requires_grad_("h" in wanted)
    g = g.detach().requires_grad_("g" in wanted)
    q = q.detach().requires_grad_("q" in wanted)
    w = [t.detach().requires_grad_("W" in wanted) for t in w]
    got = _run(_native("tanh"), h, g, q, w)
    ref = _run(_pytorch("tanh"), h, g, q, w)
    _assert_match(got, ref, _names(h, g, q, w), rtol=1e-10, atol=1e-10)


def _module_grads(layer, h, x, node_attr, edges):
    gen = torch.Generator().manual_seed(7)
    hp, xp = layer(h, x, edges, node_attr=node_attr, node_dim=0)
    gh = torch.randn(hp.shape, generator=gen, dtype=hp.dtype)
    gx = torch.randn(xp.shape, generator=gen, dtype=xp.dtype)
    inputs = [h, x, node_attr, *layer.parameters()]
    return [hp.detach(), xp.detach(), *torch.autograd.grad((hp, xp), inputs, (gh, gx))]


@pytest.mark.parametrize("agg", ["sum", "mean"])
@pytest.mark.parametrize("attr", ["frames", "full"])
@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
def test_egnn_layer_native_matches_pytorch(act, attr, agg, monkeypatch):
    torch.manual_seed(3)
    layer = EGNNLayer(H, node_attr_dim=3, act=act, message_agg=agg, coord_gain=1.0).double()
    gen = torch.Generator().manual_seed(4)
    n, b, t = 6, 2, 5  # 60 rows
    h = torch.randn(n, b, t, H, generator=gen, dtype=torch.float64, requires_grad=True)
    x = torch.randn(n, b, t, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    na = torch.randn(n, b, 1 if attr == "frames" else t, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    edges = torch.tensor([[0, 1, 1, 2, 3, 4, 5, 0, 2], [1, 0, 2, 1, 4, 3, 0, 5, 4]])  # node 5 receives one edge

    calls = []
    real_native = node_update_fused.node_update_native

    def spy(*args):
        out = real_native(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(node_update_fused, "node_update_native", spy)
    on = _module_grads(layer, h, x, na, edges)
    assert calls == [True]  # the layer's node update ran through the kernel
    monkeypatch.setattr(node_update_fused, "node_update_native", lambda *a: None)
    off = _module_grads(layer, h, x, na, edges)
    layer.fused = False
    plain = _module_grads(layer, h, x, na, edges)
    names = ["h'", "x'", "h", "x", "node_attr"] + [nm for nm, _ in layer.named_parameters()]
    assert on[4].shape == na.shape
    assert (on[0] - h).abs().amax() > 1e-2
    for ref in (off, plain):
        _assert_match(on, ref, names, rtol=1e-10, atol=1e-10)
