"""Simulated datasets (springs, charged, gravity) and trajectory files, for the dataset registry.

Each builder has the registry signature ``build(options, window, seed) -> DataSplits``:

* ``springs`` -- spring networks; the defaults are the teaching notebook (3 masses on a 1-D
  chain, k = m = 1, dt = 0.01, positions ~ N(0, 0.5^2), velocities ~ N(0, 0.3^2), random
  snapshots, semi-implicit Euler, 1000 / 200 / 200 samples).
* ``charged`` -- 5 particles with charges ±1 (Coulomb, softening 0.1) in 3-D.
* ``gravity`` -- 5 unit masses under gravity (G = 1, softening 0.1) in 3-D.
* ``file`` -- a graphdyn trajectory ``.npz``; true dynamics from its metadata when present.

For the n-body systems the standard initial conditions are positions ~ N(0, 1) per
component, velocities ~ N(0, 0.5^2), both moved to the centre-of-mass frame (zero total
momentum), integrated with velocity Verlet at dt = 0.001 and recorded every 10 steps for 100
frames; with these, the worst run's energy drifts by under 1e-3 of its energy scale (see
``tests/physics/test_nbody.py``).

Train, validation and test are generated from three seeds derived from the run ``seed``, so
they never share a system state; the system itself (graph, charges) comes from a fourth
derived seed and is the same in all three. In ``snapshots`` mode ``n_*`` count samples:
every run is one window (a random state and ``T * delta`` further steps, 2 frames for the
notebook's ``T = delta = 1``). In ``trajectory`` mode ``n_*`` count runs of ``frames``
frames, each giving ``frames - T * delta`` windows.

The returned ``dynamics`` steps once per window stride (``delta`` frames, ``delta *
record_every`` integrator steps), for rollouts against the true physics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
from pydantic import Field

from graphdyn.data.registry import SPLIT_NAMES, DataSplits, Options, Window, parse_options
from graphdyn.data.trajectory import Trajectory
from graphdyn.data.windows import WindowDataset
from graphdyn.errors import GraphdynError
from graphdyn.physics.generate import DEFAULT_FRAMES, generate
from graphdyn.physics.integrators import Dynamics
from graphdyn.physics.nbody import ChargedSystem, GravitySystem
from graphdyn.physics.registry import dynamics_from_metadata
from graphdyn.physics.springs import SpringSystem
from graphdyn.physics.system import System

_SYSTEM_SEED_KEY = 3  # derived-seed key of the system (after train 0, val 1, test 2)
Numbers = Union[float, list[float]]


# ---------------------------------------------------------------------- options
class SimulatedOptions(Options):
    """Options shared by the simulated datasets (each subclass sets its own defaults)."""

    dt: float = Field(0.01, gt=0, description="integrator time step")
    integrator: Literal["semi_implicit_euler", "velocity_verlet"] = "semi_implicit_euler"
    mode: Literal["snapshots", "trajectory"] = "snapshots"
    n_train: int = Field(1000, ge=1, description="samples (snapshots) or runs (trajectory)")
    n_val: int = Field(200, ge=1)
    n_test: int = Field(200, ge=1)
    frames: int | None = Field(None, ge=2, description="frames per run, trajectory mode only (default 100)")
    record_every: int = Field(1, ge=1, description="integrator steps between recorded frames")
    pos_std: float = Field(0.5, ge=0, description="initial positions ~ N(0, pos_std^2)")
    vel_std: float = Field(0.3, ge=0, description="initial velocities ~ N(0, vel_std^2)")
    zero_momentum: bool = Field(False, description="start in the centre-of-mass frame")
    force_noise_std: float = Field(0.0, ge=0, description="noise added to forces at every step (random kicks)")
    position_noise_std: float = Field(0.0, ge=0, description="measurement noise on recorded positions")


class SpringsOptions(SimulatedOptions):
    """Spring networks; defaults are the notebook's 3-mass chain."""

    n_masses: int = Field(3, ge=1)
    dim: Literal[1, 2, 3] = 1
    graph: Literal["chain", "ring", "random"] = "chain"
    edge_prob: float = Field(0.5, ge=0, le=1, description="extra-edge probability of the random graph")
    graph_seed: int | None = Field(None, description="seed of the random graph (default: derived from the run seed)")
    k: Numbers = Field(1.0, description="spring constant, one number or one per spring")
    m: Numbers = Field(1.0, description="mass, one number or one per mass")
    rest_length: Numbers = Field(0.0, description="rest length, one number or one per spring")


