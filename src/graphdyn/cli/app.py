"""The ``graphdyn`` Typer application.

Each command group lives in its own module with a ``register(app)`` function. User errors
(:class:`graphdyn.errors.GraphdynError`) are printed as one line on stderr with exit code 2,
never as a traceback.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

from graphdyn import __version__
from graphdyn.errors import GraphdynError

app = typer.Typer(
    name="graphdyn",
    help="Learn the dynamics of physical systems from trajectories with graph neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules, in the order their commands appear in --help.
_COMMAND_MODULES = (
    "graphdyn.cli.simulate",
    "graphdyn.cli.train",
    "graphdyn.cli.evaluate",
    "graphdyn.cli.rollout",
    "graphdyn.cli.demo",
    "graphdyn.cli.data",
    "graphdyn.cli.checks",
    "graphdyn.cli.benchmark",
    "graphdyn.cli.native",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


@app.command()
def version() -> None:
    """Print the graphdyn version."""
    typer.echo(__version__)


def fail(message: str, code: int = 2) -> None:
    """Print one line on stderr and exit with ``code``."""
    typer.echo(f"graphdyn: error: {message}", err=True)
    raise SystemExit(code)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings at the command line: one line, no source excerpt."""
    return f"{category.__name__}: {message}\n"


def main() -> None:
    """Entry point of the ``graphdyn`` script (usage errors are Typer's: exit code 2)."""
    warnings.formatwarning = _one_line_warning
    try:
        app()
    except GraphdynError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
