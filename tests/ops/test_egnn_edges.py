"""The EGNN edge op: the reference is EGNN's math written out per edge; the native kernel computes
the reference's values and gradients wherever it takes a call, and says why where it does not."""

from __future__ import annotations

import pytest
import torch

from graphdyn import native
from graphdyn.nn.egnn import EGNNLayer
from graphdyn.ops import backend as ops_backend
from graphdyn.ops.egnn_edges import MAX_D, egnn_edges, native_refusal, reference
from thread_counts import assert_deterministic_across_threads

needs_native = pytest.mark.skipif(not native.available(), reason="native kernels unavailable: " + str(native.status()["error"]))

N, B, T, H, D, E = 6, 3, 5, 16, 3, 14  # T = 5: the kernel's row blocks of 4 plus a remainder


def _inputs(seed=0, qshape=None, h=H, n=N, b=B, t=T, e=E, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype).requires_grad_()

    ei = torch.randint(0, n, (2, e), generator=g)
    ei[1] = torch.where(ei[1] == ei[0], (ei[0] + 1) % n, ei[1])  # no self-loops: unit vectors need |d| > 0
    hn, W1, b1, x = r(n, b, t, h), r(h, 2 * h, scale=0.3), r(h), r(n, b, t, D)
    Q = None if qshape is None else r(*qshape)
    weights = [r(h, 1, scale=0.3), r(h, h, scale=0.3), r(h), r(h, h, scale=0.3), r(h), r(1, h, scale=0.3)]
    return ei, hn, W1, b1, x, Q, weights


def _call(backend, ei, h, W1, b1, x, Q, weights, coords=True, **kw):
    """(M, X) and the gradients of every input requiring one, under a fixed linear loss."""
    Wr, W2, b2, Wc1, bc1, Wc2 = weights
    coord = (Wc1, bc1, Wc2) if coords else (None, None, None)
    inputs = [t for t in (h, W1, b1, x, Q, Wr, W2, b2, *coord) if t is not None and t.requires_grad]
    m, t = egnn_edges(h, W1, b1, x, Q, Wr, W2, b2, *coord, ei, backend=backend, **kw)
    loss = (m * torch.linspace(-1, 1, m.numel(), dtype=m.dtype).view_as(m)).sum()
    if coords:
        loss = loss + (t * torch.linspace(1, 2, t.numel(), dtype=t.dtype).view_as(t)).sum()
    return [m.detach(), t.detach(), *torch.autograd.grad(loss, inputs)]


def _both(*args, **kw):
    ops_backend.reset_usage()
    on = _call("native", *args, **kw)
    assert ops_backend.usage()["egnn_edges"]["native"] == 1, ops_backend.usage()
    return on, _call("torch", *args, **kw)


