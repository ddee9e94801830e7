"""The notebook's interaction layer (edge MLP, sum aggregation, node MLP), one op: reference and native kernel.

For every graph ``b`` of the batch and every directed edge ``(i <- j)``::

    m_ij  = W2 act(We1 [h_j, h_i, e_ij] + be1) + b2      edge MLP on [sender, receiver(, edge attributes)]
    M_i   = sum_{j in N(i)} m_ij                           sum aggregation
    out_i = Wn2 act(Wn1 [h_i, M_i] + bn1) + bn2            node MLP

The edge MLP's last layer is affine, so it commutes with the sum: ``M_i = W2 S_i + deg_i b2`` with
``S_i = sum_j act(We1 [h_j, h_i, e_ij] + be1)`` and ``deg_i`` the number of edges into ``i``. Both
implementations aggregate the hidden activations first and apply ``W2`` once per node instead of
once per edge: the same function, with the widest matrix product moved from ``E`` rows to ``N``
rows. And the node MLP's first layer is linear in ``M_i`` too: with ``Wn1 = [Wh, Wm]``,
``Wn1 [h_i, M_i] = Wh h_i + (Wm W2) S_i + deg_i Wm b2``. The ``hidden x hidden`` product ``Wm W2``
is formed once per call, which removes one of the two ``[N, hidden] x [hidden, hidden]`` products
per graph (forward and backward); with the node MLP's input laid out as ``x_i = [h_i, S_i, deg_i]``
its first layer is one matrix product with the weight ``W1 = [Wh, Wm W2, Wm b2]``. Both are the
same function and the same parameters as the notebook's layer, re-associated; gradients flow to
the layer's own parameters.

Shapes: ``h [B, N, F]``, ``edge_index [2, E]`` (row 0 receiver i, row 1 sender j), ``edge_attr``
None, ``[E, K]`` (shared by the batch) or ``[B, E, K]``; edge MLP ``we1 [H, 2F + K]``, ``be1 [H]``,
``w2 [H, H]``, ``b2 [H]``; node MLP ``wn1 [H, F + H]``, ``bn1 [H]``, ``wn2 [O, H]``, ``bn2 [O]``
-> ``out [B, N, O]``. ``act`` names the activation of both MLPs (:data:`graphdyn.nn.mlp.ACTIVATIONS`).

Implementations (chosen by :mod:`graphdyn.ops.backend`):

* :func:`reference`: the re-associated math above in plain autograd; any device, dtype, width and
  activation, and higher derivatives.
* ``graphdyn::interaction``: the C kernel ``native/interaction.c`` (edge part in ``edge_sum.c``):
  the whole layer a graph at a time, with no edge- or hidden-sized tensor kept; it takes the
  layer's own parameters and composes ``W1`` itself (on small graphs the six PyTorch ops of the
  composition cost more than the kernel). A forward pass that will be differentiated also returns
  the node MLP's input rows ``x [B, N, F + H + 1]`` and pre-activations ``z [B, N, H]`` for the
  backward pass (up to :data:`KEEP_LIMIT` reals; beyond it, and under ``no_grad``, nothing is kept
  and the backward recomputes them); no edge-sized tensor is ever kept. Backward
  ``graphdyn::interaction_backward`` (C) gives the gradients of ``h``, ``edge_attr`` and the eight
  parameters; weight gradients are summed per thread, then in thread order (reruns are
  bit-identical for a given thread count). CPU, float32/float64, hidden width :data:`WIDTH`,
  activations ``relu``, ``silu``, ``tanh``; differentiable once.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Optional

import torch
from torch.nn import functional as F

from graphdyn import native
from graphdyn.nn.mlp import activation
from graphdyn.nn.scatter import in_degree, scatter_sum
from graphdyn.ops import backend as _backend

NAME = "interaction"
WIDTH = native.LIMITS["LIN_MAXH"]  # the one hidden width interaction.c is compiled for (the notebook's 32)
# Most reals of node-MLP activations (x and z, ``B N (F + 2H + 1)``) a forward pass keeps for its
# backward (64 MiB in float32); above it the backward recomputes them from h.
KEEP_LIMIT = 1 << 24
PARAMS = ("we1", "be1", "w2", "b2", "wn1", "bn1", "wn2", "bn2")

_act = functools.lru_cache(maxsize=None)(activation)  # stateless modules, one per name


def reference(h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None, we1: torch.Tensor,
              be1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, wn1: torch.Tensor, bn1: torch.Tensor,
              wn2: torch.Tensor, bn2: torch.Tensor, act: str) -> torch.Tensor:
    """The math of the module docstring in plain autograd, re-associated as described there."""
    f = _act(act)
    i, j = edge_index[0], edge_index[1]
    B, N, Fd = h.shape
    parts = [h.index_select(1, j), h.index_select(1, i)]  # index_select: a much cheaper backward than h[:, j]
    if edge_attr is not None:  # [E, K] shared by the batch, or [B, E, K]
        parts.append(edge_attr if edge_attr.dim() == 3 else edge_attr.expand(B, *edge_attr.shape))
    S = scatter_sum(f(F.linear(torch.cat(parts, dim=-1), we1, be1)), i, N, dim=1)  # [B, N, H]
    # the node MLP's first layer on x_i = [h_i, S_i, deg_i]: W1 = [Wh, Wm W2, Wm b2]
    w_h, w_m = wn1[:, :Fd], wn1[:, Fd:]
    w1 = torch.cat([w_h, w_m @ w2, (w_m @ b2)[:, None]], dim=1)
    deg = in_degree(i, N).to(h.dtype)[:, None].expand(B, N, 1)
    x = torch.cat([h, S, deg], dim=-1)
    return F.linear(f(F.linear(x, w1, bn1)), wn2, bn2)


def native_refusal(h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None, we1: torch.Tensor,
                   be1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, wn1: torch.Tensor, bn1: torch.Tensor,
                   wn2: torch.Tensor, bn2: torch.Tensor, act: str) -> str | None:
    """Why the native kernel cannot take this call (None: it can)."""
    if act not in native.ACTS:
        return f"activation {act!r} (the kernel knows {', '.join(native.ACTS)})"
    if we1.dim() != 2 or we1.shape[0] != WIDTH:
        return f"hidden width {we1.shape[0] if we1.dim() else '?'} (the kernel is compiled for {WIDTH})"
    if h.dim() != 3:
        return f"h of {h.dim()} dimensions (the kernel takes [B, N, F])"
    return native.refusal([h, edge_attr, we1, be1, w2, b2, wn1, bn1, wn2, bn2])


def _sizes(h, edge_attr, we1, wn2):
    B, N, Fd = h.shape
    H, O = we1.shape[0], wn2.shape[0]
    K = 0 if edge_attr is None else edge_attr.shape[-1]
    return B, N, Fd, K, H, O, Fd + H + 1  # D: the node MLP's input width [h, S, deg]


@torch.library.custom_op("graphdyn::interaction", mutates_args=())
def _interaction_native(h: torch.Tensor, edge_attr: Optional[torch.Tensor], we1: torch.Tensor, be1: torch.Tensor,
                        w2: torch.Tensor, b2: torch.Tensor, wn1: torch.Tensor, bn1: torch.Tensor, wn2: torch.Tensor,
                        bn2: torch.Tensor, recv: torch.Tensor, send: torch.Tensor, act: str,
                        keep: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(out [B, N, O], the composed weights wk, and x [B, N, D], z [B, N, H] where ``keep``, else empty)."""
    B, N, Fd, K, H, O, D = _sizes(h, edge_attr, we1, wn2)
    E = recv.shape[0]
    h = h.contiguous()
    ea = None if edge_attr is None else edge_attr.contiguous()
    ea_bstride = 0 if ea is None or ea.dim() == 2 else E * K
    params = [t.contiguous() for t in (we1, be1, w2, b2, wn1, bn1, wn2, bn2)]
    wk = h.new_empty((2 * Fd + K) * H + 2 * H * D)  # the composed weights, for the backward too
    out = h.new_empty(B, N, O)
    xs, zs = (h.new_empty(B, N, D), h.new_empty(B, N, H)) if keep else (h.new_empty(0), h.new_empty(0))
    native.call(
        "interaction_fwd", h.dtype, native.ptr(h), native.ptr(ea), native.i64(ea_bstride), native.ptr(recv),
        native.ptr(send), *map(native.ptr, params), native.ptr(wk), native.ptr(out),
        native.ptr(xs if keep else None), native.ptr(zs if keep else None), native.i64(B), native.i64(N),
        native.i64(E), native.i64(Fd), native.i64(K), native.i64(H), native.i64(O), native.ACTS[act],
        torch.get_num_threads(),
    )
    return out, wk, xs, zs


