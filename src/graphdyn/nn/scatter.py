"""Scatter (segment) reductions in plain PyTorch: the aggregation step of message passing.

Messages live on edges, ``src [..., E, F]``; ``index [E]`` names the receiving node of each
edge. The result has ``num_nodes`` rows along ``dim`` and every other axis unchanged, so a
batch of graphs sharing one edge list aggregates in one ``index_add_`` call.
"""

from __future__ import annotations

import torch


def scatter_sum(src: torch.Tensor, index: torch.Tensor, num_nodes: int, dim: int = -2) -> torch.Tensor:
    """out[..., i, :] = sum over edges e with index[e] == i of src[..., e, :].

    Shapes: src [..., E, F] (``dim`` the edge axis), index [E] -> out [..., num_nodes, F].
    """
    dim = dim % src.dim()
    shape = list(src.shape)
    shape[dim] = num_nodes
    out = src.new_zeros(shape)
    return out.index_add_(dim, index, src)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, num_nodes: int, dim: int = -2) -> torch.Tensor:
    """Mean of incoming messages per node; a node with no incoming edge gets 0."""
    dim = dim % src.dim()
    total = scatter_sum(src, index, num_nodes, dim)
    count = torch.bincount(index, minlength=num_nodes).clamp_(min=1).to(src.dtype)
    view = [1] * src.dim()
    view[dim] = num_nodes
    return total / count.view(view)


def in_degree(index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Number of incoming edges per node, ``[num_nodes]`` int64."""
    return torch.bincount(index, minlength=num_nodes)
