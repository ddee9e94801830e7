"""The notebook's 3-mass spring chain written out with its own formulas: test data shared by
several test modules (imported as ``spring_chain``; ``tests/`` is on the path via its conftest)."""

from __future__ import annotations

import numpy as np

from graphdyn import Trajectory

CHAIN3_EDGES = np.array([[1, 0, 2, 1], [0, 1, 1, 2]])  # receiver row, sender row: 0-1 and 1-2 both ways


def notebook_snapshots(n: int, seed: int = 0, dt: float = 0.01) -> Trajectory:
    """The notebook's random snapshots, written out with its explicit formulas (k = m = 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.5, (n, 1, 3, 1))
    v = rng.normal(0, 0.3, (n, 1, 3, 1))
    f = np.zeros_like(x)
    f[:, :, 0] = -(x[:, :, 0] - x[:, :, 1])
    f[:, :, 1] = -(x[:, :, 1] - x[:, :, 0]) - (x[:, :, 1] - x[:, :, 2])
    f[:, :, 2] = -(x[:, :, 2] - x[:, :, 1])
    v1 = v + f * dt
    x1 = x + v1 * dt
    return Trajectory(positions=np.concatenate([x, x1], 1), velocities=np.concatenate([v, v1], 1), edge_index=CHAIN3_EDGES, dt=dt)