@_interaction_native.register_fake
def _(h, edge_attr, we1, be1, w2, b2, wn1, bn1, wn2, bn2, recv, send, act, keep):
    B, N, Fd, K, H, O, D = _sizes(h, edge_attr, we1, wn2)
    xs, zs = (h.new_empty(B, N, D), h.new_empty(B, N, H)) if keep else (h.new_empty(0), h.new_empty(0))
    return h.new_empty(B, N, O), h.new_empty((2 * Fd + K) * H + 2 * H * D), xs, zs


@torch.library.custom_op("graphdyn::interaction_backward", mutates_args=())
def _interaction_native_backward(
    h: torch.Tensor, edge_attr: Optional[torch.Tensor], we1: torch.Tensor, be1: torch.Tensor, w2: torch.Tensor,
    b2: torch.Tensor, wn1: torch.Tensor, bn1: torch.Tensor, wn2: torch.Tensor, bn2: torch.Tensor, recv: torch.Tensor,
    send: torch.Tensor, wk: torch.Tensor, xs: torch.Tensor, zs: torch.Tensor, g_out: torch.Tensor, act: str,
    need_h: bool, need_edge_attr: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
           torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (h, edge_attr, we1, be1, w2, b2, wn1, bn1, wn2, bn2); those of h and edge_attr empty
    where not needed. ``xs``, ``zs``: the forward pass's kept rows, or empty (recomputed)."""
    B, N, Fd, K, H, O, D = _sizes(h, edge_attr, we1, wn2)
    E = recv.shape[0]
    ea = None if edge_attr is None else edge_attr.contiguous()
    ea_bstride = 0 if ea is None or ea.dim() == 2 else E * K
    need_edge_attr = need_edge_attr and ea is not None
    h, g_out = h.contiguous(), g_out.contiguous()
    params = [t.contiguous() for t in (we1, be1, w2, b2, wn1, bn1, wn2, bn2)]
    kept = xs.numel() > 0
    gh = torch.zeros_like(h) if need_h else h.new_empty(0)
    gea = torch.empty_like(ea) if need_edge_attr else h.new_empty(0)
    g_params = [torch.empty_like(p) for p in params]
    g_ptrs = (ctypes.c_void_p * len(g_params))(*(g.data_ptr() for g in g_params))
    native.call(
        "interaction_bwd", h.dtype, native.ptr(h), native.ptr(ea), native.i64(ea_bstride), native.ptr(recv),
        native.ptr(send), *map(native.ptr, params[1:7]), native.ptr(wk.contiguous()),
        native.ptr(xs.contiguous() if kept else None), native.ptr(zs.contiguous() if kept else None),
        native.ptr(g_out), native.ptr(gh if need_h else None), native.ptr(gea if need_edge_attr else None), g_ptrs,
        native.i64(B), native.i64(N), native.i64(E), native.i64(Fd), native.i64(K), native.i64(H), native.i64(O),
        native.ACTS[act], torch.get_num_threads(),
    )
    return (gh, gea, *g_params)


@_interaction_native_backward.register_fake
def _(h, edge_attr, we1, be1, w2, b2, wn1, bn1, wn2, bn2, recv, send, wk, xs, zs, g_out, act, need_h, need_edge_attr):
    gh = torch.empty_like(h) if need_h else h.new_empty(0)
    gea = torch.empty_like(edge_attr) if need_edge_attr and edge_attr is not None else h.new_empty(0)
    return (gh, gea, *(torch.empty_like(p) for p in (we1, be1, w2, b2, wn1, bn1, wn2, bn2)))


def _setup(ctx, inputs, output):
    h, edge_attr, we1, be1, w2, b2, wn1, bn1, wn2, bn2, recv, send, act, keep = inputs
    _, wk, xs, zs = output
    ctx.mark_non_differentiable(wk, xs, zs)
    ctx.set_materialize_grads(False)  # no zero-filled gradients for the three outputs above
    ctx.save_for_backward(h, edge_attr, we1, be1, w2, b2, wn1, bn1, wn2, bn2, recv, send, wk, xs, zs)
    ctx.act = act


def _backward(ctx, g_out, *_):
    h, edge_attr, *params, recv, send, wk, xs, zs = ctx.saved_tensors
    need = ctx.needs_input_grad
    if g_out is None:  # out was not used (grads are not materialised)
        g_out = torch.zeros(h.shape[0], h.shape[1], params[6].shape[0], dtype=h.dtype)
    gh, gea, *g_params = _interaction_native_backward(h, edge_attr, *params, recv, send, wk, xs, zs, g_out, ctx.act,
                                                      need[0], edge_attr is not None and need[1])
    return (gh if need[0] else None, gea if edge_attr is not None and need[1] else None,
            *(g if n else None for g, n in zip(g_params, need[2:10])), None, None, None, None)


_interaction_native.register_autograd(_backward, setup_context=_setup)


def native_call(h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None, we1: torch.Tensor,
                be1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, wn1: torch.Tensor, bn1: torch.Tensor,
                wn2: torch.Tensor, bn2: torch.Tensor, act: str):
    """(custom op, its arguments) for a call the kernel takes; checks the parameter shapes (ValueError
    naming the parameter) and the edges. The op returns ``(out, wk, x, z)``: ``out`` is the layer's."""
    params = (we1, be1, w2, b2, wn1, bn1, wn2, bn2)
    B, N, Fd, K, H, O, D = _sizes(h, edge_attr, we1, wn2)
    expected = ((H, 2 * Fd + K), (H,), (H, H), (H,), (H, Fd + H), (H,), (O, H), (O,))
    for name, t, shape in zip(PARAMS, params, expected):
        if t.shape != shape:
            raise ValueError(f"interaction: {name} has shape {tuple(t.shape)}, expected {shape}")
    recv, send = native.check_edges(edge_index, N, edge_attr, B, K)
    tensors = (h, edge_attr, *params)
    keep = (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
            and B * N * (D + H) <= KEEP_LIMIT)
    return _interaction_native, (h, edge_attr, *params, recv, send, act, keep)


def interaction(h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None, we1: torch.Tensor,
                be1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, wn1: torch.Tensor, bn1: torch.Tensor,
                wn2: torch.Tensor, bn2: torch.Tensor, act: str, backend: str = "auto") -> torch.Tensor:
    """``out [B, N, O]`` (module docstring) by the implementation ``backend`` picks."""
    args = (h, edge_index, edge_attr, we1, be1, w2, b2, wn1, bn1, wn2, bn2, act)
    if _backend.use_native(backend, NAME, native_refusal(*args)):
        op, op_args = native_call(*args)
        return op(*op_args)[0]
    return reference(*args)


def cases(dtype: torch.dtype = torch.float64) -> list[tuple[tuple, dict]]:
    """Small argument sets for the parity tests: (args, kwargs) of :func:`interaction` minus
    ``backend``; the tensors that require gradients are the ones every backend differentiates.
    Hidden width :data:`WIDTH` (the native kernel must take every case)."""
    gen = torch.Generator().manual_seed(0)
    # receivers row 0, senders row 1: a self-loop (2 <- 2), a repeated edge (1 <- 0), node 3 receives nothing
    edges = torch.tensor([[0, 1, 1, 2, 4, 1, 0], [1, 0, 2, 2, 3, 0, 4]])
    H, B, N, Fd, O = WIDTH, 2, 5, 3, 2

    def t(*shape, grad=True, scale=1.0):
        x = scale * torch.randn(*shape, generator=gen, dtype=torch.float64)
        return x.to(dtype).requires_grad_(grad)

    def params(K):
        return (t(H, 2 * Fd + K, scale=0.5), t(H, scale=0.5), t(H, H, scale=0.2), t(H, scale=0.2),
                t(H, Fd + H, scale=0.2), t(H, scale=0.2), t(O, H, scale=0.2), t(O, scale=0.2))

    E, K = edges.shape[1], 2
    return [
        ((t(B, N, Fd), edges, None, *params(0), "relu"), {}),
        ((t(B, N, Fd), edges, t(E, K), *params(K), "silu"), {}),  # edge attributes shared by the batch
        ((t(B, N, Fd), edges, t(B, E, K), *params(K), "tanh"), {}),  # per-graph edge attributes
        ((t(B, N, Fd, grad=False), edges, t(E, K, grad=False), *params(K), "silu"), {}),  # weights only
        ((t(1, N, Fd), torch.zeros(2, 0, dtype=torch.int64), None, *params(0), "tanh"), {}),  # no edges
    ]
