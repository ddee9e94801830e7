"""EGNN's residual node update, one op: reference and native kernel.

For every row (node and batch entry)::

    z  = Wh h + Wg g + q + b1          g: aggregated messages, q: projected extra node inputs (optional)
    h' = h + W2 act(z) + b2

Shapes: ``h, g [N, ..., H]``; ``q`` with the same number of axes, broadcastable to ``[N, ..., H]``
(e.g. ``[N, B, 1, H]``: EDFT amplitudes shared by all frames), or None; ``Wh, Wg, W2 [H, H]``,
``b1, b2 [H]`` -> ``h' [N, ..., H]``. ``act`` is one of :data:`graphdyn.ops.egnn_edges.ACTS`.

Implementations (chosen by :mod:`graphdyn.ops.backend`):

* :func:`reference`: plain autograd, any device, dtype, width and activation.
* ``graphdyn::node_update``: the C kernel ``native/node_update.c``, blocks of rows with their hidden
  vectors in registers, the backward (``graphdyn::node_update_backward``) recomputing ``z``. CPU,
  float32/float64, ``H`` in :data:`WIDTHS`, ``act`` in ``graphdyn.native.ACTS``, ``q`` per node and
  broadcast over trailing batch axes only.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from graphdyn import native
from graphdyn.ops import backend as _backend
from graphdyn.ops.egnn_edges import ACTS, broadcast_rows

NAME = "node_update"
WIDTHS = (16,)  # hidden widths node_update.c is compiled for (ESTAG's)


def reference(h: torch.Tensor, g: torch.Tensor, q: torch.Tensor | None, Wh: torch.Tensor, Wg: torch.Tensor,
              b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, act: str = "silu") -> torch.Tensor:
    """``h'`` of the module docstring in plain autograd."""
    if act not in ACTS:
        raise ValueError(f"act {act!r}: expected one of {', '.join(ACTS)}")
    z = F.linear(h, Wh, b1) + F.linear(g, Wg)
    if q is not None:
        z = z + q
    return h + F.linear(ACTS[act](z), W2, b2)


def native_refusal(h, g, q, Wh, Wg, b1, W2, b2, act="silu") -> str | None:
    """Why the native kernel cannot take this call (None: it can)."""
    if act not in native.ACTS:
        return f"activation {act!r} (the kernels know {', '.join(native.ACTS)})"
    if h.shape[-1] not in WIDTHS:
        return f"hidden width {h.shape[-1]} (the kernel is compiled for {', '.join(map(str, WIDTHS))})"
    if g.shape != h.shape:
        return f"messages g {tuple(g.shape)} are not of h's shape {tuple(h.shape)}"
    if q is not None and (q.dim() != h.dim() or q.shape[0] != h.shape[0] or q.shape[-1] != h.shape[-1]
                          or broadcast_rows(q, h) is None):
        return f"node projections q {tuple(q.shape)} are not [N, ..., H] broadcast over trailing batch axes of h {tuple(h.shape)}"
    return native.refusal([h, g, q, Wh, Wg, b1, W2, b2])


