"""The native temporal-attention kernel computes the PyTorch op's function and gradients."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from graphdyn import native
from graphdyn.nn import attention_fused
from graphdyn.nn import temporal_attention as temporal_attention_module
from graphdyn.nn.attention_fused import AttentionConfig, temporal_attention
from graphdyn.nn.attention_native import MAX_CHANNELS, MAX_DIM, WIDTHS, temporal_attention_native
from graphdyn.nn.temporal_attention import TemporalAttention
from thread_counts import assert_deterministic_across_threads

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels unavailable (no C compiler)")

H = WIDTHS[0]
ROWS = 7  # node rows: an odd count, so two threads get unequal ranges
WEIGHT_NAMES = ["W1", "b1", "W2", "b2", "Wc1", "bc1", "Wc2"]


def _cfg(channels=None, act="silu", causal=True, **kw):
    return AttentionConfig(act=act, channels=channels, causal=causal, sign=1 if channels is None else -1, **kw)


def _inputs(T, D, channels=None, rows=ROWS, width=H, seed=0, dtype=torch.float64):
    """h [rows, T, width], x [rows, T, (C,) D] (far from the origin) and the seven weights, all leaves
    requiring grad; W2 is block diagonal as in the model."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0, shift=0.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64) + shift).to(dtype).requires_grad_()

    C = 1 if channels is None else channels
    node = (D,) if channels is None else (channels, D)
    h = r(rows, T, width)
    x = r(rows, T, *node, scale=2.0, shift=5.0)
    blocks = [0.3 * torch.randn(width, width, generator=g, dtype=torch.float64) for _ in range(3)]
    W2 = torch.block_diag(*blocks).to(dtype).requires_grad_()
    weights = [
        r(3 * width, width, scale=0.3),
        r(3 * width, scale=0.1),
        W2,
        r(3 * width, scale=0.1),
        r(width, width, scale=0.3),
        r(width, scale=0.1),
        r(C, width, scale=0.5),
    ]
    return h, x, weights


def _run(fn, h, x, weights, seed=1):
    """[h', x', gradients w.r.t. every input requiring grad] under a random upstream gradient."""
    hp, xp = fn(h, x, *weights)
    g = torch.Generator().manual_seed(seed)
    gh = torch.randn(hp.shape, generator=g, dtype=torch.float64).to(hp.dtype)
    gx = torch.randn(xp.shape, generator=g, dtype=torch.float64).to(xp.dtype)
    inputs = [t for t in (h, x, *weights) if t.requires_grad]
    return [hp.detach(), xp.detach(), *torch.autograd.grad((hp, xp), inputs, (gh, gx))]


def _native(cfg):
    def f(h, x, *w):
        out = temporal_attention_native(h, x, *w, cfg)
        assert out is not None, "the native kernel did not apply"
        return out

    return f


def _pytorch(cfg):
    return lambda h, x, *w: temporal_attention(h, x, *w, replace(cfg, native=False))


def _diag_blocks(W2, width=H):
    return torch.stack([W2[g * width : (g + 1) * width, g * width : (g + 1) * width] for g in range(3)])


