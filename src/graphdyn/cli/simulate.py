"""``graphdyn simulate``: write simulated trajectories (springs, charged, gravity) as ``.npz``.

Every option left out takes the dataset default of :mod:`graphdyn.data.simulated` (the
notebook's constants for springs), so the CLI and the training configs never disagree. The
file is the documented trajectory format, written atomically; its metadata holds every
constant, the integrator and the seed, so ``graphdyn train`` with ``data.source: file``
rebuilds the true physics from it. The ``molecule`` command is added by
:mod:`graphdyn.cli.simulate_molecule`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from graphdyn.errors import GraphdynError

simulate_app = typer.Typer(
    help="Simulate physical systems and write trajectory .npz files.",
    no_args_is_help=True,
)


def _opt(kind: str, field: str, text: str, *names: str) -> Any:
    """A Typer option defaulting to None ("the dataset default"), whose help shows that default."""
    from graphdyn.data.simulated import OPTIONS

    default = OPTIONS[kind].model_fields[field].default
    shown = "none" if default is None else (str(default).lower() if isinstance(default, bool) else default)
    return typer.Option(None, *names, help=f"{text} (default: {shown})")


def _common(kind: str) -> dict[str, Any]:
    """Options every system shares, with ``kind``'s defaults in their help."""
    return {
        "dt": _opt(kind, "dt", "Integrator time step."),
        "integrator": _opt(kind, "integrator", "semi_implicit_euler (the notebook's) or velocity_verlet."),
        "mode": _opt(kind, "mode", "snapshots (random states, each followed by one step: the notebook) or trajectory."),
        "record_every": _opt(kind, "record_every", "Integrator steps between recorded frames."),
        "pos_std": _opt(kind, "pos_std", "Initial positions ~ N(0, pos_std^2)."),
        "vel_std": _opt(kind, "vel_std", "Initial velocities ~ N(0, vel_std^2)."),
        "zero_momentum": _opt(kind, "zero_momentum", "Start in the centre-of-mass frame.", "--zero-momentum/--no-zero-momentum"),
        "force_noise_std": _opt(kind, "force_noise_std", "Std of noise added to every force component at every step (random kicks)."),
        "position_noise_std": _opt(kind, "position_noise_std", "Std of measurement noise added to the recorded positions only."),
        "dim": _opt(kind, "dim", "Spatial dimensions, 1, 2 or 3."),
        "m": _opt(kind, "m", "Mass: one number, or a comma-separated list, one per particle.", "--m"),
    }


OUT = typer.Option(..., "--out", help="Output trajectory .npz (written atomically).")
SEED = typer.Option(0, help="Seed of the initial states, the random parts of the system and the noise.")
RUNS = typer.Option(None, help="Independent runs (samples in snapshot mode). (default: 1000)")
FRAMES = typer.Option(None, help="Frames per run, initial state included. (default: 2 for snapshots, 100 for trajectory)")
_S, _C, _G = _common("springs"), _common("charged"), _common("gravity")


@simulate_app.command("springs")
def springs(
    out: Path = OUT,
    seed: int = SEED,
    runs: Optional[int] = RUNS,
    frames: Optional[int] = FRAMES,
    n_masses: Optional[int] = _opt("springs", "n_masses", "Number of masses."),
    dim: Optional[int] = _S["dim"],
    graph: Optional[str] = _opt("springs", "graph", "chain, ring or random (seeded, connected)."),
    edge_prob: Optional[float] = _opt("springs", "edge_prob", "Probability of each extra edge of a random graph."),
    graph_seed: Optional[int] = _opt("springs", "graph_seed", "Seed of the random graph; none derives it from --seed."),
    k: Optional[str] = _opt("springs", "k", "Spring constant: one number or a comma-separated list, one per spring.", "--k"),
    m: Optional[str] = _S["m"],
    rest_length: Optional[str] = _opt("springs", "rest_length", "Rest length: one number or one per spring; 0 is the notebook's F = -k (x_i - x_j)."),
    dt: Optional[float] = _S["dt"],
    integrator: Optional[str] = _S["integrator"],
    mode: Optional[str] = _S["mode"],
    record_every: Optional[int] = _S["record_every"],
    pos_std: Optional[float] = _S["pos_std"],
    vel_std: Optional[float] = _S["vel_std"],
    zero_momentum: Optional[bool] = _S["zero_momentum"],
    force_noise_std: Optional[float] = _S["force_noise_std"],
    position_noise_std: Optional[float] = _S["position_noise_std"],
) -> None:
    """Spring networks on a chain, ring or random graph.

    Defaults are the notebook's: 3 masses on a 1-D chain, k = m = 1, dt = 0.01, positions
    ~ N(0, 0.5^2), velocities ~ N(0, 0.3^2), random snapshots, semi-implicit Euler.
    """
    given = dict(locals())
    _simulate("springs", given)


