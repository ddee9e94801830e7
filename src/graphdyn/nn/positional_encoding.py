"""Sinusoidal positional encoding over time (Vaswani et al., NeurIPS 2017).

A fixed, parameter-free table added to a sequence of T tokens of width d::

    pe[t, 2i]     = sin(t / 10000^(2i / d))
    pe[t, 2i + 1] = cos(t / 10000^(2i / d))          i = 0 .. ceil(d / 2) - 1

An odd d keeps the last sine column and no cosine for it.

Shapes: ``sinusoidal_encoding(T, d) -> [T, d]``.
"""

from __future__ import annotations

import math

import torch


def sinusoidal_encoding(length: int, d_model: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """The ``[length, d_model]`` table of the module docstring."""
    if length < 0 or d_model < 1:
        raise ValueError(f"need length >= 0 and d_model >= 1, got {length} and {d_model}")
    t = torch.arange(length, dtype=torch.float64, device=device)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64, device=device) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model, dtype=torch.float64, device=device)
    pe[:, 0::2] = torch.sin(t * freq)
    pe[:, 1::2] = torch.cos(t * freq[: d_model // 2])
    return pe.to(dtype or torch.get_default_dtype())
