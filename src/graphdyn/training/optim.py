"""The trainer's optimizer: PyTorch's Adam or AdamW, fused where PyTorch's fused kernel applies.

Adam keeps, per parameter tensor ``p`` with gradient ``g`` at step ``t``,

    m_t = beta1 m_{t-1} + (1 - beta1) g,    v_t = beta2 v_{t-1} + (1 - beta2) g^2,
    p  <- p - lr * (m_t / (1 - beta1^t)) / (sqrt(v_t / (1 - beta2^t)) + eps),

with weight decay added to ``g`` (Adam) or applied as ``p <- p (1 - lr wd)`` (AdamW). PyTorch's
``fused=True`` runs this as one kernel over all tensors; it takes floating-point tensors on a CPU
or a CUDA device (:func:`fused_supported`). Elsewhere PyTorch's default implementation (foreach
where it supports it) is used.

graphdyn once called PyTorch's private fused kernels directly with one shared step counter, to
save the optimizer's Python bookkeeping (about 0.25 ms of an ESTAG step). Measured interleaved in
one process on a whole ESTAG training step (aspirin size, about 100 ms on one CPU thread) that
saved about 0.3%, far from the 5% a speed change must save, so it was removed in favour of the
public API.
"""

from __future__ import annotations

from typing import Any

import torch


def fused_supported(params: list[torch.Tensor]) -> bool:
    """Whether PyTorch's fused Adam takes these parameters (real floating point, on a CPU or CUDA)."""
    return bool(params) and all(
        p.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) and p.device.type in ("cpu", "cuda")
        for p in params
    )


def make_adam(params, name: str = "adam", **kwargs: Any) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` (``name="adam"``) or ``torch.optim.AdamW`` (``"adamw"``) over ``params``.

    ``fused=True`` where PyTorch's fused kernel takes ``params`` (:func:`fused_supported`), else
    PyTorch's default implementation; ``kwargs`` (``lr``, ``weight_decay``, ...) go to the
    optimizer. A ``fused`` given in ``kwargs`` wins.
    """
    if name not in ("adam", "adamw"):
        raise ValueError(f"optimizer: expected 'adam' or 'adamw', got {name!r}")
    params = list(params)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    if fused_supported(params):
        kwargs.setdefault("fused", True)
    return cls(params, **kwargs)
