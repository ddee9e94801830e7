"""Pairwise inverse-square systems: charged particles (Coulomb) and gravitating bodies.

Every pair interacts. With ``r_ij = x_i - x_j``, the softened distance
``s_ij = sqrt(|r_ij|^2 + eps^2)`` and a pair coupling ``C_ij`` (symmetric, zero diagonal),

.. math::

    U = \\sum_{i<j} \\frac{C_{ij}}{s_{ij}}, \\qquad
    F_i = -\\nabla_i U = \\sum_{j \\ne i} C_{ij} \\frac{r_{ij}}{s_{ij}^3},

so the softened force is exactly the gradient of the softened potential (energy is
conserved by the flow) and ``F_ij = -F_ji`` (momentum is conserved). The couplings are

* charged: ``C_ij = k_e q_i q_j`` (like charges repel), charges usually ``±1``;
* gravity: ``C_ij = -G m_i m_j`` (always attractive).

Softening ``eps`` (Plummer) bounds the force at close encounters, which keeps a fixed time
step stable; ``eps = 0`` is the bare law.

Shapes: positions ``[..., N, D]`` (usually ``D = 3``) -> forces ``[..., N, D]``, energies
``[...]``; the work is dense ``[..., N, N]`` per dimension, which suits the few-body systems simulated here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from graphdyn.errors import GraphdynError
from graphdyn.physics.system import System, per_item


def complete_edge_index(n: int) -> torch.Tensor:
    """All ordered pairs ``i != j``, ``[2, n (n - 1)]``, receiver-major (row 0 receiver ``i``)."""
    recv, send = np.nonzero(~np.eye(n, dtype=bool))
    return torch.as_tensor(np.stack([recv, send]).astype(np.int64))


class PairwiseSystem(System):
    """Base of the inverse-square systems; subclasses set the coupling ``C [N, N]``."""

    def __init__(self, n_nodes: int, dim: int, masses: Any, coupling: torch.Tensor, softening: float):
        super().__init__(n_nodes, dim, masses, complete_edge_index(int(n_nodes)))
        softening = float(softening)
        if not np.isfinite(softening) or softening < 0:
            raise GraphdynError(f"softening must be finite and >= 0, got {softening}", field="softening")
        self.softening = softening
        self.coupling = coupling * (1.0 - torch.eye(self.n_nodes, dtype=torch.float64))
        # Added to |r|^2 so the i == i terms (coupling 0) never divide by zero, even when eps = 0.
        self.r2_offset = torch.eye(self.n_nodes, dtype=torch.float64) + softening**2

    def _pairs(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Components of r_ij, ``D`` tensors ``[..., N, N]``, and s_ij^2 ``[..., N, N]``.

        One ``[..., N, N]`` tensor per dimension: reductions over a trailing axis of size
        ``D <= 3`` are several times slower in torch than adding ``D`` slabs.
        """
        self.check_positions(x)
        comps = [x[..., :, None, d] - x[..., None, :, d] for d in range(self.dim)]
        s2 = self.const("r2_offset", x)
        for c in comps:
            s2 = s2 + c * c
        return comps, s2

    def forces(self, x: torch.Tensor) -> torch.Tensor:
        """F_i = sum_j C_ij r_ij / s_ij^3, ``[..., N, D]``."""
        comps, s2 = self._pairs(x)
        inv = s2.rsqrt()
        w = self.const("coupling", x) * (inv * inv * inv)  # [..., N, N]
        return torch.stack([(w * c).sum(-1) for c in comps], dim=-1)

    def potential_energy(self, x: torch.Tensor) -> torch.Tensor:
        """U = 1/2 sum_{i != j} C_ij / s_ij, ``[...]``."""
        _, s2 = self._pairs(x)
        return 0.5 * (self.const("coupling", x) * s2.rsqrt()).sum(dim=(-2, -1))


class ChargedSystem(PairwiseSystem):
    """Charged particles under Coulomb's law (the NRI / EGNN "charged" n-body system).

    Args:
        charges: ``N`` charges (usually ``±1``); their number sets ``N``.
        dim: spatial dimensions (3 by default).
        m: mass(es), one number or ``N`` numbers.
        coulomb_k: Coulomb constant ``k_e``.
        softening: Plummer softening length ``eps``.

    Node features are the charges ``[N, 1]``.
    """

    kind = "charged"

    def __init__(self, charges: Any, dim: int = 3, m: Any = 1.0, coulomb_k: float = 1.0, softening: float = 0.1):
        q = np.asarray(charges, dtype=np.float64).reshape(-1)
        if q.size < 2:
            raise GraphdynError(f"need at least 2 charged particles, got {q.size}", field="charges")
        q = per_item(q, q.size, "charges")
        self.charges = q
        self.coulomb_k = float(coulomb_k)
        super().__init__(q.numel(), dim, m, self.coulomb_k * q[:, None] * q[None, :], softening)

    def node_attr(self) -> np.ndarray:
        return self.charges.numpy()[:, None].copy()

    def to_metadata(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_nodes": self.n_nodes,
            "dim": self.dim,
            "charges": self.charges.tolist(),
            "m": self.masses.tolist(),
            "coulomb_k": self.coulomb_k,
            "softening": self.softening,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> "ChargedSystem":
        return cls(meta["charges"], meta.get("dim", 3), meta.get("m", 1.0), meta.get("coulomb_k", 1.0), meta.get("softening", 0.0))


class GravitySystem(PairwiseSystem):
    """Gravitating bodies under Newton's law of gravitation.

    Args:
        n_particles: number of bodies ``N``.
        dim: spatial dimensions (3 by default).
        m: mass(es), one number or ``N`` numbers; also the node features ``[N, 1]``.
        G: gravitational constant.
        softening: Plummer softening length ``eps``.
    """

    kind = "gravity"

    def __init__(self, n_particles: int = 5, dim: int = 3, m: Any = 1.0, G: float = 1.0, softening: float = 0.1):
        if int(n_particles) < 2:
            raise GraphdynError(f"need at least 2 bodies, got {n_particles}", field="n_particles")
        masses = per_item(m, int(n_particles), "m", positive=True)
        self.G = float(G)
        super().__init__(int(n_particles), dim, masses, -self.G * masses[:, None] * masses[None, :], softening)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_nodes": self.n_nodes,
            "dim": self.dim,
            "m": self.masses.tolist(),
            "G": self.G,
            "softening": self.softening,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> "GravitySystem":
        return cls(meta["n_nodes"], meta.get("dim", 3), meta.get("m", 1.0), meta.get("G", 1.0), meta.get("softening", 0.0))
