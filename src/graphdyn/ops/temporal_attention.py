"""ESTAG's equivariant temporal attention (ETM), one op: reference and native kernel.

Each node attends over its own T frames (single head, no 1/sqrt(H) scaling). With
``g = 0, 1, 2`` for query, key and value and ``act`` the activation::

    [q|k|v]_g(t) = act(W2_g act(W1_g h(t) + b1_g) + b2_g)
    alpha(t, s)  = softmax_s(q(t) . k(s))            keys s > t masked out when ``causal``
    h'(t)        = h(t) + sum_s alpha(t, s) v(s)
    phi(s, c)    = Wc2_c . act(Wc1 v(s) + bc1)        one coordinate weight per channel c
    y(t)         = x(t) - x(T-1)                      (only differences enter: equivariant)
    x'(t, c)     = x(t, c) + sign sum_s alpha(t, s) phi(s, c) (y(s, c) - y(t, c))

Shapes (``...`` batch axes, e.g. ``N, B``; time is the axis before features): ``h [..., T, H]``;
``x [..., T, D]`` (one D-vector per node and frame, ``C = 1``) or ``[..., T, C, D]``
(C channels); ``W1, W2 [3, H, H]`` and ``b1, b2 [3, H]`` (query, key, value stacked; PyTorch
layout, ``W z`` = ``z @ W.T``); ``Wc1 [H, H]``, ``bc1 [H]``, ``Wc2 [C, H]`` -> ``(h', x')`` of
the shapes of ``h`` and ``x``. ``act`` is one of :data:`ACTIVATIONS` (``leaky_relu`` has slope
0.2, as :func:`graphdyn.nn.mlp.activation`); ``sign`` is +1 or -1 (ESTAG: +1 single-channel,
-1 multi-channel).

Implementations (chosen by :mod:`graphdyn.ops.backend`):

* :func:`reference`: plain autograd, any device, dtype, width and activation.
* ``graphdyn::temporal_attention``: the C kernel ``native/attention.c``, one node row (its T
  frames) at a time with every intermediate in a thread's scratch buffer; its backward
  ``graphdyn::temporal_attention_backward`` (C) recomputes them row by row. CPU,
  float32/float64, hidden width in :data:`WIDTHS`, the activations of ``graphdyn.native.ACTS``,
  ``C <= MAX_CHANNELS``, ``D <= MAX_DIM``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from graphdyn import native
from graphdyn.ops import backend as _backend

NAME = "temporal_attention"
MAX_CHANNELS = native.LIMITS["AT_MAXC"]
MAX_DIM = native.LIMITS["AT_MAXD"]
WIDTHS = (16,)  # hidden widths the kernel is compiled for (ESTAG's)

#: the activations of the reference, by name (the layer's MLPs use the same ones)
ACTIVATIONS = {
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.2),
}


def check(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, act: str) -> None:
    """Raise ValueError naming the argument whose shape (or activation) does not fit the module docstring."""
    if act not in ACTIVATIONS:
        raise ValueError(f"act: unknown activation {act!r}; choose one of {sorted(ACTIVATIONS)}")
    if h.dim() < 2:
        raise ValueError(f"h: expected [..., T, H], got shape {tuple(h.shape)}")
    H = h.shape[-1]
    if x.dim() not in (h.dim(), h.dim() + 1) or x.shape[: h.dim() - 1] != h.shape[:-1]:
        raise ValueError(f"x: expected [..., T, D] or [..., T, C, D] with [..., T] = {tuple(h.shape[:-1])}, "
                         f"got {tuple(x.shape)}")
    C = 1 if x.dim() == h.dim() else x.shape[-2]
    want = {"W1": (3, H, H), "b1": (3, H), "W2": (3, H, H), "b2": (3, H), "Wc1": (H, H), "bc1": (H,), "Wc2": (C, H)}
    for name, t in zip(want, (W1, b1, W2, b2, Wc1, bc1, Wc2)):
        if tuple(t.shape) != want[name]:
            raise ValueError(f"{name}: expected shape {want[name]} (H = {H}, C = {C}), got {tuple(t.shape)}")


def reference(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, act: str, causal: bool, sign: float):
    """The math of the module docstring in plain autograd."""
    f = ACTIVATIONS[act]
    T, H = h.shape[-2], h.shape[-1]
    # the three first layers as one [3H, H] matmul, the second ones batched over g
    a1 = f(h @ W1.reshape(3 * H, H).T + b1.reshape(3 * H))  # [..., T, 3H]
    a1 = a1.unflatten(-1, (3, H)).transpose(-2, -3)  # [..., 3, T, H]
    q, k, v = f(a1 @ W2.transpose(-1, -2) + b2.unsqueeze(-2)).unbind(-3)  # [..., T, H] each
    scores = q @ k.transpose(-1, -2)  # [..., T, S]
    if causal:
        upper = torch.ones(T, T, dtype=torch.bool, device=h.device).triu_(1)
        scores = scores + torch.zeros(T, T, dtype=h.dtype, device=h.device).masked_fill_(upper, float("-inf"))
    # softmax over s written out: PyTorch's kernel is slow on a last axis this short (T ~ 10);
    # the max is a constant shift (no gradient in exact arithmetic), so it is detached
    e = (scores - scores.detach().amax(-1, keepdim=True)).exp()
    alpha = e / e.sum(-1, keepdim=True)
    h_out = h + alpha @ v
    phi = f(v @ Wc1.T + bc1) @ Wc2.T  # [..., S, C]
    single = x.dim() == h.dim()
    xc = x.unsqueeze(-2) if single else x  # [..., T, C, D]
    # sum_s a(t,s) phi(s) (y(s) - y(t)) = (beta @ y)(t) - y(t) sum_s beta(t,s), beta = a * phi(s);
    # y = x - x(T-1) keeps the two terms small, so little cancels for far-from-origin coordinates
    y = (xc - xc[..., -1:, :, :]).movedim(-2, -3)  # [..., C, T, D]
    beta = alpha.unsqueeze(-3) * phi.transpose(-1, -2).unsqueeze(-2)  # [..., C, T, S]
    delta = (beta @ y - y * beta.sum(-1, keepdim=True)).movedim(-3, -2)  # [..., T, C, D]
    x_out = xc + sign * delta
    return h_out, x_out.squeeze(-2) if single else x_out


def native_refusal(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, act: str, causal: bool, sign: float) -> str | None:
    """Why the native kernel cannot take this call (None: it can); shapes already checked."""
    C = 1 if x.dim() == h.dim() else x.shape[-2]
    if act not in native.ACTS:
        return f"activation {act!r} (the kernels know {', '.join(native.ACTS)})"
    if h.shape[-1] not in WIDTHS:
        return f"hidden width {h.shape[-1]} (the kernel is compiled for {', '.join(map(str, WIDTHS))})"
    if C > MAX_CHANNELS:
        return f"{C} coordinate channels (the kernel takes up to {MAX_CHANNELS})"
    if not 1 <= x.shape[-1] <= MAX_DIM:
        return f"dimension {x.shape[-1]} (the kernel takes 1 to {MAX_DIM})"
    if h.shape[-2] < 1:
        return "no frames (T = 0)"
    return native.refusal([h, x, W1, b1, W2, b2, Wc1, bc1, Wc2])


def _weights(W1, b1, W2, b2, Wc1, bc1, Wc2):
    """The kernel's weight arguments: every matrix also transposed (per block), all contiguous."""
    c = [t.contiguous() for t in (W1, b1, W2, b2, Wc1, bc1, Wc2)]
    W1, b1, W2, b2, Wc1, bc1, Wc2 = c
    return (W1.transpose(1, 2).contiguous(), W1, b1, W2.transpose(1, 2).contiguous(), W2, b2, Wc1.T.contiguous(), Wc1,
            bc1, Wc2)


