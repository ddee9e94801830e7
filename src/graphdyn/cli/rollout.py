"""``graphdyn rollout``: roll a trained model out from test states and save the trajectory."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def rollout_command(
    checkpoint: Path = typer.Argument(..., help="model.pt or best.ckpt of a run."),
    steps: int = typer.Option(500, help="Rollout horizon in window strides."),
    starts: int = typer.Option(4, help="Number of test start points."),
    out: Path = typer.Option(Path("rollout.npz"), help="Output .npz (predicted and true positions, per-step MSE)."),
    figure: Optional[Path] = typer.Option(None, help="Also draw the first rollout against the truth (PNG)."),
) -> None:
    """Roll out from test windows against the truth; write positions, errors and a figure."""
    import numpy as np

    from graphdyn.evaluation.rollout import rollout_test
    from graphdyn.io import save_npz
    from graphdyn.training.checkpoint import load_checkpoint
    from graphdyn.viz.plots import rollout_figure

    loaded = load_checkpoint(checkpoint)
    splits = loaded.build_data()
    result = rollout_test(loaded.simulator, splits, steps, starts)
    save_npz(out, {"pred": result.pred.numpy(), "true": result.true.numpy(), "start": result.start.numpy(), "mse": result.mse})
    if figure is not None:
        start = result.start[0:1].numpy()
        rollout_figure(np.concatenate([start, result.true[0].numpy()]), np.concatenate([start, result.pred[0].numpy()]), figure,
                       title=f"{steps}-step rollout vs {result.source}")
    s = result.summary()
    typer.echo(f"wrote {out}: {s['starts']} rollouts of {steps} steps; final-step MSE mean {s['final_mse_mean']:.6g} (vs {s['truth']})")


def register(app: typer.Typer) -> None:
    app.command("rollout")(rollout_command)
