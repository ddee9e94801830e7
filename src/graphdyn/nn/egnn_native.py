"""The single-channel EGNN per-edge op as a native kernel (custom autograd).

Computes exactly :func:`graphdyn.nn.egnn_fused.egnn_edges` (its docstring has the math and the
backward) for single-channel coordinates, with the C kernel
``graphdyn/native/egnn_edges.c``: every edge row is computed with its hidden vectors in
registers, and the backward recomputes them. Threads own ranges of batch rows.
:func:`egnn_edges_native` returns ``None`` where the kernel does not apply (multi-channel,
a hidden width other than :data:`WIDTHS`, another activation, device or dtype, no compiler);
the caller then runs the PyTorch op. Edge-attribute projections ``Q [E or 1, ..., H]`` may broadcast over trailing batch
axes (ESTAG's ``[E, B, 1, H]`` over frames).

Shapes (node-major): ``h [N, ..., H]``, ``W1 [H, 2H]`` (the first message Linear's receiver and
sender blocks), ``b1 [H]``, ``x [N, ..., D]`` -> ``M [N, ..., H]``, ``X [N, ..., D]`` (empty
without coordinate updates). The kernel computes the node projections ``W1 h`` itself, a cache-sized
tile of rows at a time, and returns ``g_h`` and the gradients of ``W1`` and ``b1`` directly.
"""

from __future__ import annotations

import ctypes
import math

import torch

from graphdyn import native
from graphdyn.native import ACTS, check_edges, i64 as _i64

MAX_DIM = 8  # EGNN_MAXD in egnn_edges.c
WIDTHS = (16,)  # hidden widths compiled (ESTAG's); others run the PyTorch op


def _real(t: torch.Tensor, v: float):
    return (ctypes.c_float if t.dtype == torch.float32 else ctypes.c_double)(v)


class _EGNNEdgesNative(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, W1, b1, Q, x, Wr, W2, b2, Wc1, bc1, Wc2, recv, send, rep, act, unit, clampv):  # noqa: D102
        N, H, D = h.shape[0], h.shape[-1], x.shape[-1]
        R = h[0].numel() // H
        qe = 0 if Q is None or Q.shape[0] == 1 else Q[0].numel()
        coords = Wc1 is not None
        h, x = h.contiguous(), x.contiguous()
        W1 = W1.detach()
        w1i, w1j = W1[:, :H].contiguous(), W1[:, H:].contiguous()  # receiver, sender blocks [out, in]
        ws = [w1i.t().contiguous(), w1j.t().contiguous(), b1.detach().contiguous(), Wr.detach().reshape(-1).contiguous(),
              W2.detach().t().contiguous(), b2.detach().contiguous()]
        if coords:
            ws += [Wc1.detach().t().contiguous(), bc1.detach().contiguous(), Wc2.detach().reshape(-1).contiguous()]
        w1it, w1jt, b1c, wr, w2t, b2c = ws[:6]
        wc1t, bc1c, wc2 = ws[6:] if coords else (None, None, None)
        agg_m = torch.empty_like(h)
        agg_t = torch.empty_like(x) if coords else x.new_zeros(0)
        native.call(
            "egnn_edges_fwd", h.dtype, native.ptr(h), native.ptr(w1it), native.ptr(w1jt), native.ptr(b1c), native.ptr(Q),
            _i64(qe), _i64(rep), native.ptr(x), native.ptr(recv), native.ptr(send),
            native.ptr(wr), native.ptr(w2t), native.ptr(b2c), native.ptr(wc1t), native.ptr(bc1c), native.ptr(wc2),
            native.ptr(agg_m), native.ptr(agg_t if coords else None), _i64(N), _i64(R), _i64(recv.shape[0]), _i64(H),
            _i64(D), ACTS[act], int(unit), _real(h, clampv), torch.get_num_threads(),
        )
        ctx.save_for_backward(h, x, w1it, w1jt, w1i, w1j, b1c, wr, w2t, W2.detach().contiguous(), b2c, *(
            (wc1t, Wc1.detach().contiguous(), bc1c, wc2) if coords else ()), recv, send, Q)
        ctx.cfg = (act, unit, clampv, coords, qe, rep)
        if not coords:
            ctx.mark_non_differentiable(agg_t)
        return agg_m, agg_t

    @staticmethod
    def backward(ctx, G_m, G_t):  # noqa: D102
        act, unit, clampv, coords, qe, rep = ctx.cfg
        saved = ctx.saved_tensors
        h, x, w1it, w1jt, w1i, w1j, b1, wr, w2t, w2, b2 = saved[:11]
        wc1t, wc1, bc1, wc2 = saved[11:15] if coords else (None,) * 4
        recv, send, Q = saved[-3:]
        N, H, D = h.shape[0], h.shape[-1], x.shape[-1]
        R = h[0].numel() // H
        need = ctx.needs_input_grad
        # the kernel writes every element of these (each thread zeroes its own rows of gQ and gx)
        gh = torch.empty_like(h) if need[0] else None
        gQ = torch.empty_like(Q) if Q is not None and need[3] else None
        gx = torch.empty_like(x) if need[4] else None
        G_m = G_m.contiguous()
        G_t = G_t.contiguous() if coords else None
        block = torch.empty(4 * H * H + 5 * H, dtype=h.dtype)
        native.call(
            "egnn_edges_bwd", h.dtype, native.ptr(h), native.ptr(w1it), native.ptr(w1jt), native.ptr(w1i), native.ptr(w1j),
            native.ptr(b1), native.ptr(Q), native.ptr(gQ), _i64(qe), _i64(rep), native.ptr(x), native.ptr(recv),
            native.ptr(send), native.ptr(wr), native.ptr(w2t), native.ptr(w2), native.ptr(b2), native.ptr(wc1t),
            native.ptr(wc1), native.ptr(bc1), native.ptr(wc2), native.ptr(G_m), native.ptr(G_t), native.ptr(gh),
            native.ptr(gx), native.ptr(block), _i64(N), _i64(R), _i64(recv.shape[0]), _i64(H), _i64(D), ACTS[act],
            int(unit), _real(h, clampv), torch.get_num_threads(),
        )
        gWr, gW2, gb2, gWc1, gbc1, gWc2, gW1i, gW1j, gb1 = block.split([H, H * H, H, H * H, H, H, H * H, H * H, H])
        coord_grads = (gWc1.view(H, H), gbc1, gWc2.view(1, H)) if coords else (None, None, None)
        gW1 = torch.cat([gW1i.view(H, H), gW1j.view(H, H)], 1)
        return (gh, gW1, gb1, gQ, gx, gWr.view(H, 1), gW2.view(H, H), gb2, *coord_grads, None, None, None, None, None, None)


