"""EGNN's per-edge part (messages and coordinate updates, summed at the receiver), one op.

For every directed edge e = (i <- j) and every batch row (node-major tensors)::

    d_e   = x_i - x_j                                      [D] (single-channel) or [C, D] (multi-channel)
    r_e   = ||d_e||^2                                      single-channel (R = 1)
          | vec(d_e d_e^T) / max(||d_e d_e^T||, 1e-12)     multi-channel (R = C*C)
    z1_e  = W1 [h_i, h_j] + b1 + Wr r_e + q_e               (q_e: projected edge attributes, optional)
    m_e   = act(W2 act(z1_e) + b2)                         message
    phi_e = Wc2 act(Wc1 m_e + bc1)                         [1] or [C]
    t_e   = clamp(u_e phi_e, -c, c)                        single-channel, u = d or d / ||d|| (unit_vectors)
          | clamp(diag(phi_e) d_e, -c, c)                  multi-channel
    M_n   = sum_{e: i_e = n} m_e,     X_n = sum_{e: i_e = n} t_e

Without the coordinate network (``Wc1 = bc1 = Wc2 = None``) only ``M`` is computed and ``X`` is an
empty tensor. The clamp is skipped when ``clamp`` is None.

Shapes (node-major only: the node axis first, ``...`` batch axes, e.g. ``B, T``; a layer holding
another layout moves its node axis to the front)::

    h   [N, ..., H]        W1 [H, 2H] (receiver block, then sender block)   b1 [H]
    x   [N, ..., D]  (single-channel)  or  [N, ..., C, D]  (multi-channel)
    Q   [E or 1, ..., H] with the same number of axes as h, batch axes 1 where broadcast; or None
    Wr  [H, R]   W2 [H, H]   b2 [H]   Wc1 [H, H]   bc1 [H]   Wc2 [1 | C, H]   (or the last three None)
    edge_index [2, E] (row 0 receiver i, row 1 sender j, shared by every batch row)
    -> M [N, ..., H],  X like x (or empty)

``act`` is one of :data:`ACTS` (``leaky_relu`` has slope 0.2, as :func:`graphdyn.nn.mlp.activation`).

Implementations (chosen by :mod:`graphdyn.ops.backend`):

* :func:`reference`: plain autograd, any device, dtype, width, activation; higher derivatives.
* ``graphdyn::egnn_edges``: the C kernel ``native/egnn_edges.c`` for single-channel coordinates,
  every edge row computed with its hidden vectors in registers and recomputed in the backward
  (``graphdyn::egnn_edges_backward``). CPU, float32/float64, ``H`` in :data:`WIDTHS`,
  ``D <= MAX_D``, ``act`` in ``graphdyn.native.ACTS``, ``Q`` broadcast over trailing batch axes.
* multi-channel coordinates: the kernel of :mod:`graphdyn.ops.egnn_multichannel_native`
  (:func:`_multichannel`).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Optional

import torch
import torch.nn.functional as F

from graphdyn import native
from graphdyn.ops import backend as _backend

NAME = "egnn_edges"
MAX_D = native.LIMITS["EGNN_MAXD"]
WIDTHS = (16,)  # hidden widths egnn_edges.c is compiled for (ESTAG's): each width multiplies the compile time

ACTS = {
    "silu": F.silu,
    "relu": F.relu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.2),
}


def _check(h, x, act):
    if act not in ACTS:
        raise ValueError(f"act {act!r}: expected one of {', '.join(ACTS)}")
    if x.dim() not in (h.dim(), h.dim() + 1) or x.shape[0] != h.shape[0]:
        raise ValueError(f"x {tuple(x.shape)} is neither [N, ..., D] nor [N, ..., C, D] for h {tuple(h.shape)}")


def reference(h: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, x: torch.Tensor, Q: torch.Tensor | None,
              Wr: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, Wc1: torch.Tensor | None, bc1: torch.Tensor | None,
              Wc2: torch.Tensor | None, edge_index: torch.Tensor, act: str = "silu", unit_vectors: bool = False,
              clamp: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, X)`` of the module docstring in plain autograd."""
    _check(h, x, act)
    f = ACTS[act]
    i, j = edge_index[0], edge_index[1]
    H = h.shape[-1]
    multi = x.dim() == h.dim() + 1
    d = x.index_select(0, i) - x.index_select(0, j)  # [E, ..., (C,) D]
    if multi:
        gram = (d @ d.transpose(-1, -2)).flatten(-2)  # [E, ..., C*C]
        radial = gram / gram.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    else:
        radial = (d * d).sum(-1, keepdim=True)  # [E, ..., 1]
    # W1 [h_i, h_j] = (W1_i h)_i + (W1_j h)_j: the two blocks act on the N node rows before the gather
    z1 = F.linear(h, W1[:, :H], b1).index_select(0, i) + F.linear(h, W1[:, H:]).index_select(0, j)
    z1 = z1 + F.linear(radial, Wr)
    if Q is not None:
        z1 = z1 + Q
    m = f(F.linear(f(z1), W2, b2))  # [E, ..., H]
    M = h.new_zeros(h.shape).index_add(0, i, m)
    if Wc1 is None:
        return M, x.new_zeros(0)
    phi = F.linear(f(F.linear(m, Wc1, bc1)), Wc2)  # [E, ..., 1 | C]
    if multi:
        t = d * phi.unsqueeze(-1)
    else:
        t = (d / radial.sqrt() if unit_vectors else d) * phi
    if clamp is not None:
        t = t.clamp(-clamp, clamp)
    return M, x.new_zeros(x.shape).index_add(0, i, t)


