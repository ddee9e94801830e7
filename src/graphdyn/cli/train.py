"""``graphdyn train``: train a model from a YAML config with command-line overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def train_command(
    config: Optional[Path] = typer.Argument(None, help="YAML run config, or a built-in one by name (notebook_acc, estag_md17, ...)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override, e.g. --set training.lr=1e-3 (repeatable)."),
    model: Optional[str] = typer.Option(None, help="Model name (shortcut for --set model.name=...)."),
    dataset: Optional[str] = typer.Option(None, help="Dataset name (shortcut for --set data.source=...)."),
    epochs: Optional[int] = typer.Option(None, help="Shortcut for --set training.epochs=..."),
    seed: Optional[int] = typer.Option(None, help="Shortcut for --set seed=..."),
    output_dir: Optional[Path] = typer.Option(None, help="Parent folder of the run folder."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Train a model; writes a run folder with checkpoints, metrics, figures and a report."""
    from graphdyn.training.config import load_config
    from graphdyn.training.run import train

    overrides = list(set_)
    for key, value in (("model.name", model), ("data.source", dataset), ("training.epochs", epochs), ("seed", seed), ("output_dir", output_dir)):
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_config(config, overrides)
    result = train(cfg, quiet=quiet)
    test = result.metrics.get("test")
    if test:  # only the first process of a multi-process run evaluates and reports
        typer.echo(f"run folder: {result.run_dir}")
        typer.echo(f"test MSE ({result.simulator.target}): {test['target_mse']:.6g}   next-position MSE: {test['pos_mse']:.6g}")
        roll = result.metrics.get("rollout", {})
        if "final_mse_mean" in roll:
            typer.echo(f"rollout MSE after {roll['steps']} steps (vs {roll['truth']}): {roll['final_mse_mean']:.6g}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
