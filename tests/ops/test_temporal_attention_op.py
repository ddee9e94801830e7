"""The temporal-attention op: the native kernel computes the reference's values and gradients."""

from __future__ import annotations

import pytest
import torch

from graphdyn import native
from graphdyn.nn.temporal_attention import TemporalAttention
from graphdyn.ops import backend as ops_backend
from graphdyn.ops.temporal_attention import MAX_CHANNELS, MAX_DIM, WIDTHS, native_refusal, reference, temporal_attention
from thread_counts import assert_deterministic_across_threads

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels unavailable: " + str(native.status()["error"]))

H = WIDTHS[0]
ROWS = 7  # node rows: an odd count, so two threads get unequal ranges
NAMES = ["h'", "x'", "h", "x", "W1", "b1", "W2", "b2", "Wc1", "bc1", "Wc2"]


def _inputs(T, D, channels=None, rows=ROWS, width=H, seed=0, dtype=torch.float64):
    """h [rows, T, width], x [rows, T, (C,) D] (far from the origin) and the seven weights, all
    leaves requiring grad."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0, shift=0.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64) + shift).to(dtype).requires_grad_()

    node = (D,) if channels is None else (channels, D)
    h = r(rows, T, width)
    x = r(rows, T, *node, scale=2.0, shift=5.0)
    weights = [r(3, width, width, scale=0.3), r(3, width, scale=0.1), r(3, width, width, scale=0.3),
               r(3, width, scale=0.1), r(width, width, scale=0.3), r(width, scale=0.1), r(channels or 1, width, scale=0.5)]
    return h, x, weights


def _cfg(channels=None, act="silu", causal=True):
    return act, causal, 1.0 if channels is None else -1.0


def _run(backend, h, x, weights, cfg, seed=1):
    """[h', x', gradients w.r.t. every input requiring grad] under a random upstream gradient."""
    ops_backend.reset_usage()
    hp, xp = temporal_attention(h, x, *weights, *cfg, backend=backend)
    ran = ops_backend.usage()["temporal_attention"]
    assert ran[backend] == 1, ran  # the backend asked for really ran
    g = torch.Generator().manual_seed(seed)
    gh = torch.randn(hp.shape, generator=g, dtype=torch.float64).to(hp.dtype)
    gx = torch.randn(xp.shape, generator=g, dtype=torch.float64).to(xp.dtype)
    inputs = [t for t in (h, x, *weights) if t.requires_grad]
    live = [(o, g) for o, g in ((hp, gh), (xp, gx)) if o.requires_grad]  # h' does not depend on x
    grads = torch.autograd.grad([o for o, _ in live], inputs, [g for _, g in live], allow_unused=True)
    return [hp.detach(), xp.detach(), *(torch.zeros_like(t) if a is None else a for t, a in zip(inputs, grads))]


def _assert_match(got, ref, names, rtol=1e-10, atol=1e-10):
    assert len(got) == len(ref) == len(names)
    for name, a, b in zip(names, got, ref):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("D", [2, 3])
@pytest.mark.parametrize("T", [1, 5, 10])
@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("channels", [None, 4], ids=["single", "multi"])
def test_native_matches_reference(channels, causal, act, T, D):
    h, x, w = _inputs(T, D, channels, seed=T + 10 * D)
    cfg = _cfg(channels, act, causal)
    _assert_match(_run("native", h, x, w, cfg), _run("torch", h, x, w, cfg), NAMES)


@pytest.mark.parametrize(
    "channels, T, D",
    [(None, 16, 3), (None, 17, 3), (6, 10, 3), (6, 17, 2), (3, 16, 3), (MAX_CHANNELS, 4, MAX_DIM)],
    ids=["T16", "T17", "C6", "C6-T17", "C3-T16", "largest"],
)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
def test_native_matches_longer_windows_and_more_channels(channels, T, D, causal):
    """Windows longer than the paper's (T up to 17), more coordinate channels than AdK's four, and
    the largest sizes the kernel takes: its frame and channel loops have no size built in."""
    h, x, w = _inputs(T, D, channels, seed=T + 10 * D)
    cfg = _cfg(channels, "silu", causal)
    _assert_match(_run("native", h, x, w, cfg), _run("torch", h, x, w, cfg), NAMES)


def test_coordinates_move_and_masked_frame_zero_stays():
    """A guard on the comparisons: the updates are not trivially zero, and under the causal mask
    frame 0 attends only to itself (its coordinates stay, its features get v(0))."""
    for channels in (None, 4):
        h, x, w = _inputs(5, 3, channels)
        hp, xp = temporal_attention(h, x, *w, *_cfg(channels), backend="native")
        assert (xp - x)[:, 1:].abs().amax() > 1e-2
        assert (hp - h).abs().amax() > 1e-2
        torch.testing.assert_close(xp[:, 0], x[:, 0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("used", ["h'", "x'"])
@pytest.mark.parametrize("channels", [None, 4], ids=["single", "multi"])
def test_one_output_unused(channels, used):
    """Autograd passes no gradient for an unused output (ESTAG's last layer feeds only x' on); the
    kernel takes it as zero."""
    h, x, w = _inputs(5, 3, channels, seed=11)
    inputs = [h, x, *w]
    res = []
    for backend in ("native", "torch"):
        out = temporal_attention(h, x, *w, *_cfg(channels, "silu", False), backend=backend)[0 if used == "h'" else 1]
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=out.dtype)
        grads = torch.autograd.grad(out, inputs, g, allow_unused=True)
        res.append([torch.zeros_like(t) if a is None else a for t, a in zip(inputs, grads)])
    _assert_match(res[0], res[1], NAMES[2:])


@pytest.mark.parametrize("grads", ["h", "x", "h,W", "x,W", "W"])
@pytest.mark.parametrize("channels", [None, 4], ids=["single", "multi"])
def test_only_some_inputs_require_grad(channels, grads):
    h, x, w = _inputs(5, 3, channels, seed=9)
    wanted = grads.split(",")
    h = h.detach().requires_grad_("h" in wanted)
    x = x.detach().requires_grad_("x" in wanted)
    w = [t.detach().requires_grad_("W" in wanted) for t in w]
    cfg = _cfg(channels, "tanh", True)
    names = NAMES[:2] + [n for n, t in zip(NAMES[2:], (h, x, *w)) if t.requires_grad]
    _assert_match(_run("native", h, x, w, cfg), _run("torch", h, x, w, cfg), names)


@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
@pytest.mark.parametrize("channels", [None, 4], ids=["single", "multi"])
def test_float32_matches_float64(channels, act):
    cfg = _cfg(channels, act, True)
    ref = _run("torch", *_inputs(8, 3, channels, rows=20, seed=6), cfg)
    got = _run("native", *_inputs(8, 3, channels, rows=20, seed=6, dtype=torch.float32), cfg)
    assert all(t.dtype == torch.float32 for t in got)
    for name, a, b in zip(NAMES, got, ref):
        scale = b.abs().amax().item()  # weight gradients sum over rows: relative to their size
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5 * max(1.0, scale),
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_deterministic_for_a_thread_count_and_close_across_counts():
    """Rows are split among threads and per-thread weight-gradient buffers are summed in thread
    order: reruns are bit-identical; another thread count only reorders the weight-gradient sums."""
    h, x, w = _inputs(6, 3, 4, rows=65, seed=8)
    assert_deterministic_across_threads(lambda: _run("native", h, x, w, _cfg(4)))


def _module_grads(att, h, x):
    g = torch.Generator().manual_seed(7)
    hp, xp = att(h, x)
    gh = torch.randn(hp.shape, generator=g, dtype=hp.dtype)
    gx = torch.randn(xp.shape, generator=g, dtype=xp.dtype)
    return [hp.detach(), xp.detach(), *torch.autograd.grad((hp, xp), [h, x, *att.parameters()], (gh, gx))]


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("act", ["relu", "silu", "tanh"])
@pytest.mark.parametrize("channels", [None, 4], ids=["single", "multi"])
def test_layer_backends_agree(channels, act, causal, monkeypatch):
    """The layer on [N, B, T, ...] inputs: the kernel runs under backend "native" (once, on the
    N*B rows), the reference under "torch", with the same values and parameter gradients."""
    torch.manual_seed(3)
    att = TemporalAttention(H, channels=channels, act=act, causal=causal, coord_gain=None).double()
    g = torch.Generator().manual_seed(4)
    node = (3,) if channels is None else (channels, 3)
    h = torch.randn(3, 2, 6, H, generator=g, dtype=torch.float64, requires_grad=True)
    x = (3 * torch.randn(3, 2, 6, *node, generator=g, dtype=torch.float64) + 4).requires_grad_()
    calls = []
    real = ops_backend.use_native

    def spy(backend, op, refusal):
        out = real(backend, op, refusal)
        if op == "temporal_attention":
            calls.append(out)
        return out

    monkeypatch.setattr(ops_backend, "use_native", spy)
    att.backend = "native"
    on = _module_grads(att, h, x)
    att.backend = "torch"
    off = _module_grads(att, h, x)
    assert calls == [True, False]
    assert on[2].shape == h.shape and on[3].shape == x.shape
    _assert_match(on, off, ["h'", "x'", "h", "x"] + [n for n, _ in att.named_parameters()])


def test_unsupported_cases_are_refused_with_a_reason():
    h, x, w = _inputs(4, 3)
    args = _cfg()
    assert native_refusal(h, x, *w, *args) is None
    hw, xw, ww = _inputs(4, 3, width=8)
    assert "width 8" in native_refusal(hw, xw, *ww, *args)
    assert "'gelu'" in native_refusal(h, x, *w, "gelu", True, 1.0)
    hc, xc, wc = _inputs(4, 3, MAX_CHANNELS + 1)
    assert f"{MAX_CHANNELS + 1} coordinate channels" in native_refusal(hc, xc, *wc, *_cfg(MAX_CHANNELS + 1))
    hd, xd, wd = _inputs(4, MAX_DIM + 1)
    assert f"dimension {MAX_DIM + 1}" in native_refusal(hd, xd, *wd, *args)
    assert "dtype" in native_refusal(h.detach().float(), x, *w, *args)  # mismatched dtypes
    assert "dtype" in native_refusal(h, x, *w[:-1], w[-1].detach().float(), *args)
    hb, xb, wb = _inputs(4, 3, dtype=torch.bfloat16)
    assert "dtype" in native_refusal(hb, xb, *wb, *args)
    # under the native backend the reference then runs, and the reason is recorded
    ops_backend.reset_usage()
    got = temporal_attention(hw, xw, *ww, *args, backend="native")
    want = reference(hw, xw, *ww, *args)
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    assert ops_backend.usage()["temporal_attention"] == {"native": 0, "torch": 1,
                                                         "reason": "hidden width 8 (the kernel is compiled for 16)"}


def test_bad_shapes_raise_naming_the_argument():
    h, x, w = _inputs(4, 3, 2)
    args = _cfg(2)
    with pytest.raises(ValueError, match="act"):
        temporal_attention(h, x, *w, "swish", True, -1.0)
    with pytest.raises(ValueError, match="^x:"):
        temporal_attention(h, x[:, :3], *w, *args)
    with pytest.raises(ValueError, match="^Wc2:"):  # 2 channels, one coordinate weight row
        temporal_attention(h, x, *w[:-1], w[-1][:1], *args)
    with pytest.raises(ValueError, match="^W2:"):
        temporal_attention(h, x, *w[:2], w[2][:2], *w[3:], *args)
    with pytest.raises(ValueError, match="^h:"):
        temporal_attention(h[0, 0], x, *w, *args)
