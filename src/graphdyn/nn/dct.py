"""Orthonormal discrete cosine transform (DCT-II) along one axis, as a fixed matrix.

EqMotion (Xu et al., CVPR 2023) moves every coordinate trajectory into the DCT domain before
its layers and back after them. For a sequence of length ``n`` (times ``t``, frequencies
``k``)::

    D[k, t] = w_k cos(pi (t + 1/2) k / n),    w_0 = sqrt(1 / n),  w_k = sqrt(2 / n) for k >= 1
    dct(x)[k] = sum_t D[k, t] x[t]            idct(c)[t] = sum_k D[k, t] c[k]

``D`` is orthogonal (``D D^T = I``), so the inverse is the transpose and the transform keeps
Euclidean norms. Being linear and applied to every spatial component alike, it commutes with
rotations and reflections of the vectors it transforms.

Shapes: ``dct(x, dim)`` and ``idct(c, dim)`` keep the shape of their input; the axis ``dim``
(length ``n``) holds time on one side and frequency on the other. ``dct_matrix(n)`` is
``[n, n]``, rows frequencies, columns times.
"""

from __future__ import annotations

import math

import torch

from graphdyn.errors import GraphdynError


def dct_matrix(n: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D [n, n]`` (rows frequencies ``k``, columns times ``t``).

    Built in float64 and then cast, so a float64 caller gets it to full precision.
    Raises GraphdynError when ``n < 1``.
    """
    if n < 1:
        raise GraphdynError(f"the DCT needs a sequence of at least 1 element, got length {n}", field="n")
    k = torch.arange(n, dtype=torch.float64)[:, None]
    t = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (t + 0.5) * k / n) * math.sqrt(2.0 / n)
    d[0] = math.sqrt(1.0 / n)
    return d.to(dtype=dtype or torch.get_default_dtype(), device=device)


def dct(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """DCT-II coefficients of ``x`` along ``dim`` (same shape as ``x``)."""
    d = dct_matrix(x.shape[dim], dtype=x.dtype, device=x.device)
    return (x.movedim(dim, -1) @ d.T).movedim(-1, dim)


def idct(c: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The sequence whose DCT-II coefficients along ``dim`` are ``c`` (inverse of :func:`dct`)."""
    d = dct_matrix(c.shape[dim], dtype=c.dtype, device=c.device)
    return (c.movedim(dim, -1) @ d).movedim(-1, dim)