# the custom ops take the rows flattened: h [R, T, H], x [R, T, C, D]
@torch.library.custom_op("graphdyn::temporal_attention", mutates_args=())
def _attention_native(h: torch.Tensor, x: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor,
                      b2: torch.Tensor, Wc1: torch.Tensor, bc1: torch.Tensor, Wc2: torch.Tensor, act: str, causal: bool,
                      sign: float) -> tuple[torch.Tensor, torch.Tensor]:
    R, T, H = h.shape
    C, D = x.shape[2], x.shape[3]
    h, x = h.contiguous(), x.contiguous()
    W1t, _, b1, W2t, _, b2, Wc1t, _, bc1, Wc2 = _weights(W1, b1, W2, b2, Wc1, bc1, Wc2)
    h_out, x_out = torch.empty_like(h), torch.empty_like(x)
    native.call("attention_fwd", h.dtype, native.ptr(h), native.ptr(x), native.ptr(W1t), native.ptr(b1), native.ptr(W2t),
                native.ptr(b2), native.ptr(Wc1t), native.ptr(bc1), native.ptr(Wc2), native.ptr(h_out), native.ptr(x_out),
                native.i64(R), native.i64(T), native.i64(H), native.i64(C), native.i64(D), native.ACTS[act], int(causal),
                native.real(h.dtype, sign), torch.get_num_threads())
    return h_out, x_out