class NBodyOptions(SimulatedOptions):
    """What the n-body systems share: 5 particles in 3-D, Verlet at dt 0.001, every 10th step."""

    n_particles: int = Field(5, ge=2)
    dim: Literal[1, 2, 3] = 3
    m: Numbers = 1.0
    softening: float = Field(0.1, ge=0)
    dt: float = Field(0.001, gt=0)
    integrator: Literal["semi_implicit_euler", "velocity_verlet"] = "velocity_verlet"
    mode: Literal["snapshots", "trajectory"] = "trajectory"
    record_every: int = Field(10, ge=1)
    pos_std: float = Field(1.0, ge=0)
    vel_std: float = Field(0.5, ge=0)
    zero_momentum: bool = True


class ChargedOptions(NBodyOptions):
    """Charged particles (Coulomb), 3-D by default."""

    charges: list[float] | None = Field(None, description="charges, setting n_particles (default: random ±1 from the seed)")
    coulomb_k: float = 1.0


class GravityOptions(NBodyOptions):
    """Gravitating bodies, 3-D by default."""

    G: float = Field(1.0, gt=0)


OPTIONS: dict[str, type[SimulatedOptions]] = {"springs": SpringsOptions, "charged": ChargedOptions, "gravity": GravityOptions}


# ---------------------------------------------------------------------- seeds and systems
def derive_seed(seed: int, key: int) -> int:
    """An independent 63-bit seed for stream ``key`` of run seed ``seed``."""
    state = np.random.SeedSequence([int(seed) % 2**64, int(key)]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def make_system(kind: str, opts: SimulatedOptions, seed: int, prefix: str = "data.options") -> System:
    """The system of dataset ``kind`` from its options; random parts come from ``seed``."""
    sys_seed = derive_seed(seed, _SYSTEM_SEED_KEY)
    try:
        if kind == "springs":
            graph_seed = sys_seed if opts.graph_seed is None else opts.graph_seed
            return SpringSystem.build(opts.n_masses, opts.dim, opts.graph, opts.k, opts.m, opts.rest_length, opts.edge_prob, graph_seed)
        if kind == "charged":
            charges = opts.charges
            if charges is None:
                rng = np.random.default_rng(sys_seed)
                charges = rng.choice([-1.0, 1.0], size=opts.n_particles).tolist()
            elif len(charges) != opts.n_particles and "n_particles" in opts.model_fields_set:
                raise GraphdynError(f"{len(charges)} charges given for n_particles={opts.n_particles}", field="charges")
            return ChargedSystem(charges, opts.dim, opts.m, opts.coulomb_k, opts.softening)
        if kind == "gravity":
            return GravitySystem(opts.n_particles, opts.dim, opts.m, opts.G, opts.softening)
    except GraphdynError as exc:
        field = exc.field if exc.field is None or not prefix else f"{prefix}.{exc.field}"
        raise GraphdynError(exc.problem, path=exc.path, field=field) from None
    raise GraphdynError(f"unknown simulated system {kind!r}; choose one of {', '.join(OPTIONS)}", field="kind")


def simulate(kind: str, opts: SimulatedOptions, n_runs: int, seed: int, frames: int | None = None, system: System | None = None) -> Trajectory:
    """``n_runs`` runs of dataset ``kind`` with options ``opts`` (used by ``graphdyn simulate``).

    ``frames`` defaults to ``opts.frames``, else 2 in snapshot mode and 100 in trajectory mode.
    """
    system = make_system(kind, opts, seed) if system is None else system
    return generate(
        system,
        n_runs=n_runs,
        dt=opts.dt,
        integrator=opts.integrator,
        mode=opts.mode,
        frames=frames if frames is not None else opts.frames,
        record_every=opts.record_every,
        pos_std=opts.pos_std,
        vel_std=opts.vel_std,
        zero_momentum=opts.zero_momentum,
        force_noise_std=opts.force_noise_std,
        position_noise_std=opts.position_noise_std,
        seed=seed,
    )


# ---------------------------------------------------------------------- builders
def build_springs(options: dict[str, Any], window: Window, seed: int) -> DataSplits:
    """Registry builder of ``springs`` (options: :class:`SpringsOptions`)."""
    return _build_simulated("springs", parse_options(SpringsOptions, options), window, seed)


def build_charged(options: dict[str, Any], window: Window, seed: int) -> DataSplits:
    """Registry builder of ``charged`` (options: :class:`ChargedOptions`)."""
    return _build_simulated("charged", parse_options(ChargedOptions, options), window, seed)


def build_gravity(options: dict[str, Any], window: Window, seed: int) -> DataSplits:
    """Registry builder of ``gravity`` (options: :class:`GravityOptions`)."""
    return _build_simulated("gravity", parse_options(GravityOptions, options), window, seed)


def _window(window: Window) -> tuple[int, int]:
    T = 1 if window.T is None else int(window.T)
    delta = 1 if window.delta is None else int(window.delta)
    if T < 1 or delta < 1:
        raise GraphdynError(f"T and delta must be at least 1, got T={T}, delta={delta}", field="data.T" if T < 1 else "data.delta")
    return T, delta


def _build_simulated(kind: str, opts: SimulatedOptions, window: Window, seed: int) -> DataSplits:
    T, delta = _window(window)
    span = T * delta
    if opts.mode == "snapshots":
        if opts.frames is not None:
            raise GraphdynError(
                f"frames applies to mode 'trajectory'; a snapshot sample always has T * delta + 1 = {span + 1} frames",
                field="data.options.frames",
            )
        frames = span + 1
    else:
        frames = DEFAULT_FRAMES["trajectory"] if opts.frames is None else opts.frames
        if frames <= span:
            raise GraphdynError(
                f"a window of T={T} frames spaced delta={delta} needs {span + 1} frames per run; frames is {frames} "
                "(raise frames or lower data.T / data.delta)",
                field="data.options.frames",
            )
    system = make_system(kind, opts, seed)
    counts = (opts.n_train, opts.n_val, opts.n_test)
    seeds = {name: derive_seed(seed, i) for i, name in enumerate(SPLIT_NAMES)}
    trajs = {name: simulate(kind, opts, n, seeds[name], frames, system) for name, n in zip(SPLIT_NAMES, counts)}
    sets = {name: WindowDataset(traj, T=T, delta=delta) for name, traj in trajs.items()}
    dynamics = Dynamics(system, opts.dt, opts.integrator, substeps=opts.record_every * delta)
    description = {
        "dataset": kind,
        **{k: v for k, v in trajs["train"].describe().items() if k not in ("runs", "checksum")},
        "T": T,
        "delta": delta,
        "window_dt": dynamics.frame_dt,
        "options": opts.model_dump(),
        "samples": {name: len(ds) for name, ds in sets.items()},
        "runs": {name: traj.n_runs for name, traj in trajs.items()},
        "split": {
            "procedure": "independent simulations per split, seeds derived from the run seed",
            "seed": int(seed),
            "seeds": seeds,
            "checksums": {name: traj.checksum() for name, traj in trajs.items()},
        },
    }
    return DataSplits(kind, sets["train"], sets["val"], sets["test"], description=description, dynamics=dynamics)


# ---------------------------------------------------------------------- trajectory files
class FileOptions(Options):
    """A graphdyn trajectory ``.npz`` split into train / val / test.

    ``split_by``: ``runs`` gives each split whole runs (shuffled with the run seed), so no
    split sees another's system; ``windows`` splits the windows of each run in time order
    (train first; windows at a boundary may share frames); ``auto`` splits runs when every
    split gets at least one, else windows.
    """

    path: str
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test fractions
    split_by: Literal["auto", "runs", "windows"] = "auto"
    use_dynamics: bool = Field(True, description="rebuild the true physics from the file's metadata when present")


def build_file(options: dict[str, Any], window: Window, seed: int) -> DataSplits:
    """Registry builder of ``file`` (options: :class:`FileOptions`)."""
    opts = parse_options(FileOptions, options)
    if any(f < 0 for f in opts.split) or sum(opts.split) > 1 + 1e-9:
        raise GraphdynError(f"split fractions must be non-negative and sum to at most 1, got {list(opts.split)}", field="data.options.split")
    path = Path(opts.path).expanduser()
    traj = Trajectory.load(path)
    T, delta = _window(window)
    if T * delta >= traj.n_frames:
        raise GraphdynError(
            f"a window of T={T} frames spaced delta={delta} needs {T * delta + 1} frames; the file has {traj.n_frames} per run",
            path=path, field="data.T",
        )
    counts = [int(round(f * traj.n_runs)) for f in opts.split]
    by_runs = opts.split_by == "runs" or (opts.split_by == "auto" and min(counts) >= 1)
    if by_runs:
        order = np.random.default_rng(derive_seed(seed, 0)).permutation(traj.n_runs)
        bounds = np.cumsum([0] + counts)
        parts = [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        for name, part in zip(SPLIT_NAMES, parts):
            if len(part) == 0:
                raise GraphdynError(
                    f"split {list(opts.split)} of {traj.n_runs} runs leaves '{name}' empty; use more runs or split_by: windows",
                    path=path, field="data.options.split",
                )
        sets = [WindowDataset(traj.select_runs(part), T=T, delta=delta) for part in parts]
    else:
        sets = WindowDataset(traj, T=T, delta=delta).split(tuple(opts.split), chronological=True)
        for name, ds in zip(SPLIT_NAMES, sets):
            if len(ds) == 0:
                raise GraphdynError(f"split {list(opts.split)} leaves '{name}' without windows", path=path, field="data.options.split")
    dynamics = _file_dynamics(traj, path, delta) if opts.use_dynamics else None
    description = {
        "dataset": "file",
        "path": str(path),
        **traj.describe(),
        "T": T,
        "delta": delta,
        "options": opts.model_dump(),
        "samples": {name: len(ds) for name, ds in zip(SPLIT_NAMES, sets)},
        "split": {"by": "runs" if by_runs else "windows", "seed": int(seed), "fractions": list(opts.split)},
        "true_dynamics": dynamics is not None,
    }
    return DataSplits("file", *sets, description=description, dynamics=dynamics)


def _file_dynamics(traj: Trajectory, path: Path, delta: int) -> Dynamics | None:
    """The file's true physics, stepping once per window stride, or None without metadata."""
    meta = traj.metadata
    if "system" not in meta:
        return None
    try:
        base = dynamics_from_metadata(meta)
    except GraphdynError as exc:
        raise GraphdynError(exc.problem, path=path, field=f"metadata.{exc.field}" if exc.field else "metadata") from None
    system = base.system
    if (system.n_nodes, system.dim) != (traj.n_nodes, traj.dim) or traj.n_channels is not None:
        raise GraphdynError(
            f"metadata describes {system.n_nodes} particles in {system.dim}-D; the positions have shape {traj.positions.shape}",
            path=path, field="metadata.system",
        )
    if not np.isclose(base.frame_dt, traj.dt, rtol=1e-9, atol=0):
        raise GraphdynError(
            f"frames are {traj.dt} apart but the metadata's dt * record_every is {base.frame_dt}",
            path=path, field="metadata.dt",
        )
    return base.with_substeps(base.substeps * delta)


__all__ = [
    "SpringsOptions",
    "ChargedOptions",
    "GravityOptions",
    "FileOptions",
    "build_springs",
    "build_charged",
    "build_gravity",
    "build_file",
    "make_system",
    "simulate",
    "derive_seed",
]
