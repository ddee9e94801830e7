"""The EDFT edge op: the native kernel computes the reference edge features and their gate gradients."""

from __future__ import annotations

import math

import pytest
import torch

from graphdyn import native
from graphdyn.nn.edft import EDFT
from graphdyn.ops import backend as ops_backend
from graphdyn.ops.edft_edges import MAX_K, edft_edges, native_refusal, reference
from op_spy import spy_on
from thread_counts import assert_deterministic_across_threads

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels unavailable: " + str(native.status()["error"]))

N, T, H, D = 5, 7, 6, 3  # K = T - 1 = 6 frequencies
# receivers row 0, senders row 1: self-loops (2 <- 2), (4 <- 4); (1 <- 2) appears twice
EDGES = torch.tensor([[0, 1, 1, 2, 3, 0, 4, 2, 1, 4], [1, 0, 2, 2, 0, 3, 4, 1, 2, 0]])


def _data(batch=(3,), n=N, t=T, seed=0, dtype=torch.float64):
    """x [n, *batch, t, D] (far from the origin, so centring matters) and h [n, *batch, t, H]."""
    gen = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(n, *batch, t, D, generator=gen, dtype=torch.float64) + 3
    h = torch.randn(n, *batch, t, H, generator=gen, dtype=torch.float64)
    return x.to(dtype), h.to(dtype).requires_grad_()


def _direct(x, h, edft, edges):
    """The EDFT formulas with complex numbers: an explicit DFT sum, conj products per edge."""
    xc = x - x.mean(0, keepdim=True)
    t = x.shape[-2]
    k = torch.arange(1, t, dtype=torch.float64)[:, None]
    phase = torch.exp(-2j * math.pi * k * torch.arange(t, dtype=torch.float64) / t)  # [K, T]
    f = torch.einsum("kt,...td->...kd", phase, xc.to(torch.complex128))  # [N, ..., K, D]
    i, j = edges
    A = (f[i].conj() * f[j]).sum(-1).abs()
    c = (f * f).sum(-1).abs() if edft.amplitude == "code" else (f.abs() ** 2).sum(-1)
    if edft.spectral_gate is not None:
        w = torch.sigmoid(edft.spectral_gate(h[..., 1:, :])).squeeze(-1)
        A = A * w[i] * w[j]
        c = c * w
    return A / (A.sum(-1, keepdim=True) + edft.eps), c / (c.sum(-1, keepdim=True) + edft.eps)


def _module_run(edft, x, h, edges, seed=1):
    """[A, c, gradients w.r.t. h, x (if it requires grad) and the gate parameters] under random
    upstream gradients; only values when nothing requires grad (no gate)."""
    A, c = edft(x, h, edges)
    out = [A.detach(), c.detach()]
    inputs = [t for t in (h, x, *edft.parameters()) if t.requires_grad]
    if not (A.requires_grad or c.requires_grad):
        return out
    gen = torch.Generator().manual_seed(seed)
    gA = torch.randn(A.shape, generator=gen, dtype=torch.float64).to(A.dtype)
    gc = torch.randn(c.shape, generator=gen, dtype=torch.float64).to(c.dtype)
    grads = torch.autograd.grad((A, c), inputs, (gA, gc), allow_unused=True)
    return out + [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]


@pytest.fixture
def spy(monkeypatch):
    """Whether each EDFT edge-op call under a backend other than torch ran the kernel."""
    return spy_on(monkeypatch, "edft_edges")


def edft_edges_native(fr, fi, w, edges, eps):
    return edft_edges(fr, fi, w, edges, eps, backend="native")


def _both(edft, x, h, edges, spy):
    edft.backend = "native"
    on = _module_run(edft, x, h, edges)
    edft.backend = "torch"
    off = _module_run(edft, x, h, edges)
    edft.backend = "native"
    return on, off


