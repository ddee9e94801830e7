"""The multi-channel EGNN edge kernel (graphdyn.ops.egnn_multichannel_native) against plain autograd.

The reference below is the math of graphdyn/nn/egnn_fused.py's docstring, written out with
autograd: float64 values and every gradient must agree to rounding, gradcheck must pass on a tiny
case, and torch.library.opcheck on both custom ops.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from graphdyn import native
from graphdyn.ops import egnn_multichannel_native as mc

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels unavailable")

H = 16
ACT = {"leaky_relu": lambda z: F.leaky_relu(z, 0.2), "silu": F.silu, "relu": F.relu, "tanh": torch.tanh}


def cfg(act="leaky_relu", C=4, clamp=None, coords=True):
    return SimpleNamespace(act=act, slope=0.2, channels=C, unit_vectors=False, clamp=clamp, update_coords=coords)


def reference(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, c):
    """Plain autograd: Gram radial, message MLP, per-channel coordinate weights, sums at receivers."""
    f = ACT[c.act]
    i, j = edge_index
    d = x[i] - x[j]  # [E, ..., C, D]
    gram = (d @ d.transpose(-1, -2)).flatten(-2)
    radial = gram / gram.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    z1 = F.linear(h[i], W1[:, :H], b1) + F.linear(h[j], W1[:, H:]) + F.linear(radial, Wr)
    if Q is not None:
        z1 = z1 + Q
    m = f(F.linear(f(z1), W2, b2))
    M = torch.zeros_like(h).index_add(0, i, m)
    if not c.update_coords:
        return M, x.new_zeros(0)
    phi = F.linear(f(F.linear(m, Wc1, bc1)), Wc2)
    t = d * phi.unsqueeze(-1)
    if c.clamp is not None:
        t = t.clamp(-c.clamp, c.clamp)
    return M, torch.zeros_like(x).index_add(0, i, t)


EDGES = torch.tensor([[0, 1, 1, 2, 3, 0, 4, 2, 1, 3], [1, 0, 2, 2, 0, 3, 4, 1, 2, 4]])  # self-loops 2-2, 4-4; 1<-2 twice


def make(C=4, D=3, batch=(2, 3), q=None, coords=True, dtype=torch.float64, seed=0, N=5, edges=EDGES):
    """Arguments of the op: h [N, *batch, H], x [N, *batch, C, D], Q per ``q`` ("edge": [E, *batch, H],
    "bcast": [E, batch[0], 1, H], "shared": [1, batch[0], 1, H]), weights at a scale where the
    activations see both signs."""
    gen = torch.Generator().manual_seed(seed)

    def t(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_()

    E = edges.shape[1]
    Q = None
    if q == "edge":
        Q = t(E, *batch, H, scale=0.3)
    elif q == "bcast":
        Q = t(E, batch[0], *([1] * (len(batch) - 1)), H, scale=0.3)
    elif q == "shared":
        Q = t(1, batch[0], *([1] * (len(batch) - 1)), H, scale=0.3)
    cw = [t(H, H, scale=0.3), t(H, scale=0.1), t(C, H, scale=0.5)] if coords else [None] * 3
    return [t(N, *batch, H), t(H, 2 * H, scale=0.3), t(H, scale=0.1), t(N, *batch, C, D), Q, t(H, C * C, scale=0.5),
            t(H, H, scale=0.3), t(H, scale=0.1), *cw, edges]


def outputs_and_grads(fn, args, c, seed=1):
    """Outputs and the gradients of a random projection of them with respect to every tensor argument."""
    M, X = fn(*args, c)
    gen = torch.Generator().manual_seed(seed)
    loss = (M * torch.randn(M.shape, generator=gen, dtype=torch.float64).to(M.dtype)).sum()
    if X.numel():
        loss = loss + (X * torch.randn(X.shape, generator=gen, dtype=torch.float64).to(X.dtype)).sum()
    leaves = [a for a in args[:-1] if a is not None]
    return [M, X], list(torch.autograd.grad(loss, leaves))


def assert_same(args, c, tol=1e-12):
    got, gg = outputs_and_grads(mc.egnn_edges_mc_native, args, c)
    ref, rg = outputs_and_grads(reference, args, c)
    for a, b in zip(got + gg, ref + rg):
        assert a.shape == b.shape
        if b.numel() == 0:
            continue
        scale = b.abs().max().clamp_min(1.0)
        assert (a - b).abs().max() <= tol * scale, (a - b).abs().max()


@pytest.mark.parametrize("C", [2, 4])
@pytest.mark.parametrize("q", [None, "edge", "bcast", "shared"])
@pytest.mark.parametrize("clamp", [None, 0.3])
@pytest.mark.parametrize("act", ["leaky_relu", "silu"])
def test_parity_float64(C, q, clamp, act):
    args = make(C=C, q=q)
    c = cfg(act, C, clamp)
    assert mc.native_refusal(*args, c) is None
    assert_same(args, c)


def test_clamp_bites():
    """The clamp of the cases above clips some per-edge updates (else the clamp tests test nothing)."""
    args = make(C=4)
    _, free = reference(*args, cfg(clamp=None))
    _, clipped = reference(*args, cfg(clamp=0.3))
    assert (free - clipped).abs().max() > 1e-3


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_parity_other_acts_2d_one_batch_axis(act):
    args = make(C=3, D=2, batch=(4,), q="edge")
    assert_same(args, cfg(act, 3, 0.5))


def test_parity_without_coordinates():
    args = make(C=4, q="bcast", coords=False)
    c = cfg("leaky_relu", 4, coords=False)
    M, X = mc.egnn_edges_mc_native(*args, c)
    assert X.numel() == 0
    assert_same(args, c)


def test_parity_two_threads_odd_rows():
    """Rows split between threads (odd counts, groups of rep rows for the broadcast Q), more rows
    than one tile, and more than one block per tile."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        args = make(C=4, batch=(7, 5), q="bcast", N=40, edges=torch.randint(0, 40, (2, 90), generator=torch.Generator().manual_seed(3)))
        assert_same(args, cfg("leaky_relu", 4, 0.5))
    finally:
        torch.set_num_threads(old)