def _direct(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, ei, act, unit_vectors, clamp):
    """EGNN's rule edge by edge with concatenated inputs (h, x [N, H | D], Q [E, H] or None)."""
    f = {"silu": torch.nn.functional.silu, "tanh": torch.tanh, "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.2)}[act]
    M, X = torch.zeros_like(h), torch.zeros_like(x)
    for e, (i, j) in enumerate(ei.T.tolist()):
        d = x[i] - x[j]
        if x.dim() == 3:  # multi-channel [N, C, D]
            G = d @ d.T
            r = (G / G.norm().clamp_min(1e-12)).flatten()
        else:
            r = (d * d).sum(-1, keepdim=True)
        z = W1 @ torch.cat([h[i], h[j]]) + b1 + Wr @ r + (0 if Q is None else Q[e])
        m = f(W2 @ f(z) + b2)
        M[i] += m
        phi = Wc2 @ f(Wc1 @ m + bc1)
        t = d * phi[:, None] if x.dim() == 3 else (d / d.norm() if unit_vectors else d) * phi
        X[i] += t if clamp is None else t.clamp(-clamp, clamp)
    return M, X


@pytest.mark.parametrize("act,unit,clamp,channels", [("silu", True, 100.0, None), ("tanh", False, 0.2, None),
                                                     ("leaky_relu", False, None, 3), ("silu", False, 0.1, 2)])
def test_reference_is_the_rule_edge_by_edge(act, unit, clamp, channels):
    gen = torch.Generator().manual_seed(5)
    n, hw, C = 5, 6, channels
    ei = torch.tensor([[0, 1, 1, 2, 3, 0, 4, 2], [1, 0, 2, 4, 0, 3, 2, 1]])
    h = torch.randn(n, hw, generator=gen, dtype=torch.float64)
    x = torch.randn(n, *((C,) if C else ()), 3, generator=gen, dtype=torch.float64)
    R = C * C if C else 1
    W = [torch.randn(*s, generator=gen, dtype=torch.float64) for s in
         [(hw, 2 * hw), (hw,), (hw, R), (hw, hw), (hw,), (hw, hw), (hw,), (C or 1, hw)]]
    Q = torch.randn(ei.shape[1], hw, generator=gen, dtype=torch.float64)
    args = (h, W[0], W[1], x, Q, *W[2:], ei)
    got = reference(*args, act=act, unit_vectors=unit, clamp=clamp)
    want = _direct(*args, act, unit, clamp)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    if clamp is not None and clamp < 1:  # the clamp bit on some edges
        unclamped = reference(*args, act=act, unit_vectors=unit, clamp=None)[1]
        assert (unclamped - got[1]).abs().amax() > 1e-3


@needs_native
@pytest.mark.parametrize("act", ["silu", "relu", "tanh"])
@pytest.mark.parametrize("unit,clamp", [(False, None), (True, None), (False, 0.3), (True, 0.3)])
@pytest.mark.parametrize("coords", [True, False])
def test_native_matches_the_reference(act, unit, clamp, coords):
    on, off = _both(*_inputs(), coords=coords, act=act, unit_vectors=unit, clamp=clamp)
    for a, b in zip(on, off):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@needs_native
@pytest.mark.parametrize("qshape", [(E, B, 1, H), (E, B, T, H), (1, 1, 1, H), (E, 1, 1, H)])
def test_edge_attribute_projections_broadcast(qshape):
    on, off = _both(*_inputs(1, qshape), unit_vectors=True)
    for a, b in zip(on, off):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@needs_native
def test_many_nodes_run_in_tiles_of_rows():
    """With 300 nodes, a thread's node projections for all nodes fill its cache-sized scratch
    after 4 rows (float64), so its 10 or 5 rows run as tiles of 4, 4, 2 (or 4, 1), each with its
    own projections and its own g_P, g_S: the results still match the reference."""
    args = _inputs(4, (600, 2, 1, H), n=300, b=2, t=5, e=600)
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            on, off = _both(*args, unit_vectors=True, clamp=0.3)
        finally:
            torch.set_num_threads(before)
        for a, b in zip(on, off):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@needs_native
def test_deterministic_for_a_thread_count_and_close_across_counts():
    """Threads own ranges of rows (B T = 15 here: unequal ranges) and sum weight gradients in
    thread order: reruns are bit-identical; another thread count only reorders those sums."""
    args = _inputs(3, (E, B, 1, H))
    assert_deterministic_across_threads(lambda: _call("native", *args, unit_vectors=True, clamp=0.3))


@needs_native
def test_float32_matches_float64():
    ref = _call("torch", *_inputs(2, (E, B, 1, H)))
    ops_backend.reset_usage()
    got = _call("native", *_inputs(2, (E, B, 1, H), dtype=torch.float32))
    assert ops_backend.usage()["egnn_edges"]["native"] == 1
    assert all(t.dtype == torch.float32 for t in got)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-4 * max(1.0, b.abs().amax().item()))


