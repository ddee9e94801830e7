"""``graphdyn data``: inspect data files and fetch the paper's datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

data_app = typer.Typer(help="Inspect data files and download the paper's datasets.", no_args_is_help=True)


@data_app.command("info")
def info(path: Path = typer.Argument(..., help="A trajectory .npz, MD17 .npz, ASF/AMC, or topology/trajectory file.")) -> None:
    """Summarise any supported file: frames, nodes, time step, edges."""
    from graphdyn.data.info import describe_file, format_description

    typer.echo(format_description(describe_file(path)))


@data_app.command("download")
def download(
    dataset: str = typer.Argument(..., help="md17 or mocap."),
    molecule: Optional[str] = typer.Option(None, help="MD17 molecule (aspirin, benzene, ethanol, ...)."),
    subject: Optional[int] = typer.Option(None, help="CMU motion-capture subject (35 walk, 102 basketball)."),
    dest: Optional[Path] = typer.Option(None, help="Data folder (default $GRAPHDYN_DATA or the user cache)."),
    base_url: Optional[str] = typer.Option(None, help="Mirror to fetch from instead of the public source."),
) -> None:
    """Fetch a dataset into the data folder: resumable, atomic, verified."""
    from graphdyn.data.download import download as run_download

    for path in run_download(dataset, molecule=molecule, subject=subject, dest=dest, base_url=base_url):
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