def _assert_match(got, ref, names, rtol, atol):
    for name, a, b in zip(names, got, ref):
        if name == "W2":
            # the model's W2 = block_diag(...) discards the off-diagonal gradient; the native op
            # returns zeros there, the PyTorch op the gradient of a full matrix
            assert torch.count_nonzero(a - torch.block_diag(*_diag_blocks(a, a.shape[0] // 3))) == 0
            a, b = _diag_blocks(a, a.shape[0] // 3), _diag_blocks(b, b.shape[0] // 3)
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("D", [2, 3])
@pytest.mark.parametrize("T", [1, 5, 10])
@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("channels", [None, 4], ids=["single", "multi"])
def test_native_matches_the_pytorch_op(channels, causal, act, T, D):
    cfg = _cfg(channels, act, causal)
    h, x, w = _inputs(T, D, channels, seed=T + 10 * D)
    got = _run(_native(cfg), h, x, w)
    ref = _run(_pytorch(cfg), h, x, w)
    _assert_match(got, ref, ["h'", "x'", "h", "x", *WEIGHT_NAMES], rtol=1e-10, atol=1e-10)
    # the public op with native on dispatches to the kernel: the very same numbers
    for a, b in zip(_run(lambda *a: temporal_attention(*a, cfg), h, x, w), got):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "channels, T, D",
    [(None, 16, 3), (None, 17, 3), (6, 10, 3), (6, 17, 2), (3, 16, 3)],
    ids=["T16", "T17", "C6", "C6-T17", "C3-T16"],
)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
def test_native_matches_longer_windows_and_more_channels(channels, T, D, causal):
    """Windows longer than the paper's (T up to 17) and more coordinate channels than AdK's four:
    the kernel's frame and channel loops have no size built in."""
    cfg = _cfg(channels, "silu", causal)
    h, x, w = _inputs(T, D, channels, seed=T + 10 * D)
    _assert_match(_run(_native(cfg), h, x, w), _run(_pytorch(cfg), h, x, w), ["h'", "x'", "h", "x", *WEIGHT_NAMES],
                  rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("channels", [None, 4], ids=["single", "multi"])
def test_unused_feature_output(channels):
    """Only x' reaches the loss (ESTAG's last layer feeds only coordinates to the pooling): autograd
    hands the backward no gradient for h', and the kernel takes it as zero without a zero tensor."""
    cfg = _cfg(channels, "silu", True)
    h, x, w = _inputs(10, 3, channels, seed=5)
    inputs = [h, x, *w]
    got = torch.autograd.grad((_native(cfg)(h, x, *w)[1] ** 2).sum(), inputs)
    ref = torch.autograd.grad((_pytorch(cfg)(h, x, *w)[1] ** 2).sum(), inputs)
    _assert_match(got, ref, ["h", "x", *WEIGHT_NAMES], rtol=1e-10, atol=1e-10)


def test_coordinates_move_and_masked_frame_zero_stays():
    """A guard on the comparison above: the updates are not trivially zero, and under the causal
    mask frame 0 attends only to itself (its coordinates stay, its features get v(0))."""
    for channels in (None, 4):
        cfg = _cfg(channels, "silu", True)
        h, x, w = _inputs(5, 3, channels)
        hp, xp = _native(cfg)(h, x, *w)
        assert (xp - x)[:, 1:].abs().amax() > 1e-2
        assert (hp - h).abs().amax() > 1e-2
        torch.testing.assert_close(xp[:, 0], x[:, 0], rtol=0, atol=1e-12)


def _module_grads(att, h, x):
    g = torch.Generator().manual_seed(7)
    hp, xp = att(h, x)
    gh = torch.randn(hp.shape, generator=g, dtype=hp.dtype)
    gx = torch.randn(xp.shape, generator=g, dtype=xp.dtype)
    return [hp.detach(), xp.detach(), *torch.autograd.grad((hp, xp), [h, x, *att.parameters()], (gh, gx))]


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
@pytest.mark.parametrize("channels", [None, 4], ids=["single", "multi"])
def test_module_native_matches_pytorch_and_plain_autograd(channels, act, causal, monkeypatch):
    torch.manual_seed(3)
    att = TemporalAttention(H, channels=channels, act=act, causal=causal, coord_gain=None).double()
    g = torch.Generator().manual_seed(4)
    N, B, T, D = 3, 2, 6, 3
    node = (D,) if channels is None else (channels, D)
    h = torch.randn(N, B, T, H, generator=g, dtype=torch.float64, requires_grad=True)
    x = (3 * torch.randn(N, B, T, *node, generator=g, dtype=torch.float64) + 4).requires_grad_()

    calls = []
    real_native, real_op = attention_fused.temporal_attention_native, temporal_attention_module.temporal_attention

    def spy(*args):
        out = real_native(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(attention_fused, "temporal_attention_native", spy)
    on = _module_grads(att, h, x)
    assert calls == [True]  # the kernel ran on the [N*B, T, ...] rows
    monkeypatch.setattr(temporal_attention_module, "temporal_attention", lambda *a: real_op(*a[:-1], replace(a[-1], native=False)))
    off = _module_grads(att, h, x)
    assert calls == [True]  # not called again
    att.fused = False
    plain = _module_grads(att, h, x)
    names = ["h'", "x'", "h", "x"] + [n for n, _ in att.named_parameters()]
    assert on[2].shape == h.shape and on[3].shape == x.shape
    for ref in (off, plain):
        for name, a, b in zip(names, on, ref):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("act", ["silu", "tanh"])
@pytest.mark.parametrize("channels", [None, 2], ids=["single", "multi"])
def test_gradcheck(channels, act):
    h, x, w = _inputs(3, 2, channels, rows=2, seed=5)
    cfg = _cfg(channels, act, causal=False)
    # differentiate w.r.t. h, x, b1, W2 (all of it: the kernel reads only its diagonal blocks, so
    # the off-diagonal numerical and analytical gradients are both zero), bc1 and Wc2
    W1, b1, W2, b2, Wc1, bc1, Wc2 = w
    W1, b2, Wc1 = (t.detach() for t in (W1, b2, Wc1))

    def f(h, x, b1, W2, bc1, Wc2):
        return _native(cfg)(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2)

    assert torch.autograd.gradcheck(f, (h, x, b1, W2, bc1, Wc2), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
@pytest.mark.parametrize("channels", [None, 4], ids=["single", "multi"])
def test_float32_matches_float64(channels, act):
    cfg = _cfg(channels, act, causal=True)
    h, x, w = _inputs(8, 3, channels, rows=20, seed=6)
    ref = _run(_pytorch(cfg), h, x, w)
    h32, x32, w32 = _inputs(8, 3, channels, rows=20, seed=6, dtype=torch.float32)
    got = _run(_native(cfg), h32, x32, w32)
    assert all(t.dtype == torch.float32 for t in got)
    names = ["h'", "x'", "h", "x", *WEIGHT_NAMES]
    for name, a, b in zip(names, got, ref):
        if name == "W2":
            a, b = _diag_blocks(a), _diag_blocks(b)
        scale = b.abs().amax().item()  # weight gradients sum over rows: relative to their size
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5 * max(1.0, scale),
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_deterministic_for_a_thread_count_and_close_across_counts():
    """Rows are split among threads and per-thread weight-gradient buffers are summed in thread
    order: reruns are bit-identical; another thread count only reorders the weight-gradient sums."""
    cfg = _cfg(4, "silu", True)
    h, x, w = _inputs(6, 3, 4, rows=65, seed=8)
    assert_deterministic_across_threads(lambda: _run(_native(cfg), h, x, w))


def test_unsupported_cases_fall_back_to_pytorch():
    # hidden width 8 is not compiled
    cfg = _cfg()
    h, x, w = _inputs(4, 3, width=8)
    assert temporal_attention_native(h, x, *w, cfg) is None
    for a, b in zip(_run(lambda *a: temporal_attention(*a, cfg), h, x, w), _run(_pytorch(cfg), h, x, w)):
        assert torch.equal(a, b)
    # activations the kernel lacks
    for act in ("gelu", "leaky_relu"):
        cfg = _cfg(4, act)
        h, x, w = _inputs(4, 3, 4)
        assert temporal_attention_native(h, x, *w, cfg) is None
        for a, b in zip(_run(lambda *a: temporal_attention(*a, cfg), h, x, w), _run(_pytorch(cfg), h, x, w)):
            assert torch.equal(a, b)
    # too many channels, too many dimensions
    for channels, D in ((MAX_CHANNELS + 1, 3), (2, MAX_DIM + 1), (None, MAX_DIM + 1)):
        cfg = _cfg(channels)
        h, x, w = _inputs(4, D, channels)
        assert temporal_attention_native(h, x, *w, cfg) is None
        hp, xp = temporal_attention(h, x, *w, cfg)
        assert hp.shape == h.shape and xp.shape == x.shape and torch.isfinite(xp).all()
    # the largest sizes the kernel takes still run natively
    cfg = _cfg(MAX_CHANNELS)
    h, x, w = _inputs(4, MAX_DIM, MAX_CHANNELS)
    _assert_match(_run(_native(cfg), h, x, w), _run(_pytorch(cfg), h, x, w), ["h'", "x'", "h", "x", *WEIGHT_NAMES],
                  rtol=1e-10, atol=1e-10)
    # mismatched dtypes: the kernel declines, and the PyTorch op reports the mismatch
    cfg = _cfg()
    h, x, w = _inputs(4, 3)
    h32 = h.detach().float().requires_grad_()
    assert temporal_attention_native(h32, x, *w, cfg) is None
    assert temporal_attention_native(h, x, *w[:-1], w[-1].float(), cfg) is None
    with pytest.raises(RuntimeError, match="dtype"):
        temporal_attention(h32, x, *w, cfg)
    # a dtype without kernels (bfloat16): the PyTorch op runs
    hb, xb, wb = _inputs(4, 3, dtype=torch.bfloat16)
    assert temporal_attention_native(hb, xb, *wb, cfg) is None
    hp, xp = temporal_attention(hb, xb, *wb, cfg)
    ref = temporal_attention(*(t.detach().double() for t in (hb, xb, *wb)), replace(cfg, native=False))
    torch.testing.assert_close(hp.double(), ref[0], rtol=0.05, atol=0.1)
    torch.testing.assert_close(xp.double(), ref[1], rtol=0.05, atol=0.1)


@pytest.mark.parametrize("grads", ["h", "x", "h,W", "x,W", "W"])
@pytest.mark.parametrize("channels", [None, 4], ids=["single", "multi"])
def test_only_some_inputs_require_grad(channels, grads):
    cfg = _cfg(channels, "tanh", True)
    h, x, w = _inputs(5, 3, channels, seed=9)
    wanted = grads.split(",")
    h = h.detach().requires_grad_("h" in wanted)
    x = x.detach().requires_grad_("x" in wanted)
    w = [t.detach().requires_grad_("W" in wanted) for t in w]
    got = _run(_native(cfg), h, x, w)
    ref = _run(_pytorch(cfg), h, x, w)
    names = ["h'", "x'"] + [n for n, t in zip(["h", "x", *WEIGHT_NAMES], (h, x, *w)) if t.requires_grad]
    assert len(got) == len(names)
    _assert_match(got, ref, names, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("used", ["h'", "x'"])
def test_one_output_unused(used):
    """Autograd passes no gradient for an unused output; the kernel must treat it as zero."""
    cfg = _cfg(4, "silu", False)
    h, x, w = _inputs(5, 3, 4, seed=11)
    inputs = [h, x, *w]
    res = []
    for f in (_native(cfg), _pytorch(cfg)):
        out = f(h, x, *w)[0 if used == "h'" else 1]
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=out.dtype)
        res.append(torch.autograd.grad(out, inputs, g, allow_unused=True))
    names = ["h", "x", *WEIGHT_NAMES]
    got = [torch.zeros_like(t) if a is None else a for t, a in zip(inputs, res[0])]
    ref = [torch.zeros_like(t) if b is None else b for t, b in zip(inputs, res[1])]
    _assert_match(got, ref, names, rtol=1e-10, atol=1e-10)
