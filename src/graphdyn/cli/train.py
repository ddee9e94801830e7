"""``graphdyn train``: train a model from a YAML config with command-line overrides.

``graphdyn train CONFIG [--set k=v ...] [--run-dir DIR]`` starts a run (in ``DIR`` when given,
else a new folder under ``output_dir``); ``graphdyn train --resume DIR`` continues an
interrupted run from its last finished epoch, with the run's own config.yaml. A run stopped by
a non-finite training loss prints one line on stderr and exits with code 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def train_command(
    config: Optional[Path] = typer.Argument(None, help="YAML run config, or a built-in one by name (notebook_acc, estag_md17, ...)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override, e.g. --set training.lr=1e-3 (repeatable)."),
    model: Optional[str] = typer.Option(None, help="Model name (shortcut for --set model.name=...; the config's model.params are dropped when it changes the model)."),
    dataset: Optional[str] = typer.Option(None, help="Dataset name (shortcut for --set data.source=...)."),
    epochs: Optional[int] = typer.Option(None, help="Shortcut for --set training.epochs=..."),
    seed: Optional[int] = typer.Option(None, help="Shortcut for --set seed=..."),
    output_dir: Optional[Path] = typer.Option(None, help="Parent folder of the run folder."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Train into this folder (created if absent; it must hold no run yet)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the interrupted run in this folder, with its own config.yaml."),
    quiet: bool = typer.Option(False, help="Nothing per epoch (no progress bar, no epoch lines)."),
) -> None:
    """Train a model; writes a run folder with checkpoints, metrics, figures and a report."""
    from graphdyn.errors import GraphdynError
    from graphdyn.training.config import load_config
    from graphdyn.training.run import TrainingDiverged, train
    from graphdyn.training.memory import keep_freed_memory

    keep_freed_memory()  # a program entry point: later steps reuse the pages of the first (GRAPHDYN_KEEP_MEMORY=0: off)

    if resume is not None:
        given = [name for name, value in (("CONFIG", config), ("--set", set_), ("--model", model), ("--dataset", dataset),
                                          ("--epochs", epochs), ("--seed", seed), ("--output-dir", output_dir), ("--run-dir", run_dir))
                 if value is not None and value != []]
        if given:
            raise GraphdynError(f"--resume continues a run with its own config.yaml; drop {', '.join(given)}", field="--resume")
        result = train(None, quiet=quiet, run_dir=resume, resume=True)
    else:
        overrides = list(set_)
        for key, value in (("model.name", model), ("data.source", dataset), ("training.epochs", epochs), ("seed", seed), ("output_dir", output_dir)):
            if value is not None:
                overrides.append(f"{key}={value}")
        result = train(load_config(config, overrides), quiet=quiet, run_dir=run_dir)
    test = result.metrics.get("test")
    if "status" in result.metrics:  # only the first process of a multi-process run evaluates and reports
        typer.echo(f"run folder: {result.run_dir}")
    if test:
        typer.echo(f"test MSE ({result.simulator.target}): {_num(test['target_mse'])}   next-position MSE: {_num(test['pos_mse'])}")
        roll = result.metrics.get("rollout", {})
        if "final_mse_mean" in roll:
            typer.echo(f"rollout MSE after {roll['steps']} steps (vs {roll['truth']}): {_num(roll['final_mse_mean'])}"
                       + (f" over the finite starts; {roll['diverged']}" if roll.get("diverged") else ""))
    if result.status == "diverged" and "status" in result.metrics:
        raise TrainingDiverged(result.message or "training diverged")


def _num(value: float | None) -> str:
    """A metric as printed; results.json holds None for a non-finite one."""
    return "diverged" if value is None else f"{value:.6g}"


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