def node_major(t: torch.Tensor | None, dims: int, nd: int) -> torch.Tensor | None:
    """Edge or node attributes broadcastable to ``[..., N or E, K]`` (node axis ``nd`` of ``dims``
    axes) as the ops take them: padded to ``dims`` axes, node or edge axis first (None stays None)."""
    if t is None:
        return None
    return t.reshape((1,) * (dims - t.dim()) + t.shape).movedim(nd, 0)


def edge_stride(Q: torch.Tensor | None) -> int:
    """Elements per edge of the edge projections ``Q [E or 1, ..., H]`` (0: one block shared by
    every edge, or no ``Q``), as the edge kernels index them."""
    return 0 if Q is None or Q.shape[0] == 1 else Q[0].numel()


def broadcast_rows(Q: torch.Tensor, P: torch.Tensor) -> int | None:
    """``rep`` such that batch row ``r`` of ``P [N, ..., H]`` reads batch row ``r // rep`` of
    ``Q [E, ..., H]`` (row-major over the batch axes): ``Q``'s batch axes must equal ``P``'s up to
    some axis and be 1 after it (None otherwise)."""
    qb, pb = Q.shape[1:-1], P.shape[1:-1]
    if len(qb) != len(pb):
        return None
    k = len(qb)
    while k and qb[k - 1] == 1:
        k -= 1
    if tuple(qb[:k]) != tuple(pb[:k]):
        return None
    return math.prod(pb[k:])


def native_refusal(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, act="silu", unit_vectors=False,
                   clamp=None) -> str | None:
    """Why no native kernel can take this call (None: one can)."""
    if x.dim() == h.dim() + 1:
        return _multichannel().native_refusal(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, _cfg(h, x, Wc1, act, unit_vectors, clamp))
    coords = [Wc1, bc1, Wc2]
    if any(t is None for t in coords) and any(t is not None for t in coords):
        return "Wc1, bc1 and Wc2 must be given together"
    if act not in native.ACTS:
        return f"activation {act!r} (the kernels know {', '.join(native.ACTS)})"
    if h.shape[-1] not in WIDTHS:
        return f"hidden width {h.shape[-1]} (the kernel is compiled for {', '.join(map(str, WIDTHS))})"
    if x.shape[-1] > MAX_D:
        return f"{x.shape[-1]}-dimensional coordinates (the kernel takes up to {MAX_D})"
    if x.shape[:-1] != h.shape[:-1]:
        return f"x {tuple(x.shape)} does not match h {tuple(h.shape)} in its node and batch axes"
    if Q is not None:
        if Q.dim() != h.dim() or Q.shape[-1] != h.shape[-1] or Q.shape[0] not in (1, edge_index.shape[1]):
            return f"edge projections Q {tuple(Q.shape)} are not [E or 1, ..., H] with h's axes"
        if broadcast_rows(Q, h) is None:
            return f"edge projections Q {tuple(Q.shape)} broadcast over other than trailing batch axes of h {tuple(h.shape)}"
    return native.refusal([h, W1, b1, x, Wr, W2, b2, Q, *coords])


