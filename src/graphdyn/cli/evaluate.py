"""``graphdyn evaluate``: test metrics and the rollout measures for a checkpoint.

Prints, one line each: the one-stride test MSEs, the rollout's final MSE, stability, h(r)
against its noise floor, bond lengths, the short-horizon MSE and energy drift (see
:func:`graphdyn.evaluation.rollout.summary_lines`); ``--json`` prints the metrics as JSON
instead. Non-finite numbers never appear: a diverged rollout reads "diverged at stride S in
K of M starts", and JSON holds null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import typer


def _json_clean(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "diverged"
    return f"{value:.6g}"


def evaluate_command(
    checkpoint: Path = typer.Argument(..., help="model.pt or best.ckpt of a run."),
    steps: Optional[int] = typer.Option(None, help="Rollout horizon (default: the run's eval.rollout_steps)."),
    starts: Optional[int] = typer.Option(None, help="Number of test start points for the rollout."),
    stability_threshold: Optional[float] = typer.Option(
        None, help="Bond-length deviation that makes a rollout unstable (default: the run's eval.stability_threshold, else per dataset kind: 0.5 A for molecules)."),
    out: Optional[Path] = typer.Option(None, help="Write the metrics as JSON here."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON instead of lines."),
) -> None:
    """Evaluate a trained model on its test split: one-stride MSEs, rollout stability, h(r), short-horizon error."""
    from graphdyn.evaluation.metrics import test_metrics
    from graphdyn.evaluation.rollout import rollout_test, summary_lines
    from graphdyn.io import write_json
    from graphdyn.training.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    splits = loaded.build_data()
    metrics: dict[str, Any] = {"test": test_metrics(loaded.simulator, splits.test)}
    ev = loaded.config.get("eval", {})
    result = rollout_test(loaded.simulator, splits, steps or ev.get("rollout_steps", 100), starts or ev.get("rollout_starts", 16),
                          stability_threshold=stability_threshold if stability_threshold is not None else ev.get("stability_threshold"),
                          hr_bins=ev.get("hr_bins", 100), short_horizon_steps=ev.get("short_horizon"))
    metrics["rollout"] = result.summary()
    metrics = _json_clean(metrics)
    if out is not None:
        write_json(out, metrics)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    test = metrics["test"]
    typer.echo(f"test MSE ({loaded.simulator.target}): {_num(test['target_mse'])}   next-position MSE: {_num(test['pos_mse'])}   "
               f"({test['samples']} test windows)")
    for line in summary_lines(metrics["rollout"]):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
