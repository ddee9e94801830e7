"""The node-update op: the native kernel computes the reference's values and gradients wherever it
takes a call, and says why where it does not."""

from __future__ import annotations

import pytest
import torch

from graphdyn import native
from graphdyn.ops import backend as ops_backend
from graphdyn.ops.node_update import WIDTHS, native_refusal, node_update, reference
from thread_counts import assert_deterministic_across_threads

needs_native = pytest.mark.skipif(not native.available(), reason="native kernels unavailable: " + str(native.status()["error"]))

H = WIDTHS[0]
# rows = N * B * T = 105: neither a multiple of the kernel's row block (16) nor of 4, and with
# q broadcast over frames (rep = T = 5) the row blocks straddle rep-groups
N, B, T = 7, 3, 5
QSHAPES = ["none", "frames", "full"]  # q None, [N, B, 1, H] (broadcast over T), [N, B, T, H]


def _inputs(qkind="frames", n=N, b=B, t=T, width=H, seed=0, dtype=torch.float64):
    """h, g [n, b, t, width], q (see QSHAPES) and the five weights Wh, Wg, b1, W2, b2, all requiring grad."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_()

    h, g = r(n, b, t, width), r(n, b, t, width, scale=0.7)
    qs = {"none": None, "frames": (n, b, 1, width), "full": (n, b, t, width)}[qkind]
    q = None if qs is None else r(*qs, scale=0.5)
    return h, g, q, [r(width, width, scale=0.3), r(width, width, scale=0.3), r(width, scale=0.1),
                     r(width, width, scale=0.3), r(width, scale=0.1)]


def _run(backend, h, g, q, w, act="silu"):
    """[h', gradients w.r.t. every input requiring grad] under a fixed random upstream gradient."""
    out = node_update(h, g, q, *w, act=act, backend=backend)
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(out.dtype)
    inputs = [t for t in (h, g, q, *w) if t is not None and t.requires_grad]
    return [out.detach(), *torch.autograd.grad(out, inputs, go)]


def _native(*args, **kw):
    ops_backend.reset_usage()
    out = _run("native", *args, **kw)
    assert ops_backend.usage()["node_update"]["native"] == 1, ops_backend.usage()
    return out


def _match(got, ref, rtol=1e-10, atol=1e-10):
    assert len(got) == len(ref)
    for k, (a, b) in enumerate(zip(got, ref)):
        assert a.shape == b.shape, k
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m, k=k: f"output/gradient {k}: {m}")


def test_reference_is_the_rule():
    h, g, q, (Wh, Wg, b1, W2, b2) = _inputs("frames", seed=3)
    want = h + (torch.tanh(h @ Wh.T + g @ Wg.T + q + b1)) @ W2.T + b2
    torch.testing.assert_close(reference(h, g, q, Wh, Wg, b1, W2, b2, act="tanh"), want, rtol=1e-12, atol=1e-12)


@needs_native
@pytest.mark.parametrize("size", [(N, B, T), (3, 1, 5), (5, 2, 9), (1, 1, 1)], ids=["105rows", "15rows", "90rows", "1row"])
@pytest.mark.parametrize("qkind", QSHAPES)
@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
def test_native_matches_the_reference(act, qkind, size):
    h, g, q, w = _inputs(qkind, *size, seed=sum(size))
    got = _native(h, g, q, w, act=act)
    _match(got, _run("torch", h, g, q, w, act=act))
    if q is not None:
        assert got[3].shape == q.shape


@needs_native
def test_update_is_not_trivial():
    """A guard on the comparisons: h' moves away from h, and q changes h' (so the broadcast is read)."""
    h, g, q, w = _inputs("frames")
    out = node_update(h, g, q, *w, backend="native").detach()
    assert (out - h).abs().amax() > 1e-2
    assert (out - node_update(h, g, None, *w, backend="native")).abs().amax() > 1e-2
    q2 = q.detach().clone()
    q2[2, 1] += 1.0  # with q broadcast over frames: only node 2's frames of batch entry 1 change
    diff = (node_update(h, g, q2, *w, backend="native").detach() - out).abs().amax(-1)  # [N, B, T]
    assert (diff[2, 1] > 1e-3).all()
    diff[2, 1] = 0
    assert diff.amax() == 0


