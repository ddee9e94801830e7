"""``graphdyn check-*`` commands: checks of the implementation against references and symmetries."""

from __future__ import annotations

from pathlib import Path

import typer


def check_reference_command(
    fixture: Path = typer.Argument(..., help="Reference fixture .npz (layout of shared/fixtures/README.md)."),
    tol: float = typer.Option(1e-8, "--tol", help="Largest allowed absolute deviation."),
) -> None:
    """Run ESTAG in float64 on a reference fixture; print the max deviation per array.

    Exit code 0 when every deviation is at most --tol, 1 otherwise, 2 for a bad file.
    """
    from graphdyn.evaluation.reference import check_reference

    devs = check_reference(fixture)
    width = max(len(k) for k in devs)
    for name, dev in devs.items():
        flag = "" if dev <= tol else "  > tol"
        typer.echo(f"{name:<{width}}  {dev:.3e}{flag}")
    worst = max(devs.values())
    ok = worst <= tol
    typer.echo(f"max deviation {worst:.3e} (tolerance {tol:.1e}): {'OK' if ok else 'FAIL'}")
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the check commands to ``app``."""
    app.command("check-reference")(check_reference_command)
