"""EqMotion's layers (Xu et al., "EqMotion: Equivariant Multi-agent Motion Prediction with
Invariant Interaction Reasoning", CVPR 2023), on the fully connected graph of N agents.

Every agent ``i`` carries ``C`` geometric vectors ``G_i = (G_i^1, ..., G_i^C)``, each in R^D
(equivariant: they rotate with the input and, being built from centred coordinates, ignore
translations) and a pattern feature ``h_i`` in R^H (invariant). The graph is every ordered
pair ``i != j``; pairs are held densely, ``[B, N, N, ...]`` with the receiver ``i`` on axis 1
and the sender ``j`` on axis 2. Pairwise invariants, one per channel::

    d_ij^c = ||G_i^c - G_j^c||

:class:`InteractionReasoning` (invariant interaction reasoning, once per forward pass)::

    d'_ij = phi_d(d_ij)                                    C -> H -> C
    e_ij  = phi_e([h_i, h_j, d'_ij])                       2H+C -> H -> H
    h'_i  = phi_n([h_i, sum_{j != i} e_ij])                2H -> H -> H
    p_ij  = softmax_k(phi_c([h'_i, h'_j, d'_ij]) / tau)    2H+C -> H -> K   (K categories)

:class:`EqMotionLayer` (equivariant geometric and invariant pattern feature learning), given
the category probabilities ``p``; ``mean(G)`` is the mean over agents and channels::

    m_ij   = phi_m([h_i, h_j, d_ij])                               2H+C -> H -> H
    f_ij   = phi_f(sum_k p_ij^k phi_k([h_i, h_j, d_ij]))           phi_k: 2H+C -> H -> C, phi_f: C -> C -> C
    G_i   <- G_i + phi_a(h_i) * (G_i - mean(G))                    inner-agent attention, phi_a: H -> C
    G_i^c <- G_i^c + sum_{j != i} f_ij^c (G_i^c - G_j^c)           relative vectors of the layer's input G
    G_i^c <- mean(G) + q_i^c - [q_i^c . k_i^c < 0] (q_i^c . k_i^c) / (|k_i^c|^2 + eps) k_i^c
             with q_i = W_q (G_i - mean(G)), k_i = W_k (G_i - mean(G))   (channel mixing, no bias)
    h_i   <- h_i + phi_h([h_i, sum_{j != i} m_ij])                 2H -> H -> H

Every MLP above is Linear -> act -> Linear -> act (the authors' networks, final activation
included: the category logits pass through the activation before the softmax), except
``phi_a`` (one Linear -> act) and ``phi_h`` (no final activation). The last step is the
equivariant non-linearity: a channel whose ``q`` points against its ``k`` loses its component
along ``k``. Coordinates only ever enter as differences and norms, and channel mixing acts on
centred vectors, so ``G`` stays rotation- and reflection-equivariant and ``h``, ``p`` invariant.

The first Linear of every pair network is evaluated as ``W_i h_i + W_j h_j + W_d d_ij``, the
three column blocks of one ``Linear(2H+C -> .)``, so no ``[B, N, N, 2H+C]`` tensor is built;
sums of relative vectors are ``G_i sum_j f_ij - sum_j f_ij G_j`` and the distances have a
hand-written backward, so no ``[B, N, N, C, D]`` tensor is kept for autograd either.

Shapes: ``h [B, N, H]``, ``G [B, N, C, D]``, ``p [B, N, N, K]``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from graphdyn.nn.mlp import MLP, activation


def pair_sum(w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``sum_j w_ij^c (g_i^c - g_j^c)`` for ``w [B, N, N, C]``, ``g [B, N, C, D] -> [B, N, C, D]``,
    as ``g_i^c sum_j w_ij^c - sum_j w_ij^c g_j^c`` (no ``[B, N, N, C, D]`` tensor)."""
    return g * w.sum(2).unsqueeze(-1) - torch.einsum("bijc,bjcd->bicd", w, g)


class _PairDistance(torch.autograd.Function):
    """``||g_i^c - g_j^c||`` with a hand-written backward (autograd's norm backward costs a
    quarter of a training step). The gradient of a zero distance is taken as 0, as
    ``torch.linalg.vector_norm`` does."""

    @staticmethod
    def forward(ctx, g: torch.Tensor) -> torch.Tensor:
        sq = None
        for k in range(g.shape[-1]):  # the D spatial components, accumulated in place
            diff = g[..., k].unsqueeze(2) - g[..., k].unsqueeze(1)  # [B, N, N, C]
            sq = diff.square_() if sq is None else sq.add_(diff.square_())
        d = sq.sqrt_()
        ctx.save_for_backward(g, d)
        return d

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g, d = ctx.saved_tensors
        s = torch.where(d > 0, grad / d, torch.zeros_like(d))  # d d_ij / d g_i = (g_i - g_j) / d_ij
        return pair_sum(s + s.transpose(1, 2), g)


def pair_distances(g: torch.Tensor) -> torch.Tensor:
    """``g [B, N, C, D] -> d [B, N, N, C]``, ``d[b, i, j, c] = ||g[b, i, c] - g[b, j, c]||``."""
    return _PairDistance.apply(g)


def sum_over_senders(e: torch.Tensor) -> torch.Tensor:
    """``sum_{j != i} e_ij`` for ``e [B, N, N, F] -> [B, N, F]`` (the fully connected graph)."""
    return e.sum(2) - e.diagonal(dim1=1, dim2=2).transpose(1, 2)


