"""Seeded, vectorised generation of many runs of one system into a :class:`Trajectory`.

All runs are integrated together as one ``[R, N, D]`` tensor, so generating ten thousand
systems costs about as many Python steps as generating one.

Two modes (the same machinery; the mode records the intent and sets the default length):

* ``"snapshots"`` -- the notebook's data: every run is a fresh random state followed by one
  integrator step (``frames = 2``), so samples are independent and not connected in time.
* ``"trajectory"`` -- time-evolved runs of ``frames`` frames, ``record_every`` integrator
  steps apart (default 100 frames).

Initial conditions: positions ``~ N(0, pos_std^2)`` and velocities ``~ N(0, vel_std^2)``
per component (the notebook's 0.5 and 0.3 for springs). With ``zero_momentum`` (used for the
n-body systems) the centre of mass is moved to the origin and the mass-weighted mean
velocity removed, so a run does not drift out of view.

Noise, both off by default:

* ``force_noise_std`` -- Gaussian noise added to every force component at every force
  evaluation during integration: random external kicks that change the trajectory itself
  (the notebook's commented ``forces += randn * 0.1``). The recorded ``forces`` and
  ``energy`` are the clean conservative ones at the recorded states.
* ``position_noise_std`` -- Gaussian measurement noise added to the *recorded* positions
  only, after integration: the dynamics, velocities, forces and energies are untouched.
"""

from __future__ import annotations

from typing import Any

import torch

from graphdyn.trajectory import Trajectory
from graphdyn.errors import GraphdynError
from graphdyn.physics.integrators import Dynamics, integrator_step
from graphdyn.physics.system import System

MODES = ("snapshots", "trajectory")
DEFAULT_FRAMES = {"snapshots": 2, "trajectory": 100}


def initial_state(
    system: System,
    n_runs: int,
    *,
    pos_std: float,
    vel_std: float,
    zero_momentum: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random states ``x0, v0 [R, N, D]`` (positions drawn first, then velocities)."""
    shape = (int(n_runs), system.n_nodes, system.dim)
    x = torch.randn(shape, generator=generator, dtype=dtype) * pos_std
    v = torch.randn(shape, generator=generator, dtype=dtype) * vel_std
    if zero_momentum:
        w = (system.masses / system.masses.sum()).to(dtype)[:, None]  # [N, 1]
        x = x - (w * x).sum(-2, keepdim=True)
        v = v - (w * v).sum(-2, keepdim=True)
    return x, v


def generate(
    system: System,
    *,
    n_runs: int,
    dt: float,
    integrator: str = "semi_implicit_euler",
    mode: str = "snapshots",
    frames: int | None = None,
    record_every: int = 1,
    pos_std: float = 0.5,
    vel_std: float = 0.3,
    zero_momentum: bool = False,
    force_noise_std: float = 0.0,
    position_noise_std: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    units: dict[str, str] | None = None,
) -> Trajectory:
    """Simulate ``n_runs`` independent runs of ``system``.

    Args:
        system: the system (shared constants; runs differ in their initial state).
        n_runs: ``R``, number of runs (samples in snapshot mode).
        dt: integrator time step; frames are ``record_every * dt`` apart.
        integrator: ``"semi_implicit_euler"`` or ``"velocity_verlet"``.
        mode: ``"snapshots"`` or ``"trajectory"`` (see the module docstring).
        frames: ``F`` frames per run including the initial state; default 2 for snapshots,
            100 for trajectories.
        record_every: integrator steps between saved frames.
        pos_std, vel_std, zero_momentum: initial conditions.
        force_noise_std, position_noise_std: noise, see the module docstring.
        seed: seeds every random draw (initial states, then force noise, then measurement noise).
        dtype: dtype of the integration (float64 by default).

    Returns:
        A :class:`Trajectory` with positions, velocities, forces ``[R, F, N, D]``, energy
        ``[R, F]``, node_attr ``[N, A]`` (masses, or charges for charged particles),
        edge_index ``[2, E]`` (both directions, row 0 receiver), ``dt = record_every * dt``,
        and metadata ``{"system", "integrator", "dt", "record_every", "mode", "seed", ...}``
        from which :func:`graphdyn.physics.dynamics_from_metadata` rebuilds the physics.
    """
    if mode not in MODES:
        raise GraphdynError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}", field="mode")
    integrator_step(integrator)
    frames = DEFAULT_FRAMES[mode] if frames is None else int(frames)
    if frames < 1:
        raise GraphdynError(f"frames must be at least 1, got {frames}", field="frames")
    if int(n_runs) < 1:
        raise GraphdynError(f"need at least one run, got {n_runs}", field="n_runs")
    for name, value in (("pos_std", pos_std), ("vel_std", vel_std), ("force_noise_std", force_noise_std), ("position_noise_std", position_noise_std)):
        if not float(value) >= 0:
            raise GraphdynError(f"must be >= 0, got {value}", field=name)

    gen = torch.Generator().manual_seed(int(seed))
    dynamics = Dynamics(system, dt, integrator, substeps=record_every, force_noise_std=force_noise_std, dtype=dtype, generator=gen)
    with torch.no_grad():
        x0, v0 = initial_state(system, n_runs, pos_std=pos_std, vel_std=vel_std, zero_momentum=zero_momentum, generator=gen, dtype=dtype)
        if frames > 1:
            X, V = dynamics.rollout(x0, v0, frames - 1)
            X = torch.cat([x0[:, None], X], dim=1)
            V = torch.cat([v0[:, None], V], dim=1)
        else:
            X, V = x0[:, None], v0[:, None]
        energy = system.energy(X, V)
        forces = system.forces(X)
        if position_noise_std > 0:
            X = X + torch.randn(X.shape, generator=gen, dtype=dtype) * position_noise_std

    metadata: dict[str, Any] = {
        "system": system.to_metadata(),
        "integrator": integrator,
        "dt": float(dt),
        "record_every": int(record_every),
        "mode": mode,
        "seed": int(seed),
        "pos_std": float(pos_std),
        "vel_std": float(vel_std),
        "zero_momentum": bool(zero_momentum),
        "force_noise_std": float(force_noise_std),
        "position_noise_std": float(position_noise_std),
    }
    return Trajectory(
        positions=X.numpy(),
        velocities=V.numpy(),
        forces=forces.numpy(),
        energy=energy.numpy(),
        node_attr=system.node_attr(),
        edge_index=system.edge_index.numpy(),
        edge_attr=system.edge_attr(),
        dt=float(dt) * int(record_every),
        units=dict(units) if units is not None else default_units(system),
        metadata=metadata,
    )


def default_units(system: System) -> dict[str, str]:
    """Reduced (dimensionless) units: every constant is a plain number."""
    units = {"length": "reduced", "time": "reduced", "mass": "reduced", "energy": "reduced"}
    if system.kind == "charged":
        units["charge"] = "reduced"
    return units