def _multichannel():
    """The multi-channel kernel's op module (:mod:`graphdyn.ops.egnn_multichannel_native`, imported
    on first use). It provides ``native_refusal(..., cfg)`` and ``native_call(..., cfg) -> (custom
    op, args)`` with this op's tensor arguments and a config ``cfg`` (attributes ``act, slope,
    channels, unit_vectors, clamp, update_coords``)."""
    from graphdyn.ops import egnn_multichannel_native

    return egnn_multichannel_native


def _cfg(h, x, Wc1, act, unit_vectors, clamp):
    """The static options as one object, for the multi-channel kernel's module."""
    return SimpleNamespace(act=act, slope=0.2, channels=x.shape[-2] if x.dim() == h.dim() + 1 else None,
                           unit_vectors=unit_vectors, clamp=clamp, update_coords=Wc1 is not None)


def _sizes(h, x, recv):
    H = h.shape[-1]
    return h.shape[0], h[0].numel() // H, recv.shape[0], H, x.shape[-1]


def _weights(W1, b1, Wr, W2, b2, Wc1, bc1, Wc2):
    """The weights in the layouts the kernel reads: W1's blocks and W2, Wc1 transposed ([in, out])."""
    H = W2.shape[0]
    out = {"w1it": W1[:, :H].t().contiguous(), "w1jt": W1[:, H:].t().contiguous(), "b1": b1.contiguous(),
           "wr": Wr.reshape(-1).contiguous(), "w2t": W2.t().contiguous(), "b2": b2.contiguous()}
    if Wc1 is not None:
        out.update(wc1t=Wc1.t().contiguous(), bc1=bc1.contiguous(), wc2=Wc2.reshape(-1).contiguous())
    else:
        out.update(wc1t=None, bc1=None, wc2=None)
    return out


@torch.library.custom_op("graphdyn::egnn_edges", mutates_args=())
def _egnn_native(h: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, x: torch.Tensor, Q: Optional[torch.Tensor],
                 Wr: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, Wc1: Optional[torch.Tensor],
                 bc1: Optional[torch.Tensor], Wc2: Optional[torch.Tensor], recv: torch.Tensor, send: torch.Tensor,
                 rep: int, act: str, unit_vectors: bool, clamp: float) -> tuple[torch.Tensor, torch.Tensor]:
    N, R, E, H, D = _sizes(h, x, recv)
    h, x = h.contiguous(), x.contiguous()
    Q = None if Q is None else Q.contiguous()
    w = _weights(W1, b1, Wr, W2, b2, Wc1, bc1, Wc2)
    coords = Wc1 is not None
    M = torch.empty_like(h)
    X = torch.empty_like(x) if coords else x.new_zeros(0)
    qe = edge_stride(Q)
    native.call("egnn_edges_fwd", h.dtype, native.ptr(h), native.ptr(w["w1it"]), native.ptr(w["w1jt"]), native.ptr(w["b1"]),
                native.ptr(Q), native.i64(qe), native.i64(rep), native.ptr(x), native.ptr(recv), native.ptr(send),
                native.ptr(w["wr"]), native.ptr(w["w2t"]), native.ptr(w["b2"]), native.ptr(w["wc1t"]), native.ptr(w["bc1"]),
                native.ptr(w["wc2"]), native.ptr(M), native.ptr(X if coords else None), native.i64(N), native.i64(R),
                native.i64(E), native.i64(H), native.i64(D), native.ACTS[act], int(unit_vectors), native.real(h.dtype, clamp),
                torch.get_num_threads())
    return M, X


@_egnn_native.register_fake
def _(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send, rep, act, unit_vectors, clamp):
    return torch.empty_like(h), (torch.empty_like(x) if Wc1 is not None else x.new_empty(0))


