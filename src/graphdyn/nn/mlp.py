"""Multi-layer perceptron used throughout (edge, node, coordinate and attention networks)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}


def activation(name: str) -> nn.Module:
    """An activation module by name (``relu``, ``silu``, ``tanh``, ``gelu``, ``leaky_relu`` = LeakyReLU(0.2))."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


class MLP(nn.Sequential):
    """Linear -> act -> ... -> Linear, optionally ending in an activation.

    ``sizes = [in, hidden..., out]``. Shapes: ``[..., in] -> [..., out]``.
    """

    def __init__(self, sizes: Sequence[int], act: str = "relu", final_act: bool = False, final_bias: bool = True):
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = k == len(sizes) - 2
            layers.append(nn.Linear(a, b, bias=final_bias or not last))
            if not last or final_act:
                layers.append(activation(act))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 (nn.Sequential)
        return super().forward(x)