@pytest.mark.parametrize("batch", [(3,), (2, 2), ()], ids=["B", "BxC", "none"])
@pytest.mark.parametrize("amplitude", ["code", "poster"])
@pytest.mark.parametrize("gate", [True, False], ids=["gate", "nogate"])
def test_native_matches_pytorch_and_direct(gate, amplitude, batch, spy):
    torch.manual_seed(0)
    edft = EDFT(H, amplitude=amplitude, gate=gate).double()
    x, h = _data(batch)
    on, off = _both(edft, x, h, EDGES, spy)
    assert spy == [True]  # the kernel ran with native on, and was not called with it off
    K = T - 1
    assert on[0].shape == (EDGES.shape[1], *batch, K) and on[1].shape == (N, *batch, K)
    assert len(on) == len(off) == (2 + 1 + 2 if gate else 2)  # A, c (, h, weight, bias)
    for a, b in zip(on, off):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    A_ref, c_ref = _direct(x, h, edft, EDGES)
    torch.testing.assert_close(on[0], A_ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(on[1], c_ref.detach(), rtol=1e-10, atol=1e-12)
    # the repeated edge (columns 2 and 8) gets the same features twice
    assert torch.equal(on[0][2], on[0][8])
    if gate:
        assert edft.spectral_gate.weight.requires_grad and on[3].abs().amax() > 0


def test_gate_gradients_with_self_loops_only_and_no_edges(spy):
    """A self-loop sends both of its gate-gradient terms to one node; an empty edge list gives [0, ..., K]."""
    torch.manual_seed(1)
    edft = EDFT(H).double()
    x, h = _data()
    loops = torch.tensor([[0, 3, 3], [0, 3, 3]])
    on, off = _both(edft, x, h, loops, spy)
    for a, b in zip(on, off):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    none = torch.zeros(2, 0, dtype=torch.int64)
    on, off = _both(edft, x, h, none, spy)
    assert on[0].shape == (0, 3, T - 1)
    for a, b in zip(on, off):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert spy == [True, True]


@pytest.mark.parametrize("gate", [True, False], ids=["gate", "nogate"])
def test_coordinates_requiring_grad_fall_back_to_pytorch(gate, spy):
    torch.manual_seed(2)
    edft = EDFT(H, gate=gate).double()
    x, h = _data()
    x.requires_grad_()
    on, off = _both(edft, x, h, EDGES, spy)
    assert spy == [False]  # the kernel declined: spectra requiring gradients
    for a, b in zip(on, off):
        assert torch.equal(a, b)
    gx = on[3]  # after A, c and h
    assert gx.shape == x.shape and torch.isfinite(gx).all() and gx.abs().amax() > 0


def test_gradcheck_through_the_kernel(spy):
    """Gradients w.r.t. the gate's weight and bias and h, through the kernel (tiny float64 case)."""
    torch.manual_seed(4)
    edft = EDFT(3).double()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 2, 4, 2, generator=gen, dtype=torch.float64)
    h = torch.randn(3, 2, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    edges = torch.tensor([[0, 1, 2, 2, 0], [1, 0, 2, 0, 1]])  # a self-loop and a repeated edge
    weight = edft.spectral_gate.weight.detach().clone().requires_grad_()
    bias = edft.spectral_gate.bias.detach().clone().requires_grad_()

    def f(h, weight, bias):
        A, _ = torch.func.functional_call(edft, {"spectral_gate.weight": weight, "spectral_gate.bias": bias},
                                          (x, h, edges))
        return A

    assert torch.autograd.gradcheck(f, (h, weight, bias), eps=1e-6, atol=1e-7)
    assert spy and all(spy)


def test_gradcheck_kernel_gates():
    """The kernel op itself, differentiated w.r.t. its gates w (any positive values)."""
    gen = torch.Generator().manual_seed(6)
    fr = torch.randn(4, 3, 5, 2, generator=gen, dtype=torch.float64)
    fi = torch.randn(4, 3, 5, 2, generator=gen, dtype=torch.float64)
    w = (0.2 + torch.rand(4, 3, 5, generator=gen, dtype=torch.float64)).requires_grad_()
    edges = torch.tensor([[0, 1, 3, 3, 2, 1], [1, 0, 3, 2, 1, 0]])

    def f(w):
        A = edft_edges_native(fr, fi, w, edges, 1e-9)
        assert A is not None
        return A

    assert torch.autograd.gradcheck(f, (w,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("amplitude", ["code", "poster"])
def test_float32_matches_float64(amplitude, spy):
    torch.manual_seed(7)
    e64 = EDFT(H, amplitude=amplitude).double()
    e32 = EDFT(H, amplitude=amplitude).float()
    e32.load_state_dict(e64.state_dict())
    x, h = _data((4,), n=8, t=9, seed=8)
    edges = torch.cat([EDGES, torch.tensor([[7, 6, 5, 7], [6, 7, 5, 0]])], dim=1)
    ref = _module_run(e64, x, h, edges)
    x32, h32 = x.float(), h.detach().float().requires_grad_()
    got = _module_run(e32, x32, h32, edges)
    assert spy == [True, True]
    assert all(t.dtype == torch.float32 for t in got)
    for name, a, b in zip(["A", "c", "h", "weight", "bias"], got, ref):
        scale = b.abs().amax().item()
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5 * max(1.0, scale),
                                   msg=lambda m, name=name: f"{name}: {m}")


def _kernel_run(fr, fi, w, edges, seed=2):
    A = edft_edges_native(fr, fi, w, edges, 1e-9)
    assert A is not None
    gA = torch.randn(A.shape, generator=torch.Generator().manual_seed(seed), dtype=A.dtype)
    (gw,) = torch.autograd.grad(A, w, gA)
    return A.detach(), gw


def test_deterministic_for_a_thread_count_and_close_across_counts():
    """Threads own ranges of batch rows: reruns with a thread count are bit-identical, and
    other counts agree."""
    gen = torch.Generator().manual_seed(9)
    n, R, K = 9, 13, 8  # 13 rows: unequal ranges for two threads
    fr = torch.randn(n, R, K, D, generator=gen, dtype=torch.float64)
    fi = torch.randn(n, R, K, D, generator=gen, dtype=torch.float64)
    w = torch.rand(n, R, K, generator=gen, dtype=torch.float64).requires_grad_()
    edges = torch.randint(0, n, (2, 40), generator=gen)
    assert_deterministic_across_threads(lambda: _kernel_run(fr, fi, w, edges))


def test_edge_indices_out_of_range_raise():
    gen = torch.Generator().manual_seed(10)
    fr = torch.randn(4, 2, 3, D, generator=gen, dtype=torch.float64)
    fi = torch.randn(4, 2, 3, D, generator=gen, dtype=torch.float64)
    w = torch.rand(4, 2, 3, generator=gen, dtype=torch.float64)
    for bad in ([[0, 4], [1, 0]], [[0, 1], [1, 4]], [[0, -1], [1, 0]], [[0, 1], [-1, 0]]):
        with pytest.raises(IndexError):
            edft_edges_native(fr, fi, w, torch.tensor(bad), 1e-9)
        with pytest.raises(IndexError):
            edft_edges_native(fr, fi, None, torch.tensor(bad), 1e-9)
    # and through the module with the kernel on
    x, h = _data(n=4)
    with pytest.raises(IndexError):
        EDFT(H).double()(x, h, torch.tensor([[0, 4], [1, 0]]))


def test_unsupported_cases_are_refused_with_a_reason():
    gen = torch.Generator().manual_seed(11)
    fr = torch.randn(4, 2, 3, D, generator=gen, dtype=torch.float64)
    fi = torch.randn(4, 2, 3, D, generator=gen, dtype=torch.float64)
    w = torch.rand(4, 2, 3, generator=gen, dtype=torch.float64)
    edges = torch.tensor([[0, 1], [1, 2]])
    assert native_refusal(fr, fi, w, edges, 1e-9) is None
    assert "dtype" in native_refusal(fr, fi, w.float(), edges, 1e-9)  # mismatched dtypes
    assert "dtype" in native_refusal(fr, fi.float(), w, edges, 1e-9)
    assert "gates" in native_refusal(fr, fi, w[:, :1], edges, 1e-9)  # a gate not of the spectra's shape
    assert "gradients" in native_refusal(fr.clone().requires_grad_(), fi, w, edges, 1e-9)
    big = torch.randn(3, 1, MAX_K + 1, D, dtype=torch.float64)
    assert "frequencies" in native_refusal(big, big, None, edges, 1e-9)
    full = torch.randn(3, 1, MAX_K, D, dtype=torch.float64)
    assert native_refusal(full, full, None, edges, 1e-9) is None
    # the op under the native backend then runs the reference, and says why
    ops_backend.reset_usage()
    torch.testing.assert_close(edft_edges(big, big, None, edges, 1e-9, backend="native"),
                               reference(big, big, None, edges, 1e-9), rtol=0, atol=0)
    assert ops_backend.usage()["edft_edges"] == {"native": 0, "torch": 1, "reason": f"{MAX_K + 1} frequencies (the kernel takes up to {MAX_K})"}
