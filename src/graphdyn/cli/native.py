"""``graphdyn native``: whether the C kernels built, where from, and what each backend runs."""

from __future__ import annotations

import json
import os

import typer


def native_command(
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
    require: bool = typer.Option(False, "--require", help="Exit 1 unless the kernels built."),
) -> None:
    """Build (or find) the native kernels and say what runs the hot ops.

    Prints whether the kernels compiled (the library, the compiler, else the error), what the
    backend setting resolves to (``$GRAPHDYN_BACKEND``, else auto), the kernels' limits, and
    the ops of graphdyn.ops. Exit 1 with --require when the kernels are unavailable.
    """
    from graphdyn import native, ops
    from graphdyn.ops import backend

    status = native.status()
    try:
        resolved = backend.resolve(None)
    except (ValueError, RuntimeError) as exc:
        resolved = f"error: {exc}"
    report = {**status, "backend_setting": backend.default(), "backend": resolved, "limits": native.LIMITS,
              "activations": list(native.ACTS), "ops": sorted(ops.OPS), "env": os.environ.get(backend.ENV)}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        where = f"{status['library']} (compiler {status['compiler']})" if status["compiled"] else f"unavailable: {status['error']}"
        typer.echo(f"native kernels: {'compiled, ' if status['compiled'] else ''}{where}")
        typer.echo(f"backend: {report['backend_setting']} -> {resolved}"
                   + ("" if report["env"] else f"  (set ${backend.ENV} or model.backend to change)"))
        typer.echo("limits: " + ", ".join(f"{k}={v}" for k, v in native.LIMITS.items()) + "; activations: " + ", ".join(native.ACTS))
        typer.echo("ops: " + ", ".join(sorted(ops.OPS)))
    if require and not status["compiled"]:
        raise SystemExit(1)


def register(app: typer.Typer) -> None:
    app.command("native")(native_command)