@simulate_app.command("charged")
def charged(
    out: Path = OUT,
    seed: int = SEED,
    runs: Optional[int] = RUNS,
    frames: Optional[int] = FRAMES,
    n_particles: Optional[int] = _opt("charged", "n_particles", "Number of particles (or the number of --charges)."),
    dim: Optional[int] = _C["dim"],
    charges: Optional[str] = _opt("charged", "charges", "Comma-separated charges, e.g. 1,-1,1; none draws ±1 from --seed."),
    m: Optional[str] = _C["m"],
    coulomb_k: Optional[float] = _opt("charged", "coulomb_k", "Coulomb constant."),
    softening: Optional[float] = _opt("charged", "softening", "Plummer softening length."),
    dt: Optional[float] = _C["dt"],
    integrator: Optional[str] = _C["integrator"],
    mode: Optional[str] = _C["mode"],
    record_every: Optional[int] = _C["record_every"],
    pos_std: Optional[float] = _C["pos_std"],
    vel_std: Optional[float] = _C["vel_std"],
    zero_momentum: Optional[bool] = _C["zero_momentum"],
    force_noise_std: Optional[float] = _C["force_noise_std"],
    position_noise_std: Optional[float] = _C["position_noise_std"],
) -> None:
    """Charged particles under Coulomb's law.

    Defaults: 5 particles with charges ±1 in 3-D, softening 0.1, positions ~ N(0, 1) and
    velocities ~ N(0, 0.5^2) in the centre-of-mass frame, velocity Verlet at dt = 0.001
    recorded every 10 steps, 100-frame trajectories.
    """
    given = dict(locals())
    _simulate("charged", given)


@simulate_app.command("gravity")
def gravity(
    out: Path = OUT,
    seed: int = SEED,
    runs: Optional[int] = RUNS,
    frames: Optional[int] = FRAMES,
    n_particles: Optional[int] = _opt("gravity", "n_particles", "Number of bodies."),
    dim: Optional[int] = _G["dim"],
    m: Optional[str] = _G["m"],
    gravity_constant: Optional[float] = _opt("gravity", "G", "Gravitational constant G.", "--gravity-constant"),
    softening: Optional[float] = _opt("gravity", "softening", "Plummer softening length."),
    dt: Optional[float] = _G["dt"],
    integrator: Optional[str] = _G["integrator"],
    mode: Optional[str] = _G["mode"],
    record_every: Optional[int] = _G["record_every"],
    pos_std: Optional[float] = _G["pos_std"],
    vel_std: Optional[float] = _G["vel_std"],
    zero_momentum: Optional[bool] = _G["zero_momentum"],
    force_noise_std: Optional[float] = _G["force_noise_std"],
    position_noise_std: Optional[float] = _G["position_noise_std"],
) -> None:
    """Gravitating bodies under Newton's law of gravitation.

    Defaults: 5 unit masses in 3-D, G = 1, softening 0.1, positions ~ N(0, 1) and velocities
    ~ N(0, 0.5^2) in the centre-of-mass frame, velocity Verlet at dt = 0.001 recorded every
    10 steps, 100-frame trajectories.
    """
    given = dict(locals())
    given["G"] = given.pop("gravity_constant")
    _simulate("gravity", given)


_LIST_OPTIONS = ("k", "m", "rest_length", "charges")
_FLAGS = {"G": "--gravity-constant"}


def _flag(field: str) -> str:
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def _numbers(field: str, text: str) -> float | list[float]:
    """``"1.5"`` -> 1.5, ``"1,-1,1"`` -> [1.0, -1.0, 1.0]."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise GraphdynError(f"expected a number or comma-separated numbers, got {text!r}", field=_flag(field)) from None
    return values if ("," in text or field == "charges") else values[0]


def _simulate(kind: str, given: dict[str, Any]) -> None:
    """Validate the options, simulate, write the file atomically, print one line."""
    from pydantic import ValidationError

    from graphdyn.data.simulated import OPTIONS, make_system, simulate

    out: Path = given.pop("out")
    seed: int = given.pop("seed")
    runs = given.pop("runs")
    runs = 1000 if runs is None else runs
    if runs < 1:
        raise GraphdynError(f"need at least one run, got {runs}", field="--runs")
    if out.suffix != ".npz":
        raise GraphdynError("output must end in .npz", path=out, field="--out")
    options = {key: value for key, value in given.items() if value is not None}
    for key in _LIST_OPTIONS:
        if key in options:
            options[key] = _numbers(key, options[key])
    try:
        opts = OPTIONS[kind](**options)
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = _flag(str(err["loc"][0])) if err["loc"] else f"graphdyn simulate {kind}"
        raise GraphdynError(str(err["msg"]), field=flag) from None
    try:
        system = make_system(kind, opts, seed, prefix="")
    except GraphdynError as exc:
        raise GraphdynError(exc.problem, field=_flag(exc.field) if exc.field else None) from None
    traj = simulate(kind, opts, runs, seed, system=system)
    traj.save(out)
    drift = abs(traj.energy - traj.energy[:, :1]).max()
    typer.echo(
        f"wrote {out}: {kind}, {traj.n_runs} runs x {traj.n_frames} frames x {traj.n_nodes} particles in {traj.dim}-D, "
        f"frame dt {traj.dt:g} ({opts.integrator}, mode {opts.mode}), max energy change {drift:.3g}, checksum {traj.checksum()}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` group (springs, charged, gravity, molecule) to ``app``."""
    from graphdyn.cli import simulate_molecule

    simulate_molecule.register(simulate_app)
    app.add_typer(simulate_app, name="simulate")
