"""Graph convolution with a fixed normalised adjacency (Kipf & Welling 2017; as in STGCN, Yu et al. 2018).

The adjacency is a dense ``[N, N]`` matrix built once per call from the shared edge list
(``edge_index[0]`` receiver i, ``edge_index[1]`` sender j), so node and edge relabellings
commute with it::

    W[i, j] = sum of the weights of the edges j -> i          (1 per edge by default)
    A_hat   = D^{-1/2} W D^{-1/2},   D = diag(sum_j W[i, j])   rows of degree 0 stay 0

No self loops are added. The layer is first-order and linear::

    y = A_hat (x Theta)        (Theta: ``in_channels -> out_channels``, no bias by default)

:func:`dataset_adjacency` gives the adjacencies behind the ESTAG paper's STGCN and
non-equivariant STAG (spec section 3.1; the authors' dataset code): ``"edges"`` (1 per listed
edge), ``"hop"`` (``A + A^2`` from the 1-hop edges, counting 2-paths, whose diagonal holds
each node's degree; MD17 and Motion, hop in the last edge-attribute column) or ``"attr"``
(an edge-attribute column as the weight itself; AdK, the CA-CA distance).

Shapes: ``x [..., N, ..., F_in]`` with the node axis ``node_dim`` -> ``[..., N, ..., F_out]``;
``adj [N, N]``. Dense is right for the graphs here (N <= a few hundred).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from graphdyn.errors import GraphdynError

AdjacencyMode = Literal["edges", "hop", "attr"]


def adjacency_matrix(
    edge_index: torch.Tensor,
    n_nodes: int,
    weights: torch.Tensor | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Dense ``W [n_nodes, n_nodes]``, ``W[i, j]`` = summed weight of the edges j -> i.

    ``edge_index [2, E]`` (row 0 receiver, row 1 sender), ``weights [E]`` or None (ones).
    Raises GraphdynError for node indices outside ``[0, n_nodes)`` or mismatched weights.
    """
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise GraphdynError(f"expected shape [2, E], got {tuple(edge_index.shape)}", field="edge_index")
    E = edge_index.shape[1]
    if E and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n_nodes):
        raise GraphdynError(f"node indices must lie in [0, {n_nodes}); got {int(edge_index.min())}..{int(edge_index.max())}", field="edge_index")
    if weights is None:
        dtype = dtype or torch.get_default_dtype()
        weights = torch.ones(E, dtype=dtype, device=edge_index.device)
    elif weights.shape != (E,):
        raise GraphdynError(f"expected one weight per edge, shape ({E},), got {tuple(weights.shape)}", field="edge_attr")
    else:
        weights = weights.to(dtype) if dtype is not None else weights
    W = weights.new_zeros(n_nodes, n_nodes)
    return W.index_put_((edge_index[0], edge_index[1]), weights, accumulate=True)


def normalize_adjacency(W: torch.Tensor) -> torch.Tensor:
    """``D^{-1/2} W D^{-1/2}`` with ``D`` the row sums; a row and column of degree <= 0 become 0."""
    deg = W.sum(1)
    inv_sqrt = torch.where(deg > 0, deg.clamp_min(torch.finfo(W.dtype).tiny).rsqrt(), torch.zeros_like(deg))
    return inv_sqrt[:, None] * W * inv_sqrt[None, :]


def normalized_adjacency(edge_index: torch.Tensor, n_nodes: int, weights: torch.Tensor | None = None, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``A_hat = D^{-1/2} W D^{-1/2}`` of the edge list (see :func:`adjacency_matrix`), ``[N, N]``."""
    return normalize_adjacency(adjacency_matrix(edge_index, n_nodes, weights, dtype=dtype))


def two_hop_matrix(A: torch.Tensor) -> torch.Tensor:
    """``A + A @ A``: 1-hop weights plus the number of 2-paths (diagonal = degree of a 0/1 ``A``)."""
    return A + A @ A


def dataset_adjacency(
    edge_index: torch.Tensor,
    n_nodes: int,
    mode: AdjacencyMode = "edges",
    edge_attr: torch.Tensor | None = None,
    column: int = -1,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The normalised adjacency ``[N, N]`` of a dataset's graph; see the module docstring.

    ``"hop"`` reads the hop count (1 or 2) from ``edge_attr[:, column]`` and builds
    ``A + A^2`` from the edges with hop 1; ``"attr"`` weights each edge by ``edge_attr[:, column]``.
    """
    if mode == "edges":
        return normalized_adjacency(edge_index, n_nodes, dtype=dtype)
    if mode not in ("hop", "attr"):
        raise GraphdynError(f"unknown adjacency {mode!r}; choose edges, hop or attr", field="model.params.adjacency")
    if edge_attr is None:
        raise GraphdynError(f"adjacency {mode!r} reads an edge-attribute column and the batch has no edge attributes", field="edge_attr")
    if not -edge_attr.shape[-1] <= column < edge_attr.shape[-1]:
        raise GraphdynError(f"column {column} is out of range for {edge_attr.shape[-1]} edge-attribute columns", field="model.params.adjacency_column")
    values = edge_attr[:, column].to(dtype) if dtype is not None else edge_attr[:, column]
    if mode == "attr":
        return normalized_adjacency(edge_index, n_nodes, values)
    one_hop = values.round() == 1
    if not bool(one_hop.any()):
        raise GraphdynError(f"adjacency 'hop' found no edge with hop 1 in edge-attribute column {column}", field="model.params.adjacency_column")
    A = adjacency_matrix(edge_index[:, one_hop], n_nodes, dtype=values.dtype)
    return normalize_adjacency(two_hop_matrix(A))


class GraphConv(nn.Module):
    """``y = A_hat (x Theta)`` along the node axis; see the module docstring.

    Args:
        in_channels: input feature width.
        out_channels: output feature width.
        bias: add a bias after the propagation.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False):
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, adj: torch.Tensor, node_dim: int = 0) -> torch.Tensor:
        """Propagate ``x`` (node axis ``node_dim``, features last) with ``adj [N, N]``."""
        y = self.linear(x)  # narrow first: the propagation then moves fewer features
        yn = y.movedim(node_dim, 0)
        out = (adj @ yn.reshape(yn.shape[0], -1)).view(yn.shape).movedim(0, node_dim)
        return out if self.bias is None else out + self.bias