def test_matches_egnn_fused():
    """The same numbers as the chunked PyTorch op of graphdyn.nn.egnn_fused (where it exists)."""
    egnn_fused = pytest.importorskip("graphdyn.nn.egnn_fused")
    args = make(C=4, q="bcast")
    c = egnn_fused.EdgeConfig(act="leaky_relu", channels=4, clamp=0.3, native=False)
    got, gg = outputs_and_grads(mc.egnn_edges_mc_native, args, c)
    ref, rg = outputs_and_grads(egnn_fused.egnn_edges, args, c)
    for a, b in zip(got + gg, ref + rg):
        assert torch.allclose(a, b, rtol=1e-11, atol=1e-12)


def test_float32_close():
    args64 = make(C=4, q="bcast")
    args32 = [a.detach().float().requires_grad_() if torch.is_tensor(a) and a.is_floating_point() else a for a in args64]
    c = cfg("silu", 4, 0.3)
    got, gg = outputs_and_grads(mc.egnn_edges_mc_native, args32, c)
    ref, rg = outputs_and_grads(reference, args64, c)
    assert got[0].dtype == torch.float32
    for a, b in zip(got + gg, ref + rg):
        assert (a.double() - b).abs().max() <= 1e-4 * b.abs().max().clamp_min(1.0)


def test_gradcheck():
    edges = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])  # no self-loops: the Gram norm's floor is a kink
    args = make(C=2, batch=(2, 2), q="bcast", N=3, edges=edges)
    c = cfg("silu", 2, 0.8)
    tensors = [a for a in args[:-1] if a is not None]

    def fn(*ts):
        it = iter(ts)
        full = [next(it) if a is not None else None for a in args[:-1]]
        return mc.egnn_edges_mc_native(*full, edges, c)

    assert torch.autograd.gradcheck(fn, tensors, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_opcheck():
    args = make(C=2, batch=(2, 3), q="bcast", N=5)
    op, call = mc.native_call(*args, cfg("leaky_relu", 2, 0.3))
    torch.library.opcheck(op, call)
    h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send, rep, act, clampv = call
    d = [t.detach() for t in (h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2)]
    gm, gt = torch.randn_like(d[0]), torch.randn_like(d[3])
    torch.library.opcheck(torch.ops.graphdyn.egnn_edges_mc_backward.default,
                          (gm, gt, *d, recv, send, rep, act, clampv, True, True, True))
    # without edge projections or coordinate update (optional arguments None, empty outputs)
    args = make(C=3, batch=(2,), coords=False)
    op, call = mc.native_call(*args, cfg("silu", 3, coords=False))
    torch.library.opcheck(op, call)


def test_backward_op_skips_unwanted_gradients():
    args = make(C=4, q="edge")
    op, call = mc.native_call(*args, cfg())
    h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send, rep, act, clampv = call
    d = [t.detach() for t in (h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2)]
    grads = torch.ops.graphdyn.egnn_edges_mc_backward(torch.ones_like(d[0]), torch.ones_like(d[3]), *d, recv, send, rep,
                                                      act, clampv, False, False, False)
    assert grads[0].numel() == grads[3].numel() == grads[4].numel() == 0
    assert grads[1].shape == (H, 2 * H) and grads[5].shape == (H, 16) and grads[10].shape == (4, H)


@pytest.mark.parametrize(
    "change, word",
    [
        (lambda a, c: (a, cfg(c.act, None)), "single-channel"),
        (lambda a, c: (a, cfg("gelu")), "activation"),
        (lambda a, c: (a, SimpleNamespace(**{**vars(cfg("leaky_relu")), "slope": 0.01})), "slope 0.01"),
        (lambda a, c: (make(C=6), cfg(C=6)), "channels"),
        (lambda a, c: (a[:3] + [a[3].detach()[..., :2, :]] + a[4:], c), "x"),
        (lambda a, c: (a[:5] + [a[5].detach()[:, :9]] + a[6:], c), "Wr"),
        (lambda a, c: (a[:4] + [torch.zeros(10, 3, 2, H, dtype=torch.float64)] + a[5:], c), "Q"),
        (lambda a, c: ([t.detach().to(torch.bfloat16) if torch.is_tensor(t) and t.is_floating_point() else t for t in a], c), "dtype"),
    ],
)
def test_refusals(change, word):
    args, c = change(make(C=4), cfg())
    why = mc.native_refusal(*args, c)
    assert why is not None and word in why
    assert mc.egnn_edges_mc_native(*args, c) is None


def test_refuses_other_widths():
    args = make(C=4)
    args[0] = args[0].detach()[..., :8]
    assert "hidden width" in mc.native_refusal(*args, cfg())


def test_bad_edges_raise():
    args = make(C=4)
    args[-1] = torch.tensor([[0, 5], [1, 0]])
    with pytest.raises(IndexError, match="edge_index"):
        mc.egnn_edges_mc_native(*args, cfg())
