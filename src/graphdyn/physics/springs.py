"""Spring networks: point masses joined by Hooke springs on any graph, in 1, 2 or 3 dimensions.

Each undirected spring ``s = (a, b)`` has a constant ``k_s`` and a rest length ``L_s``. The
force on node ``i`` from its neighbours ``j``, with ``r_ij = x_i - x_j``, is

.. math::

    F_i = -\\sum_{j \\in \\mathcal{N}(i)} k_{ij} (|r_{ij}| - L_{ij}) \\frac{r_{ij}}{|r_{ij}|},

which for ``L = 0`` (the default) is the notebook's linear law ``F_i = -sum_j k (x_i - x_j)``.
The potential energy is ``U = sum_s 1/2 k_s (|r_s| - L_s)^2``.

The 3-mass 1-D chain with ``k = m = 1`` reproduces the notebook's explicit formulas bit for
bit: edges are listed spring by spring, so node 1 receives ``-k (x1 - x0)`` first and
``-k (x1 - x2)`` second, the notebook's order of summation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from graphdyn.errors import GraphdynError
from graphdyn.physics.system import System, per_item

GRAPHS = ("chain", "ring", "random")


# ---------------------------------------------------------------------- graph builders
def chain_graph(n: int) -> np.ndarray:
    """Springs ``(i, i+1)`` of an open chain, ``[n - 1, 2]`` int64."""
    _check_n(n, 1)
    return np.stack([np.arange(n - 1), np.arange(1, n)], axis=1).astype(np.int64)


def ring_graph(n: int) -> np.ndarray:
    """A closed chain (``n >= 3``): the chain plus the spring ``(n - 1, 0)``, ``[n, 2]``."""
    _check_n(n, 3)
    return np.concatenate([chain_graph(n), [[n - 1, 0]]]).astype(np.int64)


def random_graph(n: int, edge_prob: float = 0.5, seed: int = 0) -> np.ndarray:
    """A seeded random connected graph, ``[S, 2]`` with ``a < b`` in each row, sorted.

    A random spanning tree (node ``i`` of a random order joins a uniformly chosen earlier
    node) guarantees connectivity; every other pair is then added with probability
    ``edge_prob`` (the NRI springs construction, made connected).
    """
    _check_n(n, 1)
    if not 0.0 <= edge_prob <= 1.0:
        raise GraphdynError(f"edge_prob must lie in [0, 1], got {edge_prob}", field="edge_prob")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    adj = np.zeros((n, n), dtype=bool)
    for pos in range(1, n):
        a, b = order[pos], order[rng.integers(pos)]
        adj[a, b] = adj[b, a] = True
    extra = np.triu(rng.random((n, n)) < edge_prob, k=1)
    adj |= extra | extra.T
    a, b = np.nonzero(np.triu(adj, k=1))
    return np.stack([a, b], axis=1).astype(np.int64)


def springs_to_edge_index(springs: np.ndarray) -> torch.Tensor:
    """Both directions of every spring, ``[2, 2 S]``: column ``2s`` is ``a <- b``, ``2s + 1`` is ``b <- a``.

    Row 0 is the receiver ``i``, row 1 the sender ``j``.
    """
    springs = np.asarray(springs, dtype=np.int64).reshape(-1, 2)
    recv = np.stack([springs[:, 0], springs[:, 1]], axis=1).reshape(-1)
    send = np.stack([springs[:, 1], springs[:, 0]], axis=1).reshape(-1)
    return torch.as_tensor(np.stack([recv, send]))


def build_graph(graph: str, n: int, edge_prob: float = 0.5, seed: int = 0) -> np.ndarray:
    """Springs ``[S, 2]`` of a named graph (``chain``, ``ring`` or ``random``)."""
    if graph == "chain":
        return chain_graph(n)
    if graph == "ring":
        return ring_graph(n)
    if graph == "random":
        return random_graph(n, edge_prob, seed)
    raise GraphdynError(f"unknown graph {graph!r}; choose one of {', '.join(GRAPHS)}", field="graph")


def _check_n(n: int, minimum: int) -> None:
    if int(n) < minimum:
        raise GraphdynError(f"this graph needs at least {minimum} masses, got {n}", field="n_masses")


# ---------------------------------------------------------------------- the system
class SpringSystem(System):
    """Masses joined by springs on an arbitrary graph.

    Args:
        springs: ``[S, 2]`` node pairs (undirected, no self loops, no duplicates).
        n_nodes: number of masses ``N``.
        dim: spatial dimensions ``D``.
        k: spring constant(s), one number or ``S`` numbers (> 0).
        m: mass(es), one number or ``N`` numbers (> 0).
        rest_length: one number or ``S`` numbers (>= 0); 0 is the notebook's law.

    Shapes: positions/velocities ``[..., N, D]`` -> forces ``[..., N, D]``, energies ``[...]``.
    """

    kind = "springs"

    def __init__(self, springs: Any, n_nodes: int, dim: int = 1, k: Any = 1.0, m: Any = 1.0, rest_length: Any = 0.0):
        springs = np.asarray(springs, dtype=np.int64).reshape(-1, 2)
        if springs.size and (springs.min() < 0 or springs.max() >= int(n_nodes)):
            raise GraphdynError(f"spring endpoints must lie in [0, {n_nodes})", field="springs")
        if (springs[:, 0] == springs[:, 1]).any():
            raise GraphdynError("a spring joins a mass to itself", field="springs")
        if len({tuple(sorted(p)) for p in springs.tolist()}) != len(springs):
            raise GraphdynError("duplicate springs", field="springs")
        super().__init__(n_nodes, dim, m, springs_to_edge_index(springs))
        self.springs = torch.as_tensor(springs)
        n_springs = len(springs)
        self.k = per_item(k, n_springs, "k", positive=True)
        self.rest_length = per_item(rest_length, n_springs, "rest_length", nonnegative=True)
        # One value per directed edge, in edge_index order (each spring twice).
        self.k_edge = self.k.repeat_interleave(2)
        self.neg_k_edge = -self.k_edge
        self.rest_edge = self.rest_length.repeat_interleave(2)
        self.zero_rest = bool((self.rest_length == 0).all())

    @classmethod
    def build(
        cls,
        n_masses: int = 3,
        dim: int = 1,
        graph: str = "chain",
        k: Any = 1.0,
        m: Any = 1.0,
        rest_length: Any = 0.0,
        edge_prob: float = 0.5,
        graph_seed: int = 0,
    ) -> "SpringSystem":
        """A spring network on a named graph; the defaults are the notebook's 3-mass chain."""
        return cls(build_graph(graph, n_masses, edge_prob, graph_seed), n_masses, dim, k, m, rest_length)

    @property
    def n_springs(self) -> int:
        return int(self.springs.shape[0])

    def forces(self, x: torch.Tensor) -> torch.Tensor:
        """F_i = -sum_j k_ij (|r_ij| - L_ij) r_ij / |r_ij|, ``[..., N, D]`` from ``x [..., N, D]``."""
        self.check_positions(x)
        ei = self.index("edge_index", x)
        recv, send = ei[0], ei[1]
        rel = x.index_select(-2, recv) - x.index_select(-2, send)  # [..., E, D], x_i - x_j
        if self.zero_rest:
            # (-k) * r, written as the notebook writes it, so the sums agree bit for bit.
            f = self.const("neg_k_edge", x)[:, None] * rel
        else:
            dist = rel.norm(dim=-1, keepdim=True)
            # Coincident masses have no direction; their spring pushes along nothing (force 0).
            scale = torch.where(dist > 0, (dist - self.const("rest_edge", x)[:, None]) / dist.clamp_min(1e-300), 0.0)
            f = -self.const("k_edge", x)[:, None] * scale * rel
        out = x.new_zeros(x.shape)
        return out.index_add_(-2, recv, f)

    def potential_energy(self, x: torch.Tensor) -> torch.Tensor:
        """U = sum_s 1/2 k_s (|r_s| - L_s)^2, ``[...]``."""
        self.check_positions(x)
        s = self.index("springs", x)
        rel = x.index_select(-2, s[:, 0]) - x.index_select(-2, s[:, 1])  # [..., S, D]
        if self.zero_rest:
            stretch2 = (rel * rel).sum(-1)
        else:
            stretch2 = (rel.norm(dim=-1) - self.const("rest_length", x)) ** 2
        return 0.5 * (self.const("k", x) * stretch2).sum(-1)

    def edge_attr(self) -> np.ndarray | None:
        """Spring constants per directed edge ``[E, 1]`` when they differ, else None.

        A constant feature carries no information, so uniform networks (the notebook's) keep
        the edge list bare.
        """
        if self.n_springs == 0 or bool((self.k == self.k[0]).all()):
            return None
        return self.k_edge.numpy()[:, None].copy()

    def to_metadata(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_nodes": self.n_nodes,
            "dim": self.dim,
            "springs": self.springs.tolist(),
            "k": self.k.tolist(),
            "m": self.masses.tolist(),
            "rest_length": self.rest_length.tolist(),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> "SpringSystem":
        return cls(meta["springs"], meta["n_nodes"], meta["dim"], meta["k"], meta["m"], meta.get("rest_length", 0.0))