@needs_native
def test_only_some_inputs_require_grad():
    """Data coordinates (the first layer's x) and fixed weights get no gradient; the rest match."""
    ei, h, W1, b1, x, Q, w = _inputs(6, (E, B, 1, H))
    x = x.detach()
    w = [t.detach() for t in w[:3]] + w[3:]
    on, off = _both(ei, h.detach(), W1, b1, x, Q, w)
    assert len(on) == 2 + 2 + 1 + 3  # M, X; W1, b1; Q; Wc1, bc1, Wc2
    for a, b in zip(on, off):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@needs_native
def test_edge_indices_out_of_range_raise():
    ei, h, W1, b1, x, Q, w = _inputs(7)
    for bad in ([[0, N], [1, 0]], [[0, 1], [-1, 0]]):
        with pytest.raises(IndexError):
            egnn_edges(h, W1, b1, x, None, *w, torch.tensor(bad), backend="native")


def test_refusals_name_the_limit():
    ei, h, W1, b1, x, Q, w = _inputs(8, (E, B, 1, H))
    args = (h, W1, b1, x, Q, *w, ei)
    if native.available():
        assert native_refusal(*args) is None
    assert "activation 'gelu'" in native_refusal(*args, act="gelu")
    ei8, h8, W18, b18, x8, Q8, w8 = _inputs(8, (E, B, 1, 8), h=8)
    assert "hidden width 8" in native_refusal(h8, W18, b18, x8, Q8, *w8, ei8)
    big = torch.randn(N, B, T, MAX_D + 1, dtype=torch.float64)
    assert f"up to {MAX_D}" in native_refusal(h, W1, b1, big, Q, *w, ei)
    assert "Q" in native_refusal(h, W1, b1, x, Q[:, :, :, :4], *w, ei)  # not [E, ..., H]
    assert "broadcast" in native_refusal(h, W1, b1, x, torch.randn(E, 1, T, H, dtype=torch.float64), *w, ei)
    assert "dtype" in native_refusal(h, W1, b1, x.float(), Q, *w, ei)
    assert "CPU" in native_refusal(h, W1, b1, x.to("meta"), Q, *w, ei)
    # under the native backend the reference then runs, and the reason is recorded
    ops_backend.reset_usage()
    got = egnn_edges(*args, act="gelu", backend="native" if native.available() else "torch")
    want = reference(*args, act="gelu")
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    if native.available():
        ran = ops_backend.usage()["egnn_edges"]
        assert (ran["native"], ran["torch"]) == (0, 1) and ran["reason"].startswith("activation 'gelu'")


def test_bad_arguments_raise():
    ei, h, W1, b1, x, Q, w = _inputs(9)
    with pytest.raises(ValueError, match="act 'swish'"):
        egnn_edges(h, W1, b1, x, Q, *w, ei, act="swish")
    with pytest.raises(ValueError, match="x "):
        egnn_edges(h, W1, b1, x[:3], Q, *w, ei)


# --- the layer: EGNNLayer under both backends ---------------------------------------------------

LAYER_EDGES = torch.tensor([[0, 1, 1, 2, 2, 3, 0, 2], [1, 0, 2, 1, 3, 2, 4, 4]])  # node 4 receives nothing
LAYERS = [
    dict(act="silu", unit_vectors=True, clamp=100.0, edge=True, node=True),  # ESTAG single-channel
    dict(act="silu", unit_vectors=True, clamp=0.3, edge=False, node=False),  # clamp active on some edges
    dict(act="leaky_relu", channels=4, edge=True, node=True),  # ESTAG multi-channel (AdK)
    dict(act="tanh", edge=False, node=False),
    dict(act="relu", channels=2, update_coords=False, edge=True, node=False),
    dict(act="gelu", coord_agg="sum", message_agg="mean", coord_weight=0.5, edge=True, node=False),
    dict(act="relu", message_agg="mean", edge=True, node=True, update_coords=False),
]


