"""``graphdyn simulate molecule`` (being written)."""

import typer


def register(simulate_app: typer.Typer) -> None:
    """Add the ``molecule`` command to the ``simulate`` group."""
