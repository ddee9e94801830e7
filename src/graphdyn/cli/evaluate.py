"""`graphdyn` commands of this group (being written)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
