"""The native single-channel EGNN edge kernel computes egnn_fused's function and gradients."""

from dataclasses import replace

import pytest
import torch

from graphdyn import native
from graphdyn.nn.egnn_fused import EdgeConfig, egnn_edges
from graphdyn.nn.egnn_native import egnn_edges_native
from thread_counts import assert_deterministic_across_threads

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels unavailable (no C compiler)")

N, B, T, H, D, E = 6, 3, 5, 16, 3, 14  # T = 5: row blocks of 4 plus a remainder


def _inputs(seed=0, qshape=None, h=H, n=N, b=B, t=T, e=E):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()

    ei = torch.randint(0, n, (2, e), generator=g)
    ei[1] = torch.where(ei[1] == ei[0], (ei[0] + 1) % n, ei[1])  # no self-loops: unit vectors need |d| > 0
    hn, W1, b1, x = r(n, b, t, h), r(h, 2 * h, scale=0.3), r(h), r(n, b, t, D)
    Q = None if qshape is None else r(*qshape)
    weights = [r(h, 1, scale=0.3), r(h, h, scale=0.3), r(h), r(h, h, scale=0.3), r(h), r(1, h, scale=0.3)]
    return ei, (hn, W1, b1), x, Q, weights


def _both(cfg, ei, node, x, Q, weights):
    Wr, W2, b2, Wc1, bc1, Wc2 = weights
    coord = (Wc1, bc1, Wc2) if cfg.update_coords else (None, None, None)
    inputs = [t for t in (*node, x, Q, Wr, W2, b2, *coord) if t is not None]
    results = []
    for use_native in (True, False):
        m, t = egnn_edges(*node, x, Q, Wr, W2, b2, *coord, ei, replace(cfg, native=use_native))
        loss = (m * torch.linspace(-1, 1, m.numel(), dtype=m.dtype).view_as(m)).sum()
        if cfg.update_coords:
            loss = loss + (t * torch.linspace(1, 2, t.numel(), dtype=t.dtype).view_as(t)).sum()
        results.append([m, t, *torch.autograd.grad(loss, inputs)])
    return results


@pytest.mark.parametrize("act", ["silu", "relu", "tanh"])
@pytest.mark.parametrize("unit,clamp", [(False, None), (True, None), (False, 0.3), (True, 0.3)])
@pytest.mark.parametrize("coords", [True, False])
def test_native_matches_the_pytorch_op(act, unit, clamp, coords):
    cfg = EdgeConfig(act=act, unit_vectors=unit, clamp=clamp, update_coords=coords)
    native_out, torch_out = _both(cfg, *_inputs())
    for a, b in zip(native_out, torch_out):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("qshape", [(E, B, 1, H), (E, B, T, H), (1, 1, 1, H), (E, 1, 1, H)])
def test_edge_attribute_projections_broadcast(qshape):
    cfg = EdgeConfig(act="silu", unit_vectors=True)
    native_out, torch_out = _both(cfg, *_inputs(1, qshape))
    for a, b in zip(native_out, torch_out):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_many_nodes_run_in_tiles_of_rows():
    """With 300 nodes, a thread's node projections for all nodes fill its cache-sized scratch
    after 4 rows (float64), so its 10 or 5 rows run as tiles of 4, 4, 2 (or 4, 1), each with its
    own projections and its own g_P, g_S: the results still match the PyTorch op."""
    cfg = EdgeConfig(act="silu", unit_vectors=True, clamp=0.3)
    args = _inputs(4, (600, 2, 1, H), n=300, b=2, t=5, e=600)
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            native_out, torch_out = _both(cfg, *args)
        finally:
            torch.set_num_threads(before)
        for a, b in zip(native_out, torch_out):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_deterministic_for_a_thread_count_and_close_across_counts():
    """Threads own ranges of rows (B T = 15 here: unequal ranges) and sum weight gradients in
    thread order: reruns are bit-identical; another thread count only reorders those sums."""
    cfg = EdgeConfig(act="silu", unit_vectors=True, clamp=0.3)
    args = _inputs(3, (E, B, 1, H))
    assert_deterministic_across_threads(lambda: _both(cfg, *args)[0])


def test_float32_and_other_widths():
    ei, node, x, Q, w = _inputs(2, (E, B, 1, H))
    cfg = EdgeConfig()
    f = [t.detach().float() for t in (*node, x, Q, *w)]
    m32, t32 = egnn_edges(*f, ei, cfg)
    m64, t64 = egnn_edges(*node, x, Q, *w, ei, replace(cfg, native=False))
    torch.testing.assert_close(m32.double(), m64.detach(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(t32.double(), t64.detach(), rtol=1e-4, atol=1e-4)
    ei, node, x, Q, w = _inputs(2, (E, B, 1, 8), h=8)
    assert egnn_edges_native(*node, x, Q, *w, ei, cfg) is None  # width 8 is not compiled: the PyTorch op runs


def test_gradcheck():
    ei, (h, W1, b1), x, Q, w = _inputs(3, (E, B, 1, H))
    h, x = (t[:, :1, :2].detach().clone().requires_grad_() for t in (h, x))
    Q = Q[:, :1].detach().clone().requires_grad_()
    cfg = EdgeConfig(act="silu", unit_vectors=True, clamp=0.5)

    def f(h, W1, b1, x, Q, *w):
        return egnn_edges(h, W1, b1, x, Q, *w, ei, cfg)

    assert torch.autograd.gradcheck(f, (h, W1, b1, x, Q, *w))


def test_multi_channel_falls_back():
    ei, node, x, Q, w = _inputs()
    cfg = EdgeConfig(channels=4)
    xc = torch.randn(N, B, T, 4, D, dtype=torch.float64)
    assert egnn_edges_native(*node, xc, None, torch.randn(H, 16, dtype=torch.float64), *w[1:5],
                             torch.randn(4, H, dtype=torch.float64), ei, cfg) is None
    assert egnn_edges_native(*node, x, Q, *w, ei, EdgeConfig(act="gelu")) is None
