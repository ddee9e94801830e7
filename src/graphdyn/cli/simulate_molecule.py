"""``graphdyn simulate molecule``: MD17-format trajectories of any molecule by GFN2-xTB MD.

Registered on the ``simulate`` group by :mod:`graphdyn.cli.simulate`. Needs the optional
``md`` extra (rdkit, ase, tblite); without it the command fails with one line saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from graphdyn.errors import GraphdynError


def molecule(
    smiles: Optional[list[str]] = typer.Option(None, "--smiles", help="SMILES of a neutral molecule; repeat for several molecules."),
    molecule_name: Optional[list[str]] = typer.Option(None, "--molecule", help="An MD17 molecule by name (aspirin, benzene, ethanol, malonaldehyde, naphthalene, salicylic, toluene, uracil); repeatable."),
    out: list[Path] = typer.Option(..., "--out", help="Output .npz (MD17 format), one per molecule, in the order --smiles then --molecule."),
    steps: int = typer.Option(20000, help="Langevin steps after equilibration."),
    temperature: float = typer.Option(500.0, help="Thermostat temperature in K."),
    dt: float = typer.Option(0.5, help="Time step in fs."),
    friction: float = typer.Option(0.01, help="Langevin friction in 1/fs."),
    record_every: int = typer.Option(1, help="Record a frame every this many steps."),
    equilibration: int = typer.Option(0, help="Steps run and discarded before recording."),
    seed: int = typer.Option(0, help="Seed of the conformer and the dynamics; molecule k uses seed + k."),
    jobs: int = typer.Option(1, help="Molecules simulated in parallel, one single-threaded process each."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Molecular dynamics of any molecule (RDKit embedding, ASE Langevin, GFN2-xTB forces).

    Writes one MD17-format .npz per molecule: R (Angstrom), z, E (eV), F (eV/Angstrom).

    Frames: steps // record_every + 1, dt * record_every fs apart; metadata keys alongside.
    """
    from graphdyn.physics.molecule import MD17_SMILES, MDConfig, parse_smiles, simulate_many

    names = list(molecule_name or [])
    unknown = [n for n in names if n.lower() not in MD17_SMILES]
    if unknown:
        raise GraphdynError(f"unknown MD17 molecule '{unknown[0]}'; known: {', '.join(MD17_SMILES)}", field="molecule")
    molecules = list(smiles or []) + [MD17_SMILES[n.lower()] for n in names]
    if not molecules:
        raise GraphdynError("give at least one --smiles or --molecule", field="smiles")
    if len(out) != len(molecules):
        raise GraphdynError(f"{len(molecules)} molecule(s) but {len(out)} --out file(s); give one --out per molecule", field="out")
    if len({p.resolve() for p in out}) != len(out):
        raise GraphdynError("two molecules would be written to the same --out file", field="out")
    for path in out:
        if path.suffix != ".npz":
            raise GraphdynError("output must end in .npz", path=path, field="out")
    for s in molecules:
        parse_smiles(s)  # a bad SMILES fails before any progress bar or process starts
    configs = [
        MDConfig(smiles=s, steps=steps, temperature=temperature, dt=dt, friction=friction,
                 record_every=record_every, seed=seed + k, equilibration=equilibration)
        for k, s in enumerate(molecules)
    ]
    if quiet:
        paths = simulate_many(configs, out, jobs=jobs)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
            tasks = [bar.add_task(c.smiles if len(c.smiles) <= 40 else c.smiles[:37] + "...", total=c.total_steps)
                     for c in configs]
            paths = simulate_many(configs, out, jobs=jobs,
                                  progress=lambda k, done: bar.update(tasks[k], completed=done))
    for path in paths:
        typer.echo(str(path))


def register(simulate_app: typer.Typer) -> None:
    """Add the ``molecule`` command to the ``simulate`` group."""
    simulate_app.command("molecule")(molecule)
