"""EDFT's per-edge cross-spectrum features (ESTAG), one op: reference and native kernel.

For every directed edge (i <- j), batch row and frequency k::

    A_ij(k) = w_i(k) w_j(k) |sum_d conj(f_i,d(k)) f_j,d(k)|          (w = 1 without a gate)
    A_ij(k) <- A_ij(k) / (sum_k' A_ij(k') + eps)                       (L1 over k)

with the spectra split into real and imaginary parts, ``f = fr + i fi``. Gradients flow to the
gates ``w``; the spectra come from observed coordinates (data), and the native kernel does
not differentiate them (it refuses spectra that require gradients).

Shapes (node-major, ``...`` batch axes): ``fr, fi [N, ..., K, D]``, ``w [N, ..., K]`` or None,
``edge_index [2, E]`` (row 0 receiver i, row 1 sender j) -> ``A [E, ..., K]``.

Implementations (chosen by :mod:`graphdyn.ops.backend`):

* :func:`reference`: plain autograd, any device and dtype.
* ``graphdyn::edft_edges``: the C kernel ``native/edft.c``, one edge row at a time without the
  four gathered ``[E, ..., K, D]`` spectra; backward ``graphdyn::edft_edges_backward`` (C) gives
  the gate gradient. CPU, float32/float64, ``K <= MAX_K``.
"""

from __future__ import annotations

from typing import Optional

import torch

from graphdyn import native
from graphdyn.ops import backend as _backend

NAME = "edft_edges"
MAX_K = native.LIMITS["EDFT_MAXK"]


def reference(fr: torch.Tensor, fi: torch.Tensor, w: torch.Tensor | None, edge_index: torch.Tensor, eps: float) -> torch.Tensor:
    """The math of the module docstring in plain autograd."""
    i, j = edge_index[0], edge_index[1]
    ar, ai = fr.index_select(0, i), fi.index_select(0, i)
    br, bi = fr.index_select(0, j), fi.index_select(0, j)
    # <a, b> = sum_d conj(a_d) b_d, in real arithmetic (no complex autograd needed)
    re = (ar * br + ai * bi).sum(-1)
    im = (ar * bi - ai * br).sum(-1)
    A = torch.sqrt(re * re + im * im)  # [E, ..., K]
    if w is not None:
        A = A * (w.index_select(0, i) * w.index_select(0, j))
    return A / (A.sum(-1, keepdim=True) + eps)


def native_refusal(fr: torch.Tensor, fi: torch.Tensor, w: torch.Tensor | None, edge_index: torch.Tensor, eps: float) -> str | None:
    """Why the native kernel cannot take this call (None: it can)."""
    tensors = [fr, fi] + ([] if w is None else [w])
    if fr.requires_grad or fi.requires_grad:
        return "the spectra require gradients (the kernel differentiates the gates only)"
    if fr.shape[-2] > MAX_K:
        return f"{fr.shape[-2]} frequencies (the kernel takes up to {MAX_K})"
    if w is not None and w.shape != fr.shape[:-1]:
        return f"gates {tuple(w.shape)} are not [N, ..., K] = {tuple(fr.shape[:-1])}"
    return native.refusal(tensors)


@torch.library.custom_op("graphdyn::edft_edges", mutates_args=())
def _edft_native(fr: torch.Tensor, fi: torch.Tensor, w: Optional[torch.Tensor], recv: torch.Tensor, send: torch.Tensor,
                 eps: float) -> torch.Tensor:
    N, K, D = fr.shape[0], fr.shape[-2], fr.shape[-1]
    R = fr[0].numel() // (K * D)
    fr, fi = fr.contiguous(), fi.contiguous()
    w = None if w is None else w.contiguous()
    A = fr.new_empty((recv.shape[0],) + tuple(fr.shape[1:-1]))
    native.call("edft_edges_fwd", fr.dtype, native.ptr(fr), native.ptr(fi), native.ptr(w), native.ptr(recv),
                native.ptr(send), native.ptr(A), native.i64(N), native.i64(R), native.i64(recv.shape[0]), native.i64(K),
                native.i64(D), native.real(fr.dtype, eps), torch.get_num_threads())
    return A


