"""Adaptive graph convolution of AGL-STAN (adaptive graph learning, after AGCRN, Bai et al. NeurIPS 2020).

The graph is learned, not given: from node embeddings ``E [N, d_e]`` (shared by the layers of
a model, passed in) each layer forms a row-stochastic adjacency and its Chebyshev-style
supports, then mixes the supports' propagations with one Linear::

    S      = softmax_row(ReLU(M (E E^T)))      M: Linear(N -> N) acting on each row of E E^T
    T_0 = I,  T_1 = S,  T_k = 2 S T_{k-1} - T_{k-2}               k < order
    y_i    = W [T_0 x, T_1 x, ..., T_{order-1} x]_i + b          W: Linear(order * F_in -> F_out)

The ESTAG authors' AGL-STAN uses these shared W, b (AGCRN's node-adaptive weights are computed
there but not used). ``M`` is indexed by node, so the layer is built for a fixed N and is not
permutation-equivariant. It acts on every frame alike.

Shapes: ``x [..., N, F_in]``, ``node_embeddings [N, d_e]`` -> ``[..., N, F_out]``.
"""

from __future__ import annotations

import torch
from torch import nn


def chebyshev_supports(S: torch.Tensor, order: int) -> torch.Tensor:
    """``[T_0, ..., T_{order-1}]`` stacked ``[order, N, N]``: ``I``, ``S``, ``2 S T_{k-1} - T_{k-2}``."""
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    supports = [torch.eye(S.shape[0], dtype=S.dtype, device=S.device), S][:order]
    while len(supports) < order:
        supports.append(2 * S @ supports[-1] - supports[-2])
    return torch.stack(supports)


class AdaptiveGraphConv(nn.Module):
    """Chebyshev-style convolution over a learned adjacency; see the module docstring.

    Args:
        n_nodes: N, fixed (the adjacency's row Linear is N x N).
        in_channels: input feature width per node.
        out_channels: output feature width per node.
        order: number of supports (3: ``I, S, 2 S^2 - I``).
    """

    def __init__(self, n_nodes: int, in_channels: int, out_channels: int, order: int = 3):
        super().__init__()
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        self.order = order
        self.mix = nn.Linear(n_nodes, n_nodes)
        self.linear = nn.Linear(order * in_channels, out_channels)

    def supports(self, node_embeddings: torch.Tensor) -> torch.Tensor:
        """The supports ``[order, N, N]`` learned from ``node_embeddings [N, d_e]``."""
        S = torch.softmax(torch.relu(self.mix(node_embeddings @ node_embeddings.T)), dim=1)
        return chebyshev_supports(S, self.order)

    def forward(self, x: torch.Tensor, node_embeddings: torch.Tensor) -> torch.Tensor:
        """Convolve ``x [..., N, F_in]`` (nodes second to last) -> ``[..., N, F_out]``."""
        sup = self.supports(node_embeddings)  # [K, N, N]
        K, N = sup.shape[0], sup.shape[1]
        # one matmul for all supports: [K*N, N] @ [..., N, F] -> [..., K*N, F]
        z = (sup.reshape(K * N, N) @ x).unflatten(-2, (K, N))  # [..., K, N, F]
        return self.linear(z.movedim(-3, -2).flatten(-2))  # [..., N, K*F] -> [..., N, F_out]