@needs_native
@pytest.mark.parametrize("qkind", QSHAPES)
@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
def test_float32_matches_float64(act, qkind):
    ref = _run("torch", *_inputs(qkind, 9, 4, 5, seed=6), act=act)
    got = _native(*_inputs(qkind, 9, 4, 5, seed=6, dtype=torch.float32), act=act)
    assert all(t.dtype == torch.float32 for t in got)
    for k, (a, b) in enumerate(zip(got, ref)):  # weight gradients sum over rows: relative to their size
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5 * max(1.0, b.abs().amax().item()),
                                   msg=lambda m, k=k: f"output/gradient {k}: {m}")


@needs_native
@pytest.mark.parametrize("scale", [30.0, 1e3, 1e6])
def test_float32_silu_at_extreme_pre_activations(scale):
    """Pre-activations far outside float32 exp's range ([-87, 88], clamped in the kernel) still
    give PyTorch's float32 values: silu(z) -> z for z >> 0 and -> -0 for z << 0, finite gradients."""
    h, g, q, w = _inputs("none", 5, 2, 3, dtype=torch.float32, seed=11)
    with torch.no_grad():
        w[0].mul_(scale)  # z = Wh h + ... spans about +-scale
    got, ref = _native(h, g, q, w), _run("torch", h, g, q, w)
    for k, (a, b) in enumerate(zip(got, ref)):
        assert torch.isfinite(a).all(), k
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * max(1.0, b.abs().amax().item()))


@needs_native
@pytest.mark.parametrize("qkind", ["none", "frames"])
def test_deterministic_for_a_thread_count_and_close_across_counts(qkind):
    """Threads own ranges of rep-groups of rows and sum weight-gradient buffers in thread order:
    reruns are bit-identical; another thread count only reorders the weight-gradient sums."""
    h, g, q, w = _inputs(qkind, n=13, b=3, t=5, seed=8)  # 195 rows, 39 rep-groups
    assert_deterministic_across_threads(lambda: _run("native", h, g, q, w))


@needs_native
@pytest.mark.parametrize("grads", ["h", "g", "q", "W", "h,W", "g,q"])
def test_only_some_inputs_require_grad(grads):
    h, g, q, w = _inputs("frames", seed=9)
    wanted = grads.split(",")
    h, g, q = (t.detach().requires_grad_(n in wanted) for t, n in ((h, "h"), (g, "g"), (q, "q")))
    w = [t.detach().requires_grad_("W" in wanted) for t in w]
    _match(_native(h, g, q, w, act="tanh"), _run("torch", h, g, q, w, act="tanh"))


def test_refusals_name_the_limit_and_the_reference_runs():
    h, g, q, w = _inputs("frames")
    if native.available():
        assert native_refusal(h, g, q, *w) is None
    h8, g8, q8, w8 = _inputs("frames", width=8)
    assert "hidden width 8" in native_refusal(h8, g8, q8, *w8)
    assert "activation 'gelu'" in native_refusal(h, g, q, *w, act="gelu")
    for qs in ((1, B, 1, H), (1, 1, 1, H), (N, 1, T, H), (N, B, T, 1), (B, 1, H)):  # shared over nodes, other broadcasts
        assert "node projections q" in native_refusal(h, g, torch.zeros(qs, dtype=torch.float64), *w), qs
    assert "messages g" in native_refusal(h, g[:, :1], q, *w)
    assert "dtype" in native_refusal(h.detach().float(), g, q, *w)
    assert "dtype" in native_refusal(h, g, q, *w[:-1], w[-1].detach().float())
    if native.available():  # under the native backend the reference runs, the same numbers, and the reason is kept
        for act in ("gelu", "leaky_relu"):
            if act in native.ACTS:
                continue
            ops_backend.reset_usage()
            got = _run("native", h, g, q, w, act=act)
            ran = ops_backend.usage()["node_update"]
            assert (ran["native"], ran["torch"]) == (0, 1) and ran["reason"].startswith(f"activation {act!r}")
            for a, b in zip(got, _run("torch", h, g, q, w, act=act)):
                assert torch.equal(a, b)
    # a dtype without kernels (bfloat16): the reference runs
    hb, gb, qb, wb = _inputs("frames", dtype=torch.bfloat16)
    out = node_update(hb, gb, qb, *wb, backend="native" if native.available() else "torch")
    ref = reference(*(t.detach().double() for t in (hb, gb, qb, *wb)))
    torch.testing.assert_close(out.double(), ref, rtol=0.05, atol=0.1)
    with pytest.raises(ValueError, match="act 'swish'"):
        node_update(h, g, q, *w, act="swish")