def off_diagonal(n: int, like: torch.Tensor) -> torch.Tensor:
    """``[n, n]`` mask, 1 for the ordered pairs ``i != j`` of the fully connected graph."""
    return 1.0 - torch.eye(n, dtype=like.dtype, device=like.device)


def channel_mix(weight: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``weight [C_out, C_in]``, ``g [B, N, C_in, D] -> [B, N, C_out, D]``: linear combinations
    of an agent's vectors (equivariant; without a bias, translation-free vectors stay so)."""
    return torch.matmul(weight, g)


class PairLinear(nn.Module):
    """``Linear([h_i, h_j, e_ij])`` for every ordered pair, computed as ``W_i h_i + W_j h_j + W_e e_ij + b``.

    The parameters are those of one ``nn.Linear(2 * node_dim + edge_dim, out)`` (same
    initialisation), so the layer equals the concatenate-then-Linear form.

    Shapes: ``h [B, N, node_dim]``, ``e [B, N, N, edge_dim] -> [B, N, N, out]``.
    """

    def __init__(self, node_dim: int, edge_dim: int, out: int):
        super().__init__()
        self.node_dim = node_dim
        self.linear = nn.Linear(2 * node_dim + edge_dim, out)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        n, w = self.node_dim, self.linear.weight
        receiver = nn.functional.linear(h, w[:, :n], self.linear.bias)
        sender = nn.functional.linear(h, w[:, n : 2 * n])
        return receiver.unsqueeze(2) + sender.unsqueeze(1) + nn.functional.linear(e, w[:, 2 * n :])


class PairMLP(nn.Module):
    """``[h_i, h_j, e_ij] -> Linear -> act -> Linear -> act`` for every ordered pair (the
    authors' pair networks, final activation included).

    Shapes: ``h [B, N, node_dim]``, ``e [B, N, N, edge_dim] -> [B, N, N, out]``.
    """

    def __init__(self, node_dim: int, edge_dim: int, hidden: int, out: int, act: str = "silu"):
        super().__init__()
        self.first = PairLinear(node_dim, edge_dim, hidden)
        self.rest = nn.Sequential(activation(act), nn.Linear(hidden, out), activation(act))

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.rest(self.first(h, e))


class InteractionReasoning(nn.Module):
    """Invariant interaction reasoning: the probability of each of ``categories`` interaction
    types for every ordered pair; see the module docstring.

    Shapes: ``h [B, N, H]``, ``g [B, N, C, D] -> p [B, N, N, K]`` (rows sum to 1; the diagonal
    is computed but never used).
    """

    def __init__(self, hidden: int, channels: int, categories: int = 2, act: str = "silu", tau: float = 1.0):
        super().__init__()
        self.tau = tau
        self.dist = MLP([channels, hidden, channels], act=act, final_act=True)
        self.edge = PairMLP(hidden, channels, hidden, hidden, act)
        self.node = MLP([2 * hidden, hidden, hidden], act=act, final_act=True)
        self.category = PairMLP(hidden, channels, hidden, categories, act)

    def forward(self, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        d = self.dist(pair_distances(g))  # [B, N, N, C]
        e = self.edge(h, d)  # [B, N, N, H]
        h2 = self.node(torch.cat([h, sum_over_senders(e)], dim=-1))
        return torch.softmax(self.category(h2, d) / self.tau, dim=-1)


class EqMotionLayer(nn.Module):
    """One equivariant geometric + invariant pattern feature learning layer; see the module docstring.

    Shapes: ``h [B, N, H]``, ``g [B, N, C, D]``, ``p [B, N, N, K] -> (h, g)`` of the same shapes.
    """

    def __init__(self, hidden: int, channels: int, categories: int = 2, act: str = "silu", eps: float = 1e-4):
        super().__init__()
        self.eps = eps
        self.message = PairMLP(hidden, channels, hidden, hidden, act)
        self.category = nn.ModuleList(PairMLP(hidden, channels, hidden, channels, act) for _ in range(categories))
        self.factor = MLP([channels, channels, channels], act=act, final_act=True)
        self.attention = nn.Sequential(nn.Linear(hidden, channels), activation(act))
        self.query = nn.Linear(channels, channels, bias=False)
        self.key = nn.Linear(channels, channels, bias=False)
        self.node = MLP([2 * hidden, hidden, hidden], act=act)

    def forward(self, h: torch.Tensor, g: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = pair_distances(g)  # [B, N, N, C], from the layer's input G
        m = self.message(h, d)  # [B, N, N, H]
        mixed = sum(p[..., k : k + 1] * phi(h, d) for k, phi in enumerate(self.category))  # K is small
        f = self.factor(mixed) * off_diagonal(h.shape[1], h)[:, :, None]  # [B, N, N, C]
        centre = g.mean(dim=(1, 2), keepdim=True)
        g = g + self.attention(h).unsqueeze(-1) * (g - centre) + pair_sum(f, g)
        g = self._nonlinearity(g)
        h = h + self.node(torch.cat([h, sum_over_senders(m)], dim=-1))
        return h, g

    def _nonlinearity(self, g: torch.Tensor) -> torch.Tensor:
        centre = g.mean(dim=(1, 2), keepdim=True)
        q = channel_mix(self.query.weight, g - centre)
        k = channel_mix(self.key.weight, g - centre)
        qk = (q * k).sum(-1, keepdim=True)
        removed = torch.where(qk < 0, qk / ((k * k).sum(-1, keepdim=True) + self.eps), torch.zeros_like(qk))
        return centre + q - removed * k
