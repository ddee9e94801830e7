"""The interface every simulated system implements.

A system is a set of ``N`` point masses in ``D`` dimensions with fixed constants (spring
constants, masses, charges...). It maps positions to forces and states to energies, for any
leading batch dimensions: positions and velocities are ``[..., N, D]``, energies ``[...]``.

Constants are stored once as float64 tensors and cast lazily to the dtype and device of the
positions they are applied to, so the same system serves float32 and float64 callers.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from graphdyn.errors import GraphdynError


class System:
    """Base class of the physical systems (spring networks, charged and gravitating bodies).

    Subclasses set ``kind`` and implement :meth:`forces`, :meth:`potential_energy`,
    :meth:`to_metadata` and :meth:`from_metadata`.

    Attributes:
        n_nodes: number of particles ``N``.
        dim: spatial dimensions ``D`` (1, 2 or 3).
        masses: ``[N]`` float64.
        edge_index: ``[2, E]`` int64, both directions of every interaction; row 0 is the
            receiving node ``i``, row 1 the sending node ``j``.
    """

    kind: ClassVar[str] = "system"

    def __init__(self, n_nodes: int, dim: int, masses: Any, edge_index: torch.Tensor):
        if int(dim) not in (1, 2, 3):
            raise GraphdynError(f"dim must be 1, 2 or 3, got {dim}", field="dim")
        if int(n_nodes) < 1:
            raise GraphdynError(f"need at least one particle, got {n_nodes}", field="n_nodes")
        self.n_nodes = int(n_nodes)
        self.dim = int(dim)
        self.masses = per_item(masses, self.n_nodes, "m", positive=True)
        self.edge_index = edge_index.to(torch.long)
        self._cache: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}

    # ------------------------------------------------------------------ physics
    def forces(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Forces ``[..., N, D]`` at positions ``x [..., N, D]``."""
        raise NotImplementedError

    def potential_energy(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Potential energy ``[...]`` at positions ``x [..., N, D]``."""
        raise NotImplementedError

    def acceleration(self, x: torch.Tensor) -> torch.Tensor:
        """a_i = F_i / m_i, ``[..., N, D]``."""
        return self.forces(x) / self.const("masses", x)[:, None]

    def kinetic_energy(self, v: torch.Tensor) -> torch.Tensor:
        """K = sum_i 1/2 m_i |v_i|^2, ``[...]`` from ``v [..., N, D]``."""
        return 0.5 * (self.const("masses", v)[:, None] * v * v).sum(dim=(-2, -1))

    def energy(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Total energy K(v) + U(x), ``[...]``."""
        return self.kinetic_energy(v) + self.potential_energy(x)

    # ------------------------------------------------------------------ data
    def node_attr(self) -> np.ndarray:
        """Static node features ``[N, A]`` written to the trajectory (masses by default)."""
        return self.masses.numpy()[:, None].copy()

    def edge_attr(self) -> np.ndarray | None:
        """Static edge features ``[E, K]`` or None."""
        return None

    def to_metadata(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """JSON-serialisable constants, with ``kind``; inverse of :meth:`from_metadata`."""
        raise NotImplementedError

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> "System":  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def const(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """The float64 attribute ``name`` cast to ``like``'s dtype and device (cached)."""
        key = (name, like.dtype, like.device)
        out = self._cache.get(key)
        if out is None:
            out = getattr(self, name).to(dtype=like.dtype, device=like.device)
            self._cache[key] = out
        return out

    def index(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """An integer attribute moved to ``like``'s device (cached)."""
        key = (name, torch.long, like.device)
        out = self._cache.get(key)
        if out is None:
            out = getattr(self, name).to(device=like.device)
            self._cache[key] = out
        return out

    def check_positions(self, x: torch.Tensor) -> None:
        if x.shape[-2:] != (self.n_nodes, self.dim):
            raise GraphdynError(
                f"{self.kind} system has {self.n_nodes} particles in {self.dim}-D; got positions of shape {tuple(x.shape)}",
                field="positions",
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_nodes={self.n_nodes}, dim={self.dim})"


def per_item(value: Any, n: int, name: str, *, positive: bool = False, nonnegative: bool = False) -> torch.Tensor:
    """A scalar or a length-``n`` sequence -> float64 tensor ``[n]``, validated."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise GraphdynError(f"expected one number or a list of {n}, got {arr.size} values", field=name)
    if not np.isfinite(arr).all():
        raise GraphdynError("values must be finite", field=name)
    if positive and (arr <= 0).any():
        raise GraphdynError(f"values must be positive, got {arr.tolist()}", field=name)
    if nonnegative and (arr < 0).any():
        raise GraphdynError(f"values must be non-negative, got {arr.tolist()}", field=name)
    return torch.as_tensor(arr)

