"""The whole interaction layer as one native kernel (custom autograd).

For graphs ``b``, directed edges ``e = (i <- j)`` and nodes ``n``::

    S[b, i]   = sum_{e = (i <- j)} act(We1 [h[b, j], h[b, i], a[b, e]] + be1)
    x[b, n]   = [h[b, n], S[b, n], deg_n]
    out[b, n] = Wn2 act(W1 x[b, n] + bn1) + bn2,    W1 = [Wn1[:, :F], Wn1[:, F:] W2, Wn1[:, F:] b2]

which is :class:`graphdyn.nn.message_passing.InteractionLayer` (edge MLP ``We1, be1, W2, b2``,
node MLP ``Wn1, bn1, Wn2, bn2``) with its linear maps re-associated. The C kernel
(``graphdyn/native/interaction.c``) takes the layer's own parameters, composes ``W1`` itself and
returns the gradients of those parameters: on small graphs the six PyTorch ops (and autograd
nodes) of the composition cost more than the kernel. It runs a graph at a time. A forward pass
that will be differentiated keeps the node MLP's input rows ``x [B, N, F + H + 1]`` and
pre-activations ``z [B, N, H]`` (up to :data:`KEEP_LIMIT` reals; beyond it, and under
``no_grad``, nothing is kept and the backward recomputes them). No edge-sized tensor is ever
kept: the backward recomputes each edge's pre-activation. Weight gradients are summed per thread,
then in thread order (reruns are bit-identical for a given thread count).

Shapes: ``h [B, N, F]``, ``edge_attr None | [E, K] | [B, E, K]``, ``edge_index [2, E]``,
``we1 [H, 2F + K]``, ``be1 [H]``, ``w2 [H, H]``, ``b2 [H]``, ``wn1 [H, F + H]``, ``bn1 [H]``,
``wn2 [O, H]``, ``bn2 [O]`` -> ``[B, N, O]``. Float32 or float64 CPU tensors; activation
``relu``, ``silu`` or ``tanh``. Differentiable once. :func:`interaction_layer` returns ``None``
where the kernel cannot run (another hidden width than :data:`WIDTHS`, activation, device or
dtype, or no compiler).
"""

from __future__ import annotations

import ctypes

import torch

from graphdyn import native
from graphdyn.native import ACTS, check_edges, i64 as _i64

WIDTHS = (32,)  # hidden widths compiled (the notebook's); others run the PyTorch path
# Most reals of node-MLP activations (x and z, ``B N (F + 2H + 1)``) a forward pass keeps for its
# backward (64 MiB in float32); above it the backward recomputes them from h.
KEEP_LIMIT = 1 << 24
PARAMS = ("we1", "be1", "w2", "b2", "wn1", "bn1", "wn2", "bn2")


class _InteractionLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, edge_attr, we1, be1, w2, b2, wn1, bn1, wn2, bn2, recv, send, act, grad):  # noqa: D102
        B, N, Fd = h.shape
        E, H, O = recv.shape[0], we1.shape[0], wn2.shape[0]
        K = 0 if edge_attr is None else edge_attr.shape[-1]
        De, D = 2 * Fd + K, Fd + H + 1
        h = h.contiguous()
        ea = None if edge_attr is None else edge_attr.contiguous()
        ea_bstride = 0 if ea is None or ea.dim() == 2 else E * K
        params = [t.contiguous() for t in (we1, be1, w2, b2, wn1, bn1, wn2, bn2)]
        wk = torch.empty(De * H + 2 * H * D, dtype=h.dtype)  # the composed weights, for the backward too
        out = torch.empty(B, N, O, dtype=h.dtype)
        # the node MLP's input rows x and pre-activations z, kept for the backward pass when one
        # can run (grad: autograd was on at the call; inside forward it is always off) and they
        # fit in KEEP_LIMIT reals; otherwise the backward recomputes them
        keep = grad and any(ctx.needs_input_grad) and B * N * (D + H) <= KEEP_LIMIT
        xs = torch.empty(B, N, D, dtype=h.dtype) if keep else None
        zs = torch.empty(B, N, H, dtype=h.dtype) if keep else None
        native.call(
            "interaction_fwd", h.dtype, native.ptr(h), native.ptr(ea), _i64(ea_bstride), native.ptr(recv), native.ptr(send),
            *map(native.ptr, params), native.ptr(wk), native.ptr(out), native.ptr(xs), native.ptr(zs),
            _i64(B), _i64(N), _i64(E), _i64(Fd), _i64(K), _i64(H), _i64(O), ACTS[act], torch.get_num_threads(),
        )
        ctx.save_for_backward(h, ea, *params, wk, recv, send, xs, zs)
        ctx.act, ctx.ea_bstride = act, ea_bstride
        return out

    @staticmethod
    def backward(ctx, g_out):  # noqa: D102
        h, ea, we1, be1, w2, b2, wn1, bn1, wn2, bn2, wk, recv, send, xs, zs = ctx.saved_tensors
        B, N, Fd = h.shape
        E, (H, De), O = recv.shape[0], we1.shape, wn2.shape[0]
        K = De - 2 * Fd
        g_out = g_out.contiguous()
        gh = torch.zeros_like(h) if ctx.needs_input_grad[0] else None
        gea = torch.empty_like(ea) if ea is not None and ctx.needs_input_grad[1] else None
        params = (we1, be1, w2, b2, wn1, bn1, wn2, bn2)
        g_params = [torch.empty_like(p) for p in params]
        g_ptrs = (ctypes.c_void_p * len(g_params))(*(g.data_ptr() for g in g_params))
        native.call(
            "interaction_bwd", h.dtype, native.ptr(h), native.ptr(ea), _i64(ctx.ea_bstride), native.ptr(recv),
            native.ptr(send), *map(native.ptr, params[1:7]), native.ptr(wk), native.ptr(xs), native.ptr(zs),
            native.ptr(g_out), native.ptr(gh), native.ptr(gea), g_ptrs, _i64(B), _i64(N), _i64(E), _i64(Fd),
            _i64(K), _i64(H), _i64(O), ACTS[ctx.act], torch.get_num_threads(),
        )
        return (gh, gea, *g_params, None, None, None, None)


def interaction_layer(
    h: torch.Tensor,
    edge_index: torch.Tensor,
    edge_attr: torch.Tensor | None,
    we1: torch.Tensor,
    be1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
    wn1: torch.Tensor,
    bn1: torch.Tensor,
    wn2: torch.Tensor,
    bn2: torch.Tensor,
    act: str,
) -> torch.Tensor | None:
    """The layer's output ``[B, N, O]`` (see the module doc), or ``None`` where the kernel cannot run."""
    params = (we1, be1, w2, b2, wn1, bn1, wn2, bn2)
    tensors = [h, *params] + ([] if edge_attr is None else [edge_attr])
    if act not in ACTS or we1.shape[0] not in WIDTHS or h.dim() != 3 or not native.accepts("interaction_fwd", tensors):
        return None
    B, N, Fd = h.shape
    H, O = we1.shape[0], wn2.shape[0]
    K = 0 if edge_attr is None else edge_attr.shape[-1]
    expected = ((H, 2 * Fd + K), (H,), (H, H), (H,), (H, Fd + H), (H,), (O, H), (O,))
    for name, t, shape in zip(PARAMS, params, expected):
        if t.shape != shape:
            raise ValueError(f"interaction_layer: {name} has shape {tuple(t.shape)}, expected {shape}")
    recv, send = check_edges(edge_index, N, edge_attr, B, K)
    return _InteractionLayer.apply(h, edge_attr, *params, recv, send, act, torch.is_grad_enabled())