@_edft_native.register_fake
def _(fr, fi, w, recv, send, eps):
    return fr.new_empty((recv.shape[0],) + tuple(fr.shape[1:-1]))


@torch.library.custom_op("graphdyn::edft_edges_backward", mutates_args=())
def _edft_native_backward(fr: torch.Tensor, fi: torch.Tensor, w: torch.Tensor, recv: torch.Tensor, send: torch.Tensor,
                          A: torch.Tensor, gA: torch.Tensor, eps: float) -> torch.Tensor:
    N, K, D = fr.shape[0], fr.shape[-2], fr.shape[-1]
    R = fr[0].numel() // (K * D)
    fr, fi, w, A, gA = (t.contiguous() for t in (fr, fi, w, A, gA))
    gw = torch.zeros_like(w)
    native.call("edft_edges_bwd", fr.dtype, native.ptr(fr), native.ptr(fi), native.ptr(w), native.ptr(recv),
                native.ptr(send), native.ptr(A), native.ptr(gA), native.ptr(gw), native.i64(N), native.i64(R),
                native.i64(recv.shape[0]), native.i64(K), native.i64(D), native.real(fr.dtype, eps), torch.get_num_threads())
    return gw


@_edft_native_backward.register_fake
def _(fr, fi, w, recv, send, A, gA, eps):
    return torch.empty_like(w)


def _setup(ctx, inputs, output):
    fr, fi, w, recv, send, eps = inputs
    ctx.save_for_backward(fr, fi, w, recv, send, output)
    ctx.eps = eps


def _backward(ctx, gA):
    fr, fi, w, recv, send, A = ctx.saved_tensors
    gw = None if w is None or not ctx.needs_input_grad[2] else _edft_native_backward(fr, fi, w, recv, send, A, gA, ctx.eps)
    return None, None, gw, None, None, None


_edft_native.register_autograd(_backward, setup_context=_setup)


def native_call(fr: torch.Tensor, fi: torch.Tensor, w: torch.Tensor | None, edge_index: torch.Tensor, eps: float):
    """(custom op, its arguments) for a call the kernel takes; checks the edges."""
    recv, send = native.check_edges(edge_index, fr.shape[0])
    return _edft_native, (fr, fi, w, recv, send, float(eps))


def edft_edges(fr: torch.Tensor, fi: torch.Tensor, w: torch.Tensor | None, edge_index: torch.Tensor, eps: float,
               backend: str = "auto") -> torch.Tensor:
    """``A [E, ..., K]`` (module docstring) by the implementation ``backend`` picks."""
    if _backend.use_native(backend, NAME, native_refusal(fr, fi, w, edge_index, eps)):
        op, args = native_call(fr, fi, w, edge_index, eps)
        return op(*args)
    return reference(fr, fi, w, edge_index, eps)


def cases(dtype: torch.dtype = torch.float64) -> list[tuple[tuple, dict]]:
    """Small argument sets for the parity tests: (args, kwargs) of :func:`edft_edges` minus
    ``backend``; the tensors that require gradients are the ones every backend differentiates."""
    gen = torch.Generator().manual_seed(0)
    edges = torch.tensor([[0, 1, 1, 2, 3, 0, 4, 2], [1, 0, 2, 2, 0, 3, 4, 1]])

    def t(*shape, grad=False):
        x = torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)
        return x.requires_grad_(grad)

    out = []
    for batch in ((), (3,), (2, 3)):
        fr, fi = t(5, *batch, 6, 3), t(5, *batch, 6, 3)
        out.append(((fr, fi, torch.sigmoid(t(5, *batch, 6)).detach().requires_grad_(), edges, 1e-9), {}))
    out.append(((t(5, 2, 4, 3), t(5, 2, 4, 3), None, edges, 1e-6), {}))
    return out