@torch.library.custom_op("graphdyn::node_update", mutates_args=())
def _node_update_native(h: torch.Tensor, g: torch.Tensor, q: Optional[torch.Tensor], Wh: torch.Tensor, Wg: torch.Tensor,
                        b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, rep: int, act: str) -> torch.Tensor:
    H = h.shape[-1]
    h, g = h.contiguous(), g.contiguous()
    q = None if q is None else q.contiguous()
    wht, wgt, w2t = (w.t().contiguous() for w in (Wh, Wg, W2))
    out = torch.empty_like(h)
    native.call("node_update_fwd", h.dtype, native.ptr(h), native.ptr(g), native.ptr(q), native.i64(rep), native.ptr(wht),
                native.ptr(wgt), native.ptr(b1.contiguous()), native.ptr(w2t), native.ptr(b2.contiguous()), native.ptr(out),
                native.i64(h.numel() // H), native.i64(H), native.ACTS[act], torch.get_num_threads())
    return out


@_node_update_native.register_fake
def _(h, g, q, Wh, Wg, b1, W2, b2, rep, act):
    return torch.empty_like(h)


@torch.library.custom_op("graphdyn::node_update_backward", mutates_args=())
def _node_update_native_backward(h: torch.Tensor, g: torch.Tensor, q: Optional[torch.Tensor], Wh: torch.Tensor,
                                 Wg: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, rep: int, act: str,
                                 gO: torch.Tensor, need_g: bool,
                                 need_q: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(g_h, g_g, g_q, weight-gradient block ``[gWh (H H), gWg (H H), gb1 (H), gW2 (H H), gb2 (H)]``);
    g_g and g_q empty where not needed."""
    H = h.shape[-1]
    h, g, gO = h.contiguous(), g.contiguous(), gO.contiguous()
    q = None if q is None else q.contiguous()
    Wh, Wg, W2 = Wh.contiguous(), Wg.contiguous(), W2.contiguous()
    wht, wgt = Wh.t().contiguous(), Wg.t().contiguous()
    gh = torch.empty_like(h)
    gg = torch.empty_like(g) if need_g else g.new_zeros(0)
    gq = torch.zeros_like(q) if need_q and q is not None else h.new_zeros(0)  # accumulated by the kernel
    block = h.new_empty(3 * H * H + 2 * H)
    native.call("node_update_bwd", h.dtype, native.ptr(h), native.ptr(g), native.ptr(q), native.i64(rep), native.ptr(wht),
                native.ptr(Wh), native.ptr(wgt), native.ptr(Wg), native.ptr(b1.contiguous()), native.ptr(W2), native.ptr(gO),
                native.ptr(gh), native.ptr(gg if need_g else None), native.ptr(gq if gq.numel() else None), native.ptr(block),
                native.i64(h.numel() // H), native.i64(H), native.ACTS[act], torch.get_num_threads())
    return gh, gg, gq, block


@_node_update_native_backward.register_fake
def _(h, g, q, Wh, Wg, b1, W2, rep, act, gO, need_g, need_q):
    H = h.shape[-1]
    return (torch.empty_like(h), torch.empty_like(g) if need_g else g.new_empty(0),
            torch.empty_like(q) if need_q and q is not None else h.new_empty(0), h.new_empty(3 * H * H + 2 * H))


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:7])
    ctx.static = inputs[8:]


def _backward(ctx, gO):
    h, g, q, Wh, Wg, b1, W2 = ctx.saved_tensors
    need = ctx.needs_input_grad
    gh, gg, gq, block = _node_update_native_backward(h, g, q, Wh, Wg, b1, W2, *ctx.static, gO, need[1],
                                                     q is not None and need[2])
    H = h.shape[-1]
    gWh, gWg, gb1, gW2, gb2 = block.split([H * H, H * H, H, H * H, H])
    return (gh, gg if need[1] else None, gq if q is not None and need[2] else None, gWh.view(H, H), gWg.view(H, H), gb1,
            gW2.view(H, H), gb2, None, None)


_node_update_native.register_autograd(_backward, setup_context=_setup)


def native_call(h, g, q, Wh, Wg, b1, W2, b2, act="silu"):
    """(custom op, its arguments) for a call the kernel takes."""
    rep = 1 if q is None else broadcast_rows(q, h)
    return _node_update_native, (h, g, q, Wh, Wg, b1, W2, b2, rep, act)


def node_update(h: torch.Tensor, g: torch.Tensor, q: torch.Tensor | None, Wh: torch.Tensor, Wg: torch.Tensor,
                b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, act: str = "silu", backend: str = "auto") -> torch.Tensor:
    """``h'`` (module docstring) by the implementation ``backend`` picks."""
    if act not in ACTS:
        raise ValueError(f"act {act!r}: expected one of {', '.join(ACTS)}")
    if _backend.use_native(backend, NAME, native_refusal(h, g, q, Wh, Wg, b1, W2, b2, act)):
        op, args = native_call(h, g, q, Wh, Wg, b1, W2, b2, act)
        return op(*args)
    return reference(h, g, q, Wh, Wg, b1, W2, b2, act)


def cases(dtype: torch.dtype = torch.float64) -> list[tuple[tuple, dict]]:
    """Small argument sets for the parity tests: (args, kwargs) of :func:`node_update` minus ``backend``.
    Width 16; q absent, per row, and broadcast over the last batch axis (rows = 7*3*5 = 105: not a
    multiple of the kernel's row block, whose blocks then straddle q's groups); every activation
    the kernels know; g not requiring a gradient in one case."""
    gen = torch.Generator().manual_seed(0)
    H = 16

    def t(*shape, scale=1.0, grad=True):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_(grad)

    out = []
    for batch, qshape, act, g_grad in (((3, 5), (3, 1), "silu", True), ((3, 5), None, "relu", True),
                                       ((4,), (4,), "tanh", False), ((), (), "silu", True),
                                       ((3, 5), (3, 1), "leaky_relu", True)):
        h, g = t(7, *batch, H), t(7, *batch, H, scale=0.7, grad=g_grad)
        q = None if qshape is None else t(7, *qshape, H, scale=0.5)
        w = [t(H, H, scale=0.3), t(H, H, scale=0.3), t(H, scale=0.1), t(H, H, scale=0.3), t(H, scale=0.1)]
        out.append(((h, g, q, *w), {"act": act}))
    return out
