"""EGNN's residual node update as a native kernel (custom autograd).

Computes exactly :func:`graphdyn.nn.node_update_fused.node_update` (its docstring has the math
and the backward) with the C kernel ``graphdyn/native/node_update.c``: blocks of rows with
their hidden vectors in registers, the backward recomputing them. :func:`node_update_native`
returns ``None`` where the kernel does not apply (a hidden width other than :data:`WIDTHS`,
an activation the kernels lack, ``q`` shared over nodes or broadcast in another pattern,
another device or dtype, no compiler); the caller then runs the PyTorch op.

Shapes: ``h, g [N, ..., H]``, ``q [N, ..., H]`` broadcast over trailing batch axes (e.g.
``[N, B, 1, H]`` over frames) or ``None``, ``Wh, Wg, W2 [H, H]``, ``b1, b2 [H]`` -> ``[N, ..., H]``.
"""

from __future__ import annotations

import torch

from graphdyn import native
from graphdyn.native import ACTS, i64 as _i64
from graphdyn.nn.egnn_native import _broadcast_rows

WIDTHS = (16,)  # hidden widths compiled (ESTAG's); others run the PyTorch op


class _NodeUpdateNative(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, g, q, Wh, Wg, b1, W2, b2, rep, act):  # noqa: D102
        H = h.shape[-1]
        rows = h.numel() // H
        wh, wg, w2 = (t.detach().contiguous() for t in (Wh, Wg, W2))
        wht, wgt, w2t = wh.t().contiguous(), wg.t().contiguous(), w2.t().contiguous()
        b1c, b2c = b1.detach().contiguous(), b2.detach().contiguous()
        out = torch.empty_like(h)
        native.call(
            "node_update_fwd", h.dtype, native.ptr(h), native.ptr(g), native.ptr(q), _i64(rep), native.ptr(wht),
            native.ptr(wgt), native.ptr(b1c), native.ptr(w2t), native.ptr(b2c), native.ptr(out), _i64(rows), _i64(H),
            ACTS[act], torch.get_num_threads(),
        )
        ctx.save_for_backward(h, g, q, wht, wh, wgt, wg, b1c, w2)
        ctx.cfg = (rep, act)
        return out

    @staticmethod
    def backward(ctx, gO):  # noqa: D102
        h, g, q, wht, wh, wgt, wg, b1, w2 = ctx.saved_tensors
        rep, act = ctx.cfg
        need = ctx.needs_input_grad
        H = h.shape[-1]
        rows = h.numel() // H
        gh = torch.empty_like(h) if need[0] else None
        gg = torch.empty_like(g) if need[1] else None
        gq = torch.zeros_like(q) if q is not None and need[2] else None
        block = torch.empty(3 * H * H + 2 * H, dtype=h.dtype)
        native.call(
            "node_update_bwd", h.dtype, native.ptr(h), native.ptr(g), native.ptr(q), _i64(rep), native.ptr(wht),
            native.ptr(wh), native.ptr(wgt), native.ptr(wg), native.ptr(b1), native.ptr(w2), native.ptr(gO.contiguous()),
            native.ptr(gh), native.ptr(gg), native.ptr(gq), native.ptr(block), _i64(rows), _i64(H), ACTS[act],
            torch.get_num_threads(),
        )
        gWh, gWg, gb1, gW2, gb2 = block.split([H * H, H * H, H, H * H, H])
        return gh, gg, gq, gWh.view(H, H), gWg.view(H, H), gb1, gW2.view(H, H), gb2, None, None


def node_update_native(h, g, q, Wh, Wg, b1, W2, b2, act: str) -> torch.Tensor | None:
    """``h'`` through the native kernel (``h, g, q`` contiguous), or ``None`` where it does not apply."""
    tensors = [h, g, Wh, Wg, b1, W2, b2] + ([] if q is None else [q])
    rep = 1
    if q is not None:
        if q.dim() != h.dim() or q.shape[0] != h.shape[0] or q.shape[-1] != h.shape[-1]:
            return None
        rep = _broadcast_rows(q, h)
    if (
        rep is None
        or act not in ACTS
        or h.shape[-1] not in WIDTHS
        or g.shape != h.shape
        or not native.accepts("node_update_fwd", tensors)
    ):
        return None
    return _NodeUpdateNative.apply(h, g, q, Wh, Wg, b1, W2, b2, rep, act)