def _broadcast_rows(Q: torch.Tensor, P: torch.Tensor) -> int | None:
    """``rep`` such that row ``r`` of ``P``'s batch rows reads row ``r // rep`` of ``Q``: ``Q``'s batch
    axes must equal ``P``'s up to some axis and be 1 after it (None otherwise)."""
    qb, pb = Q.shape[1:-1], P.shape[1:-1]
    if len(qb) != len(pb):
        return None
    k = len(qb)
    while k and qb[k - 1] == 1:
        k -= 1
    if tuple(qb[:k]) != tuple(pb[:k]):
        return None
    return math.prod(pb[k:])


def egnn_edges_native(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, cfg) -> tuple[torch.Tensor, torch.Tensor] | None:
    """:func:`graphdyn.nn.egnn_fused.egnn_edges` through the native kernel, or ``None`` where it does not apply."""
    tensors = [h, W1, b1, x, Wr, W2, b2] + ([Wc1, bc1, Wc2] if cfg.update_coords else []) + ([] if Q is None else [Q])
    rep = 1 if Q is None else _broadcast_rows(Q, h)
    if (
        cfg.channels is not None
        or rep is None
        or (Q is not None and Q.shape[0] not in (1, edge_index.shape[1]))
        or cfg.act not in ACTS
        or h.shape[-1] not in WIDTHS
        or x.shape[-1] > MAX_DIM
        or Wr.shape[-1] != 1
        or any(t is None for t in tensors)
        or not native.accepts("egnn_edges_fwd", tensors)
    ):
        return None
    recv, send = check_edges(edge_index, h.shape[0])
    clampv = -1.0 if cfg.clamp is None else float(cfg.clamp)
    coord = (Wc1, bc1, Wc2) if cfg.update_coords else (None, None, None)
    Q = None if Q is None else Q.contiguous()
    return _EGNNEdgesNative.apply(h, W1, b1, Q, x, Wr, W2, b2, *coord, recv, send, rep, cfg.act, cfg.unit_vectors, clampv)
