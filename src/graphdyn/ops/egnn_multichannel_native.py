"""The multi-channel EGNN per-edge op as a native kernel, registered as PyTorch custom ops.

Computes exactly :func:`graphdyn.ops.egnn_edges.reference` with ``cfg.channels = C`` (its
docstring has the math and the hand-derived backward): for every edge e = (i <- j) and batch
row, ``d = x_i - x_j [C, D]``, the normalised Gram radial ``vec(d d^T) / max(|d d^T|, 1e-12)``
(``R = C C``), the message MLP, per-channel coordinate weights ``phi [C]`` and the (optionally
clamped) update ``diag(phi) d``, summed at the receivers. The C kernel
``graphdyn/native/egnn_multichannel.c`` computes every edge row with its hidden vectors on the
stack (nothing edge-sized is stored) and recomputes them in the backward; threads own ranges of
batch rows.

Shapes (node-major, ``...`` batch axes shared by all inputs, e.g. ``B, T``)::

    h  [N, ..., H]    W1 [H, 2H] (the first message Linear's receiver and sender blocks)   b1 [H]
    x  [N, ..., C, D]
    Q  [E or 1, ..., H] or None (edge-attribute projections; batch axes may be 1 after a
       prefix of h's, e.g. ESTAG's [E, B, 1, H] broadcast over frames)
    Wr [H, C C]   W2 [H, H]   b2 [H]   Wc1 [H, H]   bc1 [H]   Wc2 [C, H]  (the last three None
       without coordinate updates)
    edge_index [2, E]  (row 0 receiver i, row 1 sender j)
    -> M [N, ..., H],  X [N, ..., C, D] (empty without coordinate updates)

Ops: ``graphdyn::egnn_edges_mc`` (forward) and ``graphdyn::egnn_edges_mc_backward`` (all
first-order gradients; no double backward), linked by ``register_autograd``, each with a fake
implementation for tracing. :func:`egnn_edges_mc_native` takes the arguments of
:func:`graphdyn.ops.egnn_edges.reference` and returns ``None`` where the kernel does not apply
(:func:`native_refusal` says why): single-channel coordinates, a hidden width other than
:data:`WIDTHS`, more than :data:`MAX_CHANNELS` channels or :data:`MAX_DIM` dimensions, unit
vectors, an activation outside :data:`ACT_CODES` (or a leaky_relu slope other than
``native.LIMITS['LEAKY_SLOPE']``), another device or dtype, no compiler.
"""

from __future__ import annotations

from typing import Optional

import torch

from graphdyn import native
from graphdyn.ops.egnn_edges import broadcast_rows, edge_stride

NAME = "egnn_edges_mc"
WIDTHS = (16,)  # hidden widths compiled (ESTAG's)
MAX_CHANNELS = native.LIMITS["EGNN_MAXC"]
MAX_DIM = native.LIMITS["EGNN_MAXD"]
ACT_CODES = native.ACTS
_KERNELS = ("egnn_mc_fwd", "egnn_mc_bwd")


def _layouts(h, W1, Wr, W2, Wc1, Wc2):
    """The weight layouts the kernel reads (every loop over contiguous memory): transposes ([in, out])."""
    H = h.shape[-1]
    c = [W1[:, :H].t().contiguous(), W1[:, H:].t().contiguous(), Wr.t().contiguous(), W2.t().contiguous()]
    if Wc1 is not None:
        c += [Wc1.t().contiguous(), Wc2.t().contiguous()]
    else:
        c += [None, None]
    return c


def _sizes(h: torch.Tensor, x: torch.Tensor, recv: torch.Tensor):
    N, H, C, D = h.shape[0], h.shape[-1], x.shape[-2], x.shape[-1]
    return N, h[0].numel() // H if N else 0, recv.shape[0], H, C, D


@torch.library.custom_op("graphdyn::egnn_edges_mc", mutates_args=())
def _mc_forward(h: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, x: torch.Tensor, Q: Optional[torch.Tensor],
                Wr: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, Wc1: Optional[torch.Tensor],
                bc1: Optional[torch.Tensor], Wc2: Optional[torch.Tensor], recv: torch.Tensor, send: torch.Tensor,
                rep: int, act: int, clampv: float) -> tuple[torch.Tensor, torch.Tensor]:
    N, R, E, H, C, D = _sizes(h, x, recv)
    h, x, b1, b2 = h.contiguous(), x.contiguous(), b1.contiguous(), b2.contiguous()
    Q = None if Q is None else Q.contiguous()
    w1it, w1jt, wrt, w2t, wc1t, wc2t = _layouts(h, W1, Wr, W2, Wc1, Wc2)
    coords = Wc1 is not None
    bc1 = bc1.contiguous() if coords else None
    agg_m = torch.empty_like(h)
    agg_t = torch.empty_like(x) if coords else x.new_zeros(0)
    p = native.ptr
    native.call(
        "egnn_mc_fwd", h.dtype, p(h), p(w1it), p(w1jt), p(b1), p(Q), native.i64(edge_stride(Q)), native.i64(rep), p(x),
        p(recv), p(send), p(wrt), p(w2t), p(b2), p(wc1t), p(bc1), p(wc2t), p(agg_m), p(agg_t if coords else None),
        native.i64(N), native.i64(R), native.i64(E), native.i64(H), native.i64(C), native.i64(D), act,
        native.real(h.dtype, clampv), torch.get_num_threads(),
    )
    return agg_m, agg_t


