"""ESTAG's temporal attention (ETM) as a native kernel (custom autograd).

Computes exactly :func:`graphdyn.nn.attention_fused.temporal_attention` (its docstring has the
math and the backward) with the C kernel ``graphdyn/native/attention.c``: one node row (its
``T`` frames) at a time, every intermediate in a thread's scratch buffer, the backward
recomputing them. Threads own ranges of rows. Single-channel coordinates are the case
``C = 1``. :func:`temporal_attention_native` returns ``None`` where the kernel does not apply
(a hidden width other than :data:`WIDTHS`, an activation the kernels lack, more than
:data:`MAX_CHANNELS` channels or :data:`MAX_DIM` dimensions, another device or dtype, no
compiler); the caller then runs the PyTorch op.

Shapes: ``h [R, T, H]``, ``x [R, T, D]`` or ``[R, T, C, D]``; ``W1 [3H, H]``, ``b1 [3H]``,
``W2 [3H, 3H]`` (block diagonal: only its diagonal blocks are read, and only they get
gradients), ``b2 [3H]``, ``Wc1 [H, H]``, ``bc1 [H]``, ``Wc2 [C, H]`` -> ``(h', x')``.
"""

from __future__ import annotations

import ctypes

import torch

from graphdyn import native
from graphdyn.native import ACTS, i64 as _i64

MAX_CHANNELS = 8  # AT_MAXC in attention.c
MAX_DIM = 8  # AT_MAXD
WIDTHS = (16,)  # hidden widths compiled (ESTAG's); others run the PyTorch op


def _blocks(W: torch.Tensor, H: int) -> torch.Tensor:
    """The three diagonal ``[H, H]`` blocks of ``W [3H, 3H]`` (or ``W [3H, H]`` as blocks) as ``[3, H, H]``."""
    if W.shape[1] == H:
        return W.reshape(3, H, H)
    return torch.stack([W[g * H : (g + 1) * H, g * H : (g + 1) * H] for g in range(3)])


class _TemporalAttentionNative(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, act, causal, sign):  # noqa: D102
        R, T, H = h.shape
        C = Wc2.shape[0]
        D = x.shape[-1]
        h, x = h.contiguous(), x.contiguous()
        w1 = _blocks(W1.detach(), H).contiguous()
        w2 = _blocks(W2.detach(), H).contiguous()
        w1t, w2t = w1.transpose(1, 2).contiguous(), w2.transpose(1, 2).contiguous()
        wc1 = Wc1.detach().contiguous()
        wc1t = wc1.t().contiguous()
        b1c, b2c, bc1c, wc2 = (t.detach().contiguous() for t in (b1, b2, bc1, Wc2))
        h_out, x_out = torch.empty_like(h), torch.empty_like(x)
        real = ctypes.c_float if h.dtype == torch.float32 else ctypes.c_double
        native.call(
            "attention_fwd", h.dtype, native.ptr(h), native.ptr(x), native.ptr(w1t), native.ptr(b1c), native.ptr(w2t),
            native.ptr(b2c), native.ptr(wc1t), native.ptr(bc1c), native.ptr(wc2), native.ptr(h_out), native.ptr(x_out),
            _i64(R), _i64(T), _i64(H), _i64(C), _i64(D), ACTS[act], int(causal), real(sign), torch.get_num_threads(),
        )
        ctx.save_for_backward(h, x, w1t, w1, b1c, w2t, w2, b2c, wc1t, wc1, bc1c, wc2)
        ctx.cfg = (act, causal, sign)
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None, not as a zero tensor
        return h_out, x_out

    @staticmethod
    def backward(ctx, gH, gX):  # noqa: D102
        h, x, w1t, w1, b1, w2t, w2, b2, wc1t, wc1, bc1, wc2 = ctx.saved_tensors
        act, causal, sign = ctx.cfg
        R, T, H = h.shape
        C, D = wc2.shape[0], x.shape[-1]
        need = ctx.needs_input_grad
        gh = torch.empty_like(h) if need[0] else None
        gx = torch.empty_like(x) if need[1] else None
        gH = None if gH is None else gH.contiguous()  # None (h' unused, e.g. the last layer): the kernel takes 0
        gX = torch.zeros_like(x) if gX is None else gX.contiguous()
        HH = H * H
        block = torch.empty(7 * HH + 7 * H + C * H, dtype=h.dtype)
        real = ctypes.c_float if h.dtype == torch.float32 else ctypes.c_double
        native.call(
            "attention_bwd", h.dtype, native.ptr(h), native.ptr(x), native.ptr(w1t), native.ptr(w1), native.ptr(b1),
            native.ptr(w2t), native.ptr(w2), native.ptr(b2), native.ptr(wc1t), native.ptr(wc1), native.ptr(bc1),
            native.ptr(wc2), native.ptr(gH), native.ptr(gX), native.ptr(gh), native.ptr(gx), native.ptr(block),
            _i64(R), _i64(T), _i64(H), _i64(C), _i64(D), ACTS[act], int(causal), real(sign), torch.get_num_threads(),
        )
        gW1, gb1, gW2b, gb2, gWc1, gbc1, gWc2 = block.split([3 * HH, 3 * H, 3 * HH, 3 * H, HH, H, C * H])
        gW2 = torch.block_diag(*gW2b.view(3, H, H))
        return (gh, gx, gW1.view(3 * H, H), gb1, gW2, gb2, gWc1.view(H, H), gbc1, gWc2.view(C, H), None, None, None)


def temporal_attention_native(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, cfg) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(h', x')`` for ``h [R, T, H]``, ``x [R, T, (C,) D]`` through the native kernel, or ``None``
    where it does not apply (see the module docstring)."""
    H = h.shape[-1]
    C = 1 if cfg.channels is None else cfg.channels
    tensors = [h, x, W1, b1, W2, b2, Wc1, bc1, Wc2]
    if (
        cfg.act not in ACTS
        or H not in WIDTHS
        or h.dim() != 3
        or x.dim() != (3 if cfg.channels is None else 4)
        or C > MAX_CHANNELS
        or Wc2.shape[0] != C
        or x.shape[-1] > MAX_DIM
        or not native.accepts("attention_fwd", tensors)
    ):
        return None
    return _TemporalAttentionNative.apply(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, cfg.act, cfg.causal, float(cfg.sign))
