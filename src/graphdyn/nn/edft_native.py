"""EDFT's per-edge cross-spectrum features as a native kernel (custom autograd).

Computes exactly the edge features of :class:`graphdyn.nn.edft.EDFT`::

    A_ij(k) = w_i(k) w_j(k) |sum_d conj(f_i,d(k)) f_j,d(k)|,   then   A_ij(k) / (sum_k' A_ij(k') + eps)

with the C kernel ``graphdyn/native/edft.c``, one edge row at a time, never forming the
four ``[E, ..., K, D]`` gathered spectra of the PyTorch version. Gradients flow to the gates
``w`` only: the spectra come from the observed coordinates, which are data.
:func:`edft_edges_native` returns ``None`` where the kernel does not apply (spectra that
require gradients, another device or dtype, no compiler); the caller then runs PyTorch.

Shapes (node-major): ``fr, fi [N, ..., K, D]``, ``w [N, ..., K]`` or ``None`` (no gate),
``edge_index [2, E]`` -> ``A [E, ..., K]``.
"""

from __future__ import annotations

import ctypes

import torch

from graphdyn import native
from graphdyn.native import check_edges, i64 as _i64

MAX_K = 256  # EDFT_MAXK in edft.c


def _real(t: torch.Tensor, v: float):
    return (ctypes.c_float if t.dtype == torch.float32 else ctypes.c_double)(v)


class _EDFTEdgesNative(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fr, fi, w, recv, send, eps):  # noqa: D102
        N, K, D = fr.shape[0], fr.shape[-2], fr.shape[-1]
        R = fr[0].numel() // (K * D)
        E = recv.shape[0]
        wc = None if w is None else w.detach().contiguous()
        A = fr.new_empty((E,) + tuple(fr.shape[1:-1]))
        native.call(
            "edft_edges_fwd", fr.dtype, native.ptr(fr), native.ptr(fi), native.ptr(wc), native.ptr(recv), native.ptr(send),
            native.ptr(A), _i64(N), _i64(R), _i64(E), _i64(K), _i64(D), _real(fr, eps), torch.get_num_threads(),
        )
        ctx.save_for_backward(fr, fi, wc, recv, send, A)
        ctx.eps = eps
        return A

    @staticmethod
    def backward(ctx, gA):  # noqa: D102
        fr, fi, w, recv, send, A = ctx.saved_tensors
        if w is None or not ctx.needs_input_grad[2]:
            return None, None, None, None, None, None
        N, K, D = fr.shape[0], fr.shape[-2], fr.shape[-1]
        R = fr[0].numel() // (K * D)
        gw = torch.zeros_like(w)
        native.call(
            "edft_edges_bwd", fr.dtype, native.ptr(fr), native.ptr(fi), native.ptr(w), native.ptr(recv), native.ptr(send),
            native.ptr(A), native.ptr(gA.contiguous()), native.ptr(gw), _i64(N), _i64(R), _i64(recv.shape[0]), _i64(K),
            _i64(D), _real(fr, ctx.eps), torch.get_num_threads(),
        )
        return None, None, gw, None, None, None


def edft_edges_native(fr, fi, w, edge_index, eps: float) -> torch.Tensor | None:
    """The normalised, gated edge features ``A [E, ..., K]``, or ``None`` where the kernel does not apply."""
    tensors = [fr, fi] + ([] if w is None else [w])
    if (
        fr.requires_grad
        or fi.requires_grad
        or fr.shape[-2] > MAX_K
        or (w is not None and w.shape != fr.shape[:-1])
        or not native.accepts("edft_edges_fwd", tensors)
    ):
        return None
    recv, send = check_edges(edge_index, fr.shape[0])
    return _EDFTEdgesNative.apply(fr.contiguous(), fi.contiguous(), w, recv, send, float(eps))