@_mc_forward.register_fake
def _(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send, rep, act, clampv):
    return torch.empty_like(h), (torch.empty_like(x) if Wc1 is not None else x.new_empty(0))


def _grad_shapes(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, need_h, need_x, need_Q):
    """Empty tensors shaped like the backward's outputs (numel 0 where not computed)."""
    coords = Wc1 is not None
    like = [h if need_h else None, W1, b1, x if need_x else None, Q if Q is not None and need_Q else None, Wr, W2, b2,
            Wc1 if coords else None, bc1 if coords else None, Wc2 if coords else None]
    return [h.new_empty(0) if t is None else h.new_empty(t.shape) for t in like]


@torch.library.custom_op("graphdyn::egnn_edges_mc_backward", mutates_args=())
def _mc_backward(G_m: torch.Tensor, G_t: Optional[torch.Tensor], h: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor,
                 x: torch.Tensor, Q: Optional[torch.Tensor], Wr: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor,
                 Wc1: Optional[torch.Tensor], bc1: Optional[torch.Tensor], Wc2: Optional[torch.Tensor],
                 recv: torch.Tensor, send: torch.Tensor, rep: int, act: int, clampv: float,
                 need_h: bool, need_x: bool, need_Q: bool) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
        torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(g_h, g_W1, g_b1, g_x, g_Q, g_Wr, g_W2, g_b2, g_Wc1, g_bc1, g_Wc2); empty where not wanted
    (``need_*`` False, no ``Q``, no coordinate update)."""
    N, R, E, H, C, D = _sizes(h, x, recv)
    coords = Wc1 is not None
    h, x, b1, b2, G_m = h.contiguous(), x.contiguous(), b1.contiguous(), b2.contiguous(), G_m.contiguous()
    Q = None if Q is None else Q.contiguous()
    if coords:
        G_t = torch.zeros_like(x) if G_t is None or G_t.numel() == 0 else G_t.contiguous()
    else:
        G_t = None
    w1it, w1jt, wrt, w2t, wc1t, wc2t = _layouts(h, W1, Wr, W2, Wc1, Wc2)
    w1i, w1j = W1[:, :H].contiguous(), W1[:, H:].contiguous()
    wr, w2 = Wr.contiguous(), W2.contiguous()
    wc1, bc1c, wc2 = (Wc1.contiguous(), bc1.contiguous(), Wc2.contiguous()) if coords else (None, None, None)
    # the kernel writes every element of these (each thread zeroes its own rows of g_x and g_Q)
    gh = torch.empty_like(h) if need_h else None
    gx = torch.empty_like(x) if need_x else None
    gQ = torch.empty_like(Q) if Q is not None and need_Q else None
    block = h.new_empty(H * C * C + 4 * H * H + 3 * H + C * H)
    p = native.ptr
    native.call(
        "egnn_mc_bwd", h.dtype, p(h), p(w1it), p(w1jt), p(w1i), p(w1j), p(b1), p(Q), p(gQ), native.i64(edge_stride(Q)),
        native.i64(rep), p(x), p(recv), p(send), p(wr), p(wrt), p(w2t), p(w2), p(b2), p(wc1t), p(wc1), p(bc1c),
        p(wc2), p(wc2t), p(G_m), p(G_t), p(gh), p(gx), p(block), native.i64(N), native.i64(R), native.i64(E),
        native.i64(H), native.i64(C), native.i64(D), act, native.real(h.dtype, clampv),
        torch.get_num_threads(),
    )
    gWr, gW2, gb2, gWc1, gbc1, gWc2, gW1i, gW1j, gb1 = block.split([H * C * C, H * H, H, H * H, H, C * H, H * H, H * H, H])
    empty = h.new_empty(0)
    coord_grads = (gWc1.view(H, H).clone(), gbc1.clone(), gWc2.view(C, H).clone()) if coords else (empty, empty.clone(), empty.clone())
    return (
        empty.clone() if gh is None else gh,
        torch.cat([gW1i.view(H, H), gW1j.view(H, H)], 1),
        gb1.clone(),
        empty.clone() if gx is None else gx,
        empty.clone() if gQ is None else gQ,
        gWr.view(H, C * C).clone(),
        gW2.view(H, H).clone(),
        gb2.clone(),
        *coord_grads,
    )


@_mc_backward.register_fake
def _(G_m, G_t, h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send, rep, act, clampv, need_h, need_x, need_Q):
    return tuple(_grad_shapes(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, need_h, need_x, need_Q))


def _setup(ctx, inputs, output):
    h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send, rep, act, clampv = inputs
    ctx.save_for_backward(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send)
    ctx.args = (rep, act, clampv)


def _backward(ctx, G_m, G_t):
    h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send = ctx.saved_tensors
    need = ctx.needs_input_grad
    if G_m is None:
        G_m = torch.zeros_like(h)
    grads = _mc_backward(G_m, G_t, h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send, *ctx.args,
                         bool(need[0]), bool(need[3]), bool(Q is not None and need[4]))
    gh, gW1, gb1, gx, gQ, gWr, gW2, gb2, gWc1, gbc1, gWc2 = grads
    coords = Wc1 is not None
    return (
        gh if need[0] else None, gW1, gb1, gx if need[3] else None, gQ if Q is not None and need[4] else None,
        gWr, gW2, gb2, gWc1 if coords else None, gbc1 if coords else None, gWc2 if coords else None,
        None, None, None, None, None,
    )


_mc_forward.register_autograd(_backward, setup_context=_setup)


def native_refusal(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, cfg) -> str | None:
    """Why the kernel cannot take this call of :func:`graphdyn.ops.egnn_edges.reference` (None: it can)."""
    C = cfg.channels
    if C is None:
        return "single-channel coordinates (the single-channel kernel of graphdyn.ops.egnn_edges takes them)"
    if cfg.act not in ACT_CODES:
        return f"activation {cfg.act!r} (the kernel knows {', '.join(ACT_CODES)})"
    if cfg.act == "leaky_relu" and cfg.slope != native.LIMITS["LEAKY_SLOPE"]:
        return f"leaky_relu slope {cfg.slope} (compiled: {native.LIMITS['LEAKY_SLOPE']})"
    if cfg.unit_vectors:
        return "unit vectors (single-channel only)"
    H = h.shape[-1]
    if H not in WIDTHS:
        return f"hidden width {H} (compiled: {WIDTHS})"
    if not 1 <= C <= MAX_CHANNELS:
        return f"{C} channels (the kernel takes 1 to {MAX_CHANNELS})"
    if x.dim() != h.dim() + 1 or x.shape[:-2] != h.shape[:-1] or x.shape[-2] != C:
        return f"x {tuple(x.shape)} is not [N, ..., C, D] for h {tuple(h.shape)} and C = {C}"
    if not 1 <= x.shape[-1] <= MAX_DIM:
        return f"{x.shape[-1]}-D coordinates (the kernel takes up to {MAX_DIM})"
    shapes = {"W1": (W1, (H, 2 * H)), "b1": (b1, (H,)), "Wr": (Wr, (H, C * C)), "W2": (W2, (H, H)), "b2": (b2, (H,))}
    if cfg.update_coords:
        if Wc1 is None or bc1 is None or Wc2 is None:
            return "coordinate update without its weights"
        shapes.update({"Wc1": (Wc1, (H, H)), "bc1": (bc1, (H,)), "Wc2": (Wc2, (C, H))})
    for name, (t, shape) in shapes.items():
        if tuple(t.shape) != shape:
            return f"{name} {tuple(t.shape)} is not {shape}"
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        return f"edge_index {tuple(edge_index.shape)} is not [2, E]"
    if Q is not None:
        if Q.shape[0] not in (1, edge_index.shape[1]) or Q.shape[-1] != H or broadcast_rows(Q, h) is None:
            return f"Q {tuple(Q.shape)} is not [E or 1, ..., H] broadcasting over h's batch axes {tuple(h.shape[1:-1])}"
    tensors = [h, W1, b1, x, Q, Wr, W2, b2] + ([Wc1, bc1, Wc2] if cfg.update_coords else [])
    why = native.refusal(tensors)
    if why is None and any(native.kernel(k, h.dtype) is None for k in _KERNELS):
        why = "the library has no multi-channel EGNN kernel"
    return why


def native_call(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, cfg):
    """(custom op, its arguments) for a call the kernel takes (:func:`native_refusal` is None);
    checks the edges. ``cfg``: attributes ``act, slope, clamp, update_coords`` (the hook of
    :mod:`graphdyn.ops.egnn_edges`)."""
    recv, send = native.check_edges(edge_index, h.shape[0])
    rep = 1 if Q is None else broadcast_rows(Q, h)
    clampv = -1.0 if cfg.clamp is None else float(cfg.clamp)
    coord = (Wc1, bc1, Wc2) if cfg.update_coords else (None, None, None)
    return _mc_forward, (h, W1, b1, x, Q, Wr, W2, b2, *coord, recv, send, rep, ACT_CODES[cfg.act], clampv)


def egnn_edges_mc_native(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, cfg):
    """:func:`graphdyn.ops.egnn_edges.reference` through the native kernel (same arguments and
    returns), or ``None`` where it does not apply (:func:`native_refusal`)."""
    if native_refusal(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, cfg) is not None:
        return None
    op, args = native_call(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, cfg)
    return op(*args)