@_attention_native.register_fake
def _(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, act, causal, sign):
    return torch.empty_like(h), torch.empty_like(x)


@torch.library.custom_op("graphdyn::temporal_attention_backward", mutates_args=())
def _attention_native_backward(h: torch.Tensor, x: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor,
                               b2: torch.Tensor, Wc1: torch.Tensor, bc1: torch.Tensor, Wc2: torch.Tensor,
                               gH: Optional[torch.Tensor], gX: Optional[torch.Tensor], act: str, causal: bool,
                               sign: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(g_h, g_x, the weight gradients as one flat block [gW1, gb1, gW2, gb2, gWc1, gbc1, gWc2]);
    gH or gX None: that output's gradient is zero."""
    R, T, H = h.shape
    C, D = x.shape[2], x.shape[3]
    h, x = h.contiguous(), x.contiguous()
    gH = None if gH is None else gH.contiguous()  # the kernel takes NULL as zero (h' unused: ESTAG's last layer)
    gX = torch.zeros_like(x) if gX is None else gX.contiguous()
    gh, gx = torch.empty_like(h), torch.empty_like(x)
    block = h.new_empty(_block_size(H, C))
    w = _weights(W1, b1, W2, b2, Wc1, bc1, Wc2)
    native.call("attention_bwd", h.dtype, native.ptr(h), native.ptr(x), *map(native.ptr, w), native.ptr(gH),
                native.ptr(gX), native.ptr(gh), native.ptr(gx), native.ptr(block), native.i64(R), native.i64(T),
                native.i64(H), native.i64(C), native.i64(D), native.ACTS[act], int(causal), native.real(h.dtype, sign),
                torch.get_num_threads())
    return gh, gx, block


def _block_size(H: int, C: int) -> int:
    return 7 * H * H + 7 * H + C * H


@_attention_native_backward.register_fake
def _(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, gH, gX, act, causal, sign):
    return torch.empty_like(h), torch.empty_like(x), h.new_empty(_block_size(h.shape[2], x.shape[2]))


def _setup(ctx, inputs, output):
    *tensors, act, causal, sign = inputs
    ctx.save_for_backward(*tensors)
    ctx.cfg = (act, causal, sign)
    ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None, not as a zero tensor


def _backward(ctx, gH, gX):
    h, x, W1, b1, W2, b2, Wc1, bc1, Wc2 = ctx.saved_tensors
    if gH is None and gX is None:
        return (None,) * 12
    gh, gx, block = _attention_native_backward(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, gH, gX, *ctx.cfg)
    H, C = h.shape[2], x.shape[2]
    gW1, gb1, gW2, gb2, gWc1, gbc1, gWc2 = block.split([3 * H * H, 3 * H, 3 * H * H, 3 * H, H * H, H, C * H])
    need = ctx.needs_input_grad
    grads = [gh, gx, gW1.view(3, H, H), gb1.view(3, H), gW2.view(3, H, H), gb2.view(3, H), gWc1.view(H, H), gbc1,
             gWc2.view(C, H)]
    return (*(g if n else None for g, n in zip(grads, need)), None, None, None)


_attention_native.register_autograd(_backward, setup_context=_setup)


def native_call(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, act: str, causal: bool, sign: float):
    """(custom op, its arguments) for a call the kernel takes: the rows flattened to
    ``h [R, T, H]``, ``x [R, T, C, D]``."""
    T, H = h.shape[-2], h.shape[-1]
    h3 = h.reshape(-1, T, H)
    x4 = x.reshape(h3.shape[0], T, -1, x.shape[-1])
    return _attention_native, (h3, x4, W1, b1, W2, b2, Wc1, bc1, Wc2, act, bool(causal), float(sign))


def temporal_attention(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, act: str, causal: bool, sign: float, backend: str = "auto"):
    """``(h', x')`` (module docstring) by the implementation ``backend`` picks."""
    check(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, act)
    args = (h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, act, causal, sign)
    if _backend.use_native(backend, NAME, native_refusal(*args)):
        op, op_args = native_call(*args)
        h_out, x_out = op(*op_args)
        return h_out.view(h.shape), x_out.view(x.shape)
    return reference(*args)


def cases(dtype: torch.dtype = torch.float64) -> list[tuple[tuple, dict]]:
    """Small argument sets for the parity tests: (args, kwargs) of :func:`temporal_attention` minus
    ``backend``; the tensors that require gradients are the ones every backend differentiates."""
    gen = torch.Generator().manual_seed(0)
    H = WIDTHS[0]

    def t(*shape, scale=1.0, shift=0.0, grad=True):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64) + shift).to(dtype).requires_grad_(grad)

    def weights(C, grad=True):
        return (t(3, H, H, scale=0.3, grad=grad), t(3, H, scale=0.1, grad=grad), t(3, H, H, scale=0.3, grad=grad),
                t(3, H, scale=0.1, grad=grad), t(H, H, scale=0.3, grad=grad), t(H, scale=0.1, grad=grad),
                t(C, H, scale=0.5, grad=grad))

    out = []
    # (batch axes, T, channels, D, act, causal, sign); coordinates far from the origin
    for lead, T, C, D, act, causal, sign in (
        ((3, 2), 5, None, 3, "silu", True, 1.0),
        ((4,), 6, 4, 3, "silu", True, -1.0),
        ((2,), 4, None, 2, "tanh", False, -1.0),
        ((3,), 5, 2, 3, "relu", False, 1.0),
        ((3,), 5, 4, 3, "leaky_relu", True, -1.0),  # the AdK backbone model's
        ((), 3, 3, 2, "silu", False, -1.0),
        ((2,), 1, None, 3, "tanh", True, 1.0),  # one frame: it attends only to itself
    ):
        node = (D,) if C is None else (C, D)
        out.append(((t(*lead, T, H), t(*lead, T, *node, scale=2.0, shift=5.0), *weights(C or 1), act, causal, sign), {}))
    # only some inputs require gradients: coordinates as data (a first layer), or only the weights
    out.append(((t(3, 4, H), t(3, 4, 4, 3, grad=False), *weights(4), "silu", True, -1.0), {}))
    out.append(((t(3, 4, H, grad=False), t(3, 4, 3, grad=False), *weights(1), "tanh", True, 1.0), {}))
    return out
