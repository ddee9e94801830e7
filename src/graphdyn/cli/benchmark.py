"""``graphdyn benchmark SPEC``: train a grid of models x datasets x seeds, write the table.

See :mod:`graphdyn.benchmark` for the spec format, the folder layout and resumability.
Exit codes: 0 every cell that had data completed or diverged (missing data is listed, one
line per dataset); 1 some cell failed (its line and log are named); 2 a bad spec, a folder in
use, cells changed since they were trained (without ``--rerun-changed``), or no data at all.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def benchmark_command(
    spec: str = typer.Argument(..., help="Benchmark spec: a YAML file or a built-in name (quick, paper_md17, paper_adk, paper_motion, ablation_md17)."),
    out: Optional[Path] = typer.Option(None, help="Benchmark folder (default runs/benchmark-<spec name>); rerunning with the same folder skips finished cells."),
    jobs: Optional[int] = typer.Option(None, min=1, help="Cells trained in parallel processes (default: the spec's jobs, else 1)."),
    rerun_changed: bool = typer.Option(False, "--rerun-changed", help="Retrain cells whose settings differ from the spec (default: stop and say which)."),
) -> None:
    """Train every cell of a benchmark spec (resumable, parallel) and write the comparison table."""
    from graphdyn.benchmark.runner import run_benchmark
    from graphdyn.benchmark.spec import load_spec
    from graphdyn.benchmark.table import build_table
    from graphdyn.errors import GraphdynError

    parsed = load_spec(spec)
    summary = run_benchmark(parsed, out, jobs=jobs, rerun_changed=rerun_changed, echo=lambda line: typer.echo(line))
    table = build_table(summary)
    paths = table.write(summary.out)
    typer.echo("")
    if sys.stdout.isatty():
        from rich.console import Console

        Console().print(table.to_rich())
        for note in table.notes:
            typer.echo(f"note: {note}")
    else:
        typer.echo(table.to_markdown())
    counts = summary.counts
    typer.echo(f"cells: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(counts.items())) + f"; {summary.seconds:.0f} s")
    typer.echo("wrote " + ", ".join(str(p) for p in paths))
    if counts.get("failed"):
        raise SystemExit(1)
    if summary.missing and not (counts.get("completed") or counts.get("diverged")):
        raise GraphdynError("no dataset of the spec has its data; see the lines above", field="datasets")


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark_command)
