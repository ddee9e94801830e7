"""EDFT: shapes, normalisation, agreement with a direct complex computation, invariances."""

from __future__ import annotations

import math

import torch

from graphdyn.nn.edft import EDFT

N, B, T, H = 4, 2, 6, 5
EDGES = torch.tensor([[0, 1, 1, 2, 3, 0], [1, 0, 2, 1, 0, 3]])


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, B, T, 3, generator=g, dtype=torch.float64), torch.randn(N, B, T, H, generator=g, dtype=torch.float64)


def direct(x, h, edft):
    """The EDFT formulas written with complex tensors, one edge and one node at a time."""
    xc = x - x.mean(0, keepdim=True)
    t = torch.arange(T, dtype=torch.float64)
    K = T - 1
    A = torch.zeros(EDGES.shape[1], B, K, dtype=torch.float64)
    c = torch.zeros(N, B, K, dtype=torch.float64)
    for k in range(1, T):
        phase = torch.exp(-2j * math.pi * k * t / T)  # [T]
        f = (phase[None, None, :, None] * xc).sum(2)  # [N, B, 3]
        w = torch.sigmoid(edft.spectral_gate(h[:, :, k])).squeeze(-1)  # [N, B]
        for e in range(EDGES.shape[1]):
            i, j = EDGES[:, e]
            A[e, :, k - 1] = w[i] * w[j] * (f[i].conj() * f[j]).sum(-1).abs()
        c[:, :, k - 1] = w * (f * f).sum(-1).abs() if edft.amplitude == "code" else w * (f.abs() ** 2).sum(-1)
    return A / (A.sum(-1, keepdim=True) + edft.eps), c / (c.sum(-1, keepdim=True) + edft.eps)


def test_matches_direct_complex_formulas_both_amplitudes():
    torch.manual_seed(0)
    x, h = data()
    for amplitude in ("code", "poster"):
        edft = EDFT(H, eps=1e-9, amplitude=amplitude).double()
        A, c = edft(x, h, EDGES)
        assert A.shape == (EDGES.shape[1], B, T - 1) and c.shape == (N, B, T - 1)
        A_ref, c_ref = direct(x, h, edft)
        torch.testing.assert_close(A, A_ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c, c_ref, rtol=1e-12, atol=1e-12)


def test_code_and_poster_amplitudes_differ():
    torch.manual_seed(0)
    x, h = data()
    code = EDFT(H, amplitude="code").double()
    poster = EDFT(H, amplitude="poster").double()
    poster.load_state_dict(code.state_dict())
    assert (code(x, h, EDGES)[1] - poster(x, h, EDGES)[1]).abs().max() > 1e-3


def test_l1_normalised_over_frequencies_and_gate_switch():
    torch.manual_seed(0)
    x, h = data()
    A, c = EDFT(H, eps=1e-9).double()(x, h, EDGES)
    torch.testing.assert_close(A.sum(-1), torch.ones(EDGES.shape[1], B, dtype=torch.float64))
    torch.testing.assert_close(c.sum(-1), torch.ones(N, B, dtype=torch.float64))
    ungated = EDFT(H, gate=False).double()
    assert ungated.spectral_gate is None
    A1, _ = ungated(x, h, EDGES)
    # without a gate, real input gives the mirrored spectrum |<f(k), f(k)>| = |<f(T-k), f(T-k)>|
    torch.testing.assert_close(A1, A1.flip(-1))
    assert (A - A.flip(-1)).abs().max() > 1e-6  # the learned gate breaks that symmetry


def test_invariant_to_rotation_and_time_varying_translation():
    torch.manual_seed(0)
    x, h = data()
    edft = EDFT(H).double()
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))  # any orthogonal matrix
    shift = torch.randn(1, B, T, 3, dtype=torch.float64)  # a different translation per frame
    A1, c1 = edft(x, h, EDGES)
    A2, c2 = edft(x @ q.T + shift, h, EDGES)
    torch.testing.assert_close(A2, A1, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(c2, c1, rtol=1e-10, atol=1e-12)


def test_gradient_reaches_the_gate():
    torch.manual_seed(0)
    x, h = data()
    edft = EDFT(H).double()
    A, c = edft(x, h, EDGES)
    (A[..., 0].sum() + c[..., 1].sum()).backward()
    assert edft.spectral_gate.weight.grad.abs().sum() > 0
