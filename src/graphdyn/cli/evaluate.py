"""``graphdyn evaluate``: test metrics and a rollout summary for a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def evaluate_command(
    checkpoint: Path = typer.Argument(..., help="model.pt or best.ckpt of a run."),
    steps: Optional[int] = typer.Option(None, help="Rollout horizon (default: the run's eval.rollout_steps)."),
    starts: Optional[int] = typer.Option(None, help="Number of test start points for the rollout."),
    out: Optional[Path] = typer.Option(None, help="Write the metrics as JSON here."),
) -> None:
    """Evaluate a trained model on its test split: target MSE, next-position MSE, rollout error."""
    from graphdyn.evaluation.metrics import test_metrics
    from graphdyn.evaluation.rollout import rollout_test
    from graphdyn.io import write_json
    from graphdyn.training.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    splits = loaded.build_data()
    metrics = {"test": test_metrics(loaded.simulator, splits.test)}
    ev = loaded.config.get("eval", {})
    result = rollout_test(loaded.simulator, splits, steps or ev.get("rollout_steps", 100), starts or ev.get("rollout_starts", 16))
    metrics["rollout"] = result.summary()
    if out is not None:
        write_json(out, metrics)
    typer.echo(json.dumps(metrics, indent=2))


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