@torch.library.custom_op("graphdyn::egnn_edges_backward", mutates_args=())
def _egnn_native_backward(h: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, x: torch.Tensor, Q: Optional[torch.Tensor],
                          Wr: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, Wc1: Optional[torch.Tensor],
                          bc1: Optional[torch.Tensor], Wc2: Optional[torch.Tensor], recv: torch.Tensor, send: torch.Tensor,
                          rep: int, act: str, unit_vectors: bool, clamp: float, gM: torch.Tensor, gX: torch.Tensor,
                          need_h: bool, need_x: bool, need_Q: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(g_h, g_x, g_Q, weight-gradient block); g_h, g_x, g_Q empty where not needed. The block is
    ``[gWr (H), gW2 (H H), gb2 (H), gWc1 (H H), gbc1 (H), gWc2 (H), gW1i (H H), gW1j (H H), gb1 (H)]``."""
    N, R, E, H, D = _sizes(h, x, recv)
    h, x, gM = h.contiguous(), x.contiguous(), gM.contiguous()
    Q = None if Q is None else Q.contiguous()
    coords = Wc1 is not None
    gX = gX.contiguous() if coords else None
    w = _weights(W1, b1, Wr, W2, b2, Wc1, bc1, Wc2)
    W1i, W1j = W1[:, :H].contiguous(), W1[:, H:].contiguous()
    W2c = W2.contiguous()
    Wc1c = Wc1.contiguous() if coords else None
    # the kernel writes every element of these (each thread zeroes its own rows of gQ and gx)
    gh = torch.empty_like(h) if need_h else h.new_zeros(0)
    gx = torch.empty_like(x) if need_x else x.new_zeros(0)
    gQ = torch.empty_like(Q) if need_Q and Q is not None else h.new_zeros(0)
    block = h.new_empty(4 * H * H + 5 * H)
    qe = edge_stride(Q)
    native.call("egnn_edges_bwd", h.dtype, native.ptr(h), native.ptr(w["w1it"]), native.ptr(w["w1jt"]), native.ptr(W1i),
                native.ptr(W1j), native.ptr(w["b1"]), native.ptr(Q), native.ptr(gQ if gQ.numel() else None), native.i64(qe),
                native.i64(rep), native.ptr(x), native.ptr(recv), native.ptr(send), native.ptr(w["wr"]), native.ptr(w["w2t"]),
                native.ptr(W2c), native.ptr(w["b2"]), native.ptr(w["wc1t"]), native.ptr(Wc1c), native.ptr(w["bc1"]),
                native.ptr(w["wc2"]), native.ptr(gM), native.ptr(gX), native.ptr(gh if need_h else None),
                native.ptr(gx if need_x else None), native.ptr(block), native.i64(N), native.i64(R), native.i64(E),
                native.i64(H), native.i64(D), native.ACTS[act], int(unit_vectors), native.real(h.dtype, clamp),
                torch.get_num_threads())
    return gh, gx, gQ, block


@_egnn_native_backward.register_fake
def _(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send, rep, act, unit_vectors, clamp, gM, gX, need_h, need_x, need_Q):
    H = h.shape[-1]
    return (torch.empty_like(h) if need_h else h.new_empty(0), torch.empty_like(x) if need_x else x.new_empty(0),
            torch.empty_like(Q) if need_Q and Q is not None else h.new_empty(0), h.new_empty(4 * H * H + 5 * H))


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:13])
    ctx.static = inputs[13:]


def _backward(ctx, gM, gX):
    h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send = ctx.saved_tensors
    need = ctx.needs_input_grad
    gh, gx, gQ, block = _egnn_native_backward(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send, *ctx.static, gM, gX,
                                              need[0], need[3], Q is not None and need[4])
    H = h.shape[-1]
    gWr, gW2, gb2, gWc1, gbc1, gWc2, gW1i, gW1j, gb1 = block.split([H, H * H, H, H * H, H, H, H * H, H * H, H])
    coords = (gWc1.view(H, H), gbc1, gWc2.view(1, H)) if Wc1 is not None else (None, None, None)
    return (gh if need[0] else None, torch.cat([gW1i.view(H, H), gW1j.view(H, H)], 1), gb1, gx if need[3] else None,
            gQ if Q is not None and need[4] else None, gWr.view(H, 1), gW2.view(H, H), gb2, *coords,
            None, None, None, None, None, None)


_egnn_native.register_autograd(_backward, setup_context=_setup)


def native_call(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, act="silu", unit_vectors=False, clamp=None):
    """(custom op, its arguments) for a call a kernel takes (the single-channel one, or the
    multi-channel one of :func:`_multichannel`); checks the edges."""
    if x.dim() == h.dim() + 1:
        return _multichannel().native_call(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index,
                                           _cfg(h, x, Wc1, act, unit_vectors, clamp))
    recv, send = native.check_edges(edge_index, h.shape[0])
    rep = 1 if Q is None else broadcast_rows(Q, h)
    return _egnn_native, (h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, recv, send, rep, act, bool(unit_vectors),
                          -1.0 if clamp is None else float(clamp))


def egnn_edges(h: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, x: torch.Tensor, Q: torch.Tensor | None,
               Wr: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, Wc1: torch.Tensor | None, bc1: torch.Tensor | None,
               Wc2: torch.Tensor | None, edge_index: torch.Tensor, act: str = "silu", unit_vectors: bool = False,
               clamp: float | None = None, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, X)`` (module docstring) by the implementation ``backend`` picks."""
    _check(h, x, act)
    args = (h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, act, unit_vectors, clamp)
    if _backend.use_native(backend, NAME, native_refusal(*args)):
        op, a = native_call(*args)
        return op(*a)
    return reference(*args)


def cases(dtype: torch.dtype = torch.float64) -> list[tuple[tuple, dict]]:
    """Small argument sets for the parity tests: (args, kwargs) of :func:`egnn_edges` minus
    ``backend``; the tensors that require gradients are the ones every backend differentiates.
    Single-channel, hidden width 16 (what the kernel takes): with and without coordinate network,
    unit vectors, clamp, edge projections shared by all edges or per edge and broadcast over the
    last batch axis, D = 3 and D = 2, every activation the kernels know; a self-loop (d = 0, no
    unit vectors there) and a repeated edge."""
    gen = torch.Generator().manual_seed(0)
    H = 16
    edges = torch.tensor([[0, 1, 1, 2, 3, 0, 4, 2, 1], [1, 0, 2, 2, 0, 3, 4, 1, 2]])
    loopless = torch.tensor([[0, 1, 1, 3, 0, 4, 2, 1], [1, 0, 2, 0, 3, 2, 1, 2]])

    def t(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_()

    def weights(coords=True):
        w = [t(H, 2 * H, scale=0.3), t(H, scale=0.1)]
        rest = [t(H, 1, scale=0.3), t(H, H, scale=0.3), t(H, scale=0.1)]
        cw = [t(H, H, scale=0.3), t(H, scale=0.1), t(1, H, scale=0.3)] if coords else [None, None, None]
        return w, rest, cw

    out = []
    for batch, D, Qshape, act, unit, clamp, coords, ei in (
        ((3,), 3, None, "silu", False, None, True, edges),
        ((2, 3), 3, ("E", 2, 1), "silu", True, 100.0, True, loopless),
        ((2,), 2, (1, 2), "relu", False, 0.3, True, edges),
        ((2, 3), 3, ("E", 2, 1), "leaky_relu", False, None, True, edges),
        ((), 3, ("E",), "tanh", True, None, True, loopless),
        ((2, 2), 3, ("E", 1, 1), "silu", False, None, False, edges),
    ):
        (W1, b1), (Wr, W2, b2), (Wc1, bc1, Wc2) = weights(coords)
        h, x = t(5, *batch, H), t(5, *batch, D)
        Q = None if Qshape is None else t(*(ei.shape[1] if n == "E" else n for n in Qshape), H, scale=0.3)
        out.append(((h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, ei), {"act": act, "unit_vectors": unit, "clamp": clamp}))
    # the multi-channel kernel's calls (4 channels, as AdK's backbone)
    for batch, Qshape, act, clamp, coords in (((3,), ("E", 1), "silu", None, True), ((2, 2), None, "relu", 0.5, True),
                                              ((2,), (1, 2), "silu", None, False)):
        (W1, b1), (_, W2, b2), (Wc1, bc1, Wc2) = weights(coords)
        Wr = t(H, 16, scale=0.3)
        Wc2 = None if Wc2 is None else t(4, H, scale=0.3)
        h, x = t(5, *batch, H), t(5, *batch, 4, 3)
        Q = None if Qshape is None else t(*(loopless.shape[1] if n == "E" else n for n in Qshape), H, scale=0.3)
        out.append(((h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, loopless), {"act": act, "unit_vectors": False, "clamp": clamp}))
    return out
