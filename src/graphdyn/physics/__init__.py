"""Physics: simulated systems, integrators and the data generators built on them.

Files, one concern each:

* ``system.py``       -- the :class:`System` interface (forces, energies, metadata);
* ``springs.py``      -- spring networks on chains, rings and random graphs;
* ``nbody.py``        -- charged particles (Coulomb) and gravitating bodies;
* ``integrators.py``  -- semi-implicit Euler, velocity Verlet and :class:`Dynamics`;
* ``registry.py``     -- systems and dynamics rebuilt from their metadata;
* ``generate.py``     -- seeded, vectorised generation of many runs into a Trajectory.

Everything is torch, float64 by default, and vectorised over leading batch dimensions:
positions and velocities are ``[..., N, D]``.
"""

from graphdyn.physics.generate import generate, initial_state
from graphdyn.physics.integrators import (
    INTEGRATORS,
    Dynamics,
    semi_implicit_euler_step,
    velocity_verlet_step,
)
from graphdyn.physics.nbody import ChargedSystem, GravitySystem
from graphdyn.physics.registry import SYSTEMS, dynamics_from_metadata, from_metadata
from graphdyn.physics.springs import SpringSystem, chain_graph, random_graph, ring_graph
from graphdyn.physics.system import System

__all__ = [
    "System",
    "SpringSystem",
    "ChargedSystem",
    "GravitySystem",
    "Dynamics",
    "INTEGRATORS",
    "SYSTEMS",
    "semi_implicit_euler_step",
    "velocity_verlet_step",
    "chain_graph",
    "ring_graph",
    "random_graph",
    "from_metadata",
    "dynamics_from_metadata",
    "generate",
    "initial_state",
]
