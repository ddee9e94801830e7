"""The whole interaction layer as one native kernel (custom autograd).

For graphs ``b``, directed edges ``e = (i <- j)`` and nodes ``n``::

    S[b, i]   = sum_{e = (i <- j)} act(We1 [h[b, j], h[b, i], a[b, e]] + be1)
    x[b, n]   = [h[b, n], S[b, n], deg_n]
    out[b, n] = Wn2 act(W1 x[b, n] + bn1) + bn2

which is :class:`graphdyn.nn.message_passing.InteractionLayer` with its linear maps
re-associated (``W1 = [Wh, Wm W2, Wm b2]`` is formed by the caller, so autograd carries its
gradient back to the layer's own parameters). The C kernel (``graphdyn/native/interaction.c``)
runs a graph at a time with its nodes' rows in a thread-local scratch buffer; its backward
recomputes them instead of storing anything: a training step keeps no edge- or hidden-sized
tensor. Weight gradients are summed per thread, then in thread order (reruns are bit-identical
for a given thread count).

Shapes: ``h [B, N, F]``, ``edge_attr None | [E, K] | [B, E, K]``, ``edge_index [2, E]``,
``we1 [H, 2F + K]``, ``be1 [H]``, ``w1 [H, F + H + 1]``, ``bn1 [H]``, ``wn2 [O, H]``, ``bn2 [O]``
-> ``[B, N, O]``. Float32 or float64 CPU tensors; activation ``relu``, ``silu`` or ``tanh``.
Differentiable once. :func:`interaction_layer` returns ``None`` where the kernel cannot run
(another hidden width than :data:`WIDTHS`, activation, device or dtype, or no compiler).
"""

from __future__ import annotations

import torch

from graphdyn import native
from graphdyn.native import ACTS, check_edges, i64 as _i64

WIDTHS = (32,)  # hidden widths compiled (the notebook's); others run the PyTorch path


class _InteractionLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, edge_attr, we1, be1, w1, bn1, wn2, bn2, recv, send, act):  # noqa: D102
        B, N, Fd = h.shape
        E, H, O = recv.shape[0], we1.shape[0], wn2.shape[0]
        K = 0 if edge_attr is None else edge_attr.shape[-1]
        h = h.contiguous()
        ea = None if edge_attr is None else edge_attr.contiguous()
        ea_bstride = 0 if ea is None or ea.dim() == 2 else E * K
        we1t = we1.detach().t().contiguous()
        w1 = w1.detach().contiguous()
        w1t = w1.t().contiguous()
        be1, bn1, wn2, bn2 = (t.detach().contiguous() for t in (be1, bn1, wn2, bn2))
        out = torch.empty(B, N, O, dtype=h.dtype)
        native.call(
            "interaction_fwd", h.dtype, native.ptr(h), native.ptr(ea), _i64(ea_bstride), native.ptr(recv), native.ptr(send),
            native.ptr(we1t), native.ptr(be1), native.ptr(w1t), native.ptr(bn1), native.ptr(wn2), native.ptr(bn2),
            native.ptr(out), _i64(B), _i64(N), _i64(E), _i64(Fd), _i64(K), _i64(H), _i64(O), ACTS[act], torch.get_num_threads(),
        )
        ctx.save_for_backward(h, ea, we1t, be1, w1t, w1, bn1, wn2, recv, send)
        ctx.act, ctx.ea_bstride = act, ea_bstride
        return out

    @staticmethod
    def backward(ctx, g_out):  # noqa: D102
        h, ea, we1t, be1, w1t, w1, bn1, wn2, recv, send = ctx.saved_tensors
        B, N, Fd = h.shape
        E, (De, H), O = recv.shape[0], we1t.shape, wn2.shape[0]
        K, D = De - 2 * Fd, w1.shape[1]
        g_out = g_out.contiguous()
        gh = torch.zeros_like(h) if ctx.needs_input_grad[0] else None
        gea = torch.empty_like(ea) if ea is not None and ctx.needs_input_grad[1] else None
        sizes = [De * H, H, D * H, H, O * H, O]
        block = torch.empty(sum(sizes), dtype=h.dtype)
        native.call(
            "interaction_bwd", h.dtype, native.ptr(h), native.ptr(ea), _i64(ctx.ea_bstride), native.ptr(recv),
            native.ptr(send), native.ptr(we1t), native.ptr(be1), native.ptr(w1t), native.ptr(w1), native.ptr(bn1),
            native.ptr(wn2), native.ptr(g_out), native.ptr(gh), native.ptr(gea), native.ptr(block), _i64(B), _i64(N),
            _i64(E), _i64(Fd), _i64(K), _i64(H), _i64(O), ACTS[ctx.act], torch.get_num_threads(),
        )
        gwe1t, gbe1, gw1t, gbn1, gwn2, gbn2 = block.split(sizes)
        return (gh, gea, gwe1t.view(De, H).t(), gbe1, gw1t.view(D, H).t(), gbn1, gwn2.view(O, H), gbn2,
                None, None, None)


def interaction_layer(
    h: torch.Tensor,
    edge_index: torch.Tensor,
    edge_attr: torch.Tensor | None,
    we1: torch.Tensor,
    be1: torch.Tensor,
    w1: torch.Tensor,
    bn1: torch.Tensor,
    wn2: torch.Tensor,
    bn2: torch.Tensor,
    act: str,
) -> torch.Tensor | None:
    """The layer's output ``[B, N, O]`` (see the module doc), or ``None`` where the kernel cannot run."""
    tensors = [h, we1, be1, w1, bn1, wn2, bn2] + ([] if edge_attr is None else [edge_attr])
    if act not in ACTS or we1.shape[0] not in WIDTHS or h.dim() != 3 or not native.accepts("interaction_fwd", tensors):
        return None
    B, N, Fd = h.shape
    H, O = we1.shape[0], wn2.shape[0]
    K = 0 if edge_attr is None else edge_attr.shape[-1]
    expected = {"we1": (H, 2 * Fd + K), "be1": (H,), "w1": (H, Fd + H + 1), "bn1": (H,), "wn2": (O, H), "bn2": (O,)}
    for name, t in zip(expected, (we1, be1, w1, bn1, wn2, bn2)):
        if tuple(t.shape) != expected[name]:
            raise ValueError(f"interaction_layer: {name} has shape {tuple(t.shape)}, expected {expected[name]}")
    recv, send = check_edges(edge_index, N, edge_attr, B, K)
    return _InteractionLayer.apply(h, edge_attr, we1, be1, w1, bn1, wn2, bn2, recv, send, act)