def _layer(cfg, width=H, seed=0, b=2, t=3):
    cfg = dict(cfg)
    edge, node = cfg.pop("edge"), cfg.pop("node")
    torch.manual_seed(seed)
    layer = EGNNLayer(width, coord_gain=1.0, edge_attr_dim=3 if edge else 0, node_attr_dim=2 if node else 0, **cfg).double()
    g = torch.Generator().manual_seed(seed + 1)
    C = cfg.get("channels")
    h = torch.randn(5, b, t, width, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, b, t, *((C, 3) if C else (3,)), generator=g, dtype=torch.float64, requires_grad=True)
    e = torch.randn(LAYER_EDGES.shape[1], b, 1, 3, generator=g, dtype=torch.float64, requires_grad=True) if edge else None
    a = torch.randn(5, b, 1, 2, generator=g, dtype=torch.float64, requires_grad=True) if node else None
    return layer, h, x, e, a


def _layer_run(layer, h, x, e, a, backend):
    layer.backend = backend
    h1, x1 = layer(h, x, LAYER_EDGES, e, a, node_dim=0)
    g = torch.Generator().manual_seed(9)
    wh, wx = torch.randn(h1.shape, generator=g, dtype=h1.dtype), torch.randn(x1.shape, generator=g, dtype=x1.dtype)
    wrt = [t for t in (h, x, e, a) if t is not None] + list(layer.parameters())
    grads = torch.autograd.grad((h1 * wh).sum() + (x1 * wx).sum(), wrt, allow_unused=True)
    return [h1.detach(), x1.detach()] + [torch.zeros_like(t) if g is None else g for t, g in zip(wrt, grads)]


@needs_native
@pytest.mark.parametrize("width", [H, 4], ids=["kernel-width", "other-width"])
@pytest.mark.parametrize("cfg", LAYERS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_layer_native_matches_torch(cfg, width):
    """The layer's values and gradients (inputs, edge and node attributes, every parameter) under
    the native backend equal the reference's; the kernels ran where they take the call."""
    layer, h, x, e, a = _layer(cfg, width)
    ops_backend.reset_usage()
    on = _layer_run(layer, h, x, e, a, "native")
    ran = ops_backend.usage()
    takes = width == H and cfg["act"] in native.ACTS
    if cfg.get("channels") is None:
        edges_native = takes
    else:  # the multi-channel kernel's module (where present) says what it takes
        edges_native = "egnn_edges" in ran and ran["egnn_edges"].get("reason") is None
        assert edges_native or width != H, ran
    assert ran["egnn_edges"]["native"] == (1 if edges_native else 0), ran
    assert ran["node_update"]["native"] == (1 if takes else 0), ran
    off = _layer_run(layer, h, x, e, a, "torch")
    assert (on[0] - h).abs().amax() > 1e-2
    for k, (p, q) in enumerate(zip(on, off)):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12, msg=lambda m, k=k: f"output/gradient {k}: {m}")


@pytest.mark.parametrize("cfg", [LAYERS[0], LAYERS[2]], ids=["single", "multi"])
def test_layer_other_layout_agrees_with_node_major(cfg):
    """Batch-major input (node axis not first) gives the node-major layer's numbers."""
    layer, h, x, e, a = _layer(cfg)
    hf, xf = layer(h, x, LAYER_EDGES, e, a, node_dim=0)
    hb, xb = layer(h.movedim(0, 2), x.movedim(0, 2), LAYER_EDGES, e.movedim(0, 2), a.movedim(0, 2))
    torch.testing.assert_close(hb.movedim(2, 0), hf, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xb.movedim(2, 0), xf, rtol=1e-12, atol=1e-12)


def test_layer_torch_backend_has_higher_derivatives():
    """The reference is plain autograd: a gradient of a gradient exists (e.g. for force matching)."""
    layer, h, x, e, a = _layer(LAYERS[0], width=4)
    layer.backend = "torch"
    h1, x1 = layer(h, x, LAYER_EDGES, e, a, node_dim=0)
    (gx,) = torch.autograd.grad(x1.square().sum() + h1.sum(), x, create_graph=True)
    (ggx,) = torch.autograd.grad(gx.square().sum(), x)
    assert torch.isfinite(ggx).all() and ggx.abs().amax() > 0
