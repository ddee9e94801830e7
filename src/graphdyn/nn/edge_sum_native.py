"""Fused edge-MLP first layer, activation and sum aggregation (native kernel, custom autograd).

For graphs ``b``, directed edges ``e = (i <- j)`` (row 0 receiver ``i``, row 1 sender ``j``)::

    S[b, i] = sum_{e = (i <- j)} act(W [h[b, j], h[b, i], a[b, e]] + bias)

This is the part of :class:`graphdyn.nn.message_passing.InteractionLayer` that works on edge-sized
tensors: in PyTorch it gathers ``[B, E, 2F + K]`` inputs, writes the ``[B, E, H]`` pre-activation
and activation, and scatters them; its backward does the same again. The C kernel
(``graphdyn/native/edge_sum.c``) runs edge by edge with every intermediate in registers, and its
backward recomputes the pre-activation instead of storing it, so a training step keeps no
edge-sized tensor at all.

With ``node_features`` the result is the node MLP's input ``[h[b, i], S[b, i], deg_i]``
(``[B, N, F + H + 1]``, ``deg_i`` the number of edges into ``i``), written by the kernel in place
of a concatenation.

Shapes: ``h [B, N, F]``, ``edge_attr None | [E, K] | [B, E, K]``, ``weight [H, 2F + K]``,
``bias [H]``, ``edge_index [2, E]`` -> ``S [B, N, H]`` (or ``[B, N, F + H + 1]``). Float32 or float64 CPU tensors; the
activation is ``relu``, ``silu`` or ``tanh``. Differentiable once (no double backward).

:func:`edge_act_sum` returns ``None`` where the kernel cannot run (no compiler, another device
or dtype, an unsupported activation); callers then use their PyTorch code.
"""

from __future__ import annotations

import ctypes

import torch

from graphdyn import native

ACTS = {"relu": 0, "silu": 1, "tanh": 2}


_i64 = ctypes.c_int64


class _EdgeActSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, edge_attr, weight, bias, recv, send, act, node_features):  # noqa: D102
        B, N, Fd = h.shape
        E = recv.shape[0]
        H = weight.shape[0]
        K = 0 if edge_attr is None else edge_attr.shape[-1]
        h = h.contiguous()
        ea = None if edge_attr is None else edge_attr.contiguous()
        ea_bstride = 0 if ea is None or ea.dim() == 2 else E * K
        wt = weight.detach().t().contiguous()
        bias = bias.detach().contiguous()
        out = torch.empty(B, N, Fd + H + 1 if node_features else H, dtype=h.dtype)  # the kernel writes all of it
        native.call("edge_sum_fwd", h.dtype,
            native.ptr(h), native.ptr(ea), _i64(ea_bstride), native.ptr(recv), native.ptr(send), native.ptr(wt),
            native.ptr(bias), native.ptr(out), _i64(B), _i64(N), _i64(E), _i64(Fd), _i64(K), _i64(H), int(node_features),
            ACTS[act], torch.get_num_threads(),
        )
        ctx.save_for_backward(h, ea, wt, bias, recv, send)
        ctx.act = act
        ctx.ea_bstride = ea_bstride
        ctx.node_features = node_features
        return out

    @staticmethod
    def backward(ctx, g_out):  # noqa: D102
        h, ea, wt, bias, recv, send = ctx.saved_tensors
        B, N, Fd = h.shape
        E = recv.shape[0]
        D, H = wt.shape
        K = D - 2 * Fd
        g_out = g_out.contiguous()
        gh = None
        if ctx.needs_input_grad[0]:  # the kernel adds the edge terms to the copied columns' gradient
            gh = g_out[..., :Fd].contiguous() if ctx.node_features else torch.zeros_like(h)
        gea = torch.empty_like(ea) if ea is not None and ctx.needs_input_grad[1] else None
        gwt = torch.empty_like(wt)
        gb = torch.empty_like(bias)
        native.call("edge_sum_bwd", h.dtype,
            native.ptr(h), native.ptr(ea), _i64(ctx.ea_bstride), native.ptr(recv), native.ptr(send), native.ptr(wt),
            native.ptr(bias), native.ptr(g_out), native.ptr(gh), native.ptr(gea), native.ptr(gwt), native.ptr(gb),
            _i64(B), _i64(N), _i64(E), _i64(Fd), _i64(K), _i64(H), int(ctx.node_features), ACTS[ctx.act],
            torch.get_num_threads(),
        )
        return gh, gea, gwt.t(), gb, None, None, None, None


def edge_act_sum(
    h: torch.Tensor,
    edge_index: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    act: str,
    edge_attr: torch.Tensor | None = None,
    *,
    node_features: bool = False,
) -> torch.Tensor | None:
    """``S [B, N, H]`` or ``[h, S, deg] [B, N, F + H + 1]`` (see the module doc), or ``None`` where
    the native kernel cannot run."""
    dtype = h.dtype
    tensors = [h, weight, bias] + ([] if edge_attr is None else [edge_attr])
    if (
        act not in ACTS
        or h.dim() != 3
        or any(t.device.type != "cpu" or t.dtype != dtype for t in tensors)
        or native.kernel("edge_sum_fwd", dtype) is None
    ):
        return None
    B, N, Fd = h.shape
    E = edge_index.shape[1]
    K = 0 if edge_attr is None else edge_attr.shape[-1]
    if weight.shape != (weight.shape[0], 2 * Fd + K) or bias.shape != (weight.shape[0],):
        raise ValueError(f"edge_act_sum: weight {tuple(weight.shape)} / bias {tuple(bias.shape)} do not fit {2 * Fd + K} inputs")
    if edge_attr is not None and edge_attr.shape not in ((E, K), (B, E, K)):
        raise ValueError(f"edge_act_sum: edge_attr {tuple(edge_attr.shape)} is neither [E, K] nor [B, E, K] with E = {E}")
    ei = edge_index.to(torch.int64)
    if E and (int(ei.min()) < 0 or int(ei.max()) >= N):
        raise IndexError(f"edge_index holds node numbers outside [0, {N})")
    recv, send = ei[0].contiguous(), ei[1].contiguous()
    return _EdgeActSum.apply(h, edge_attr, weight, bias, recv, send, act, node_features)
