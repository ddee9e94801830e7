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
    trajectory: list[Path] = typer.Option([], "--trajectory", "-t", help="Write the first rollout's predicted trajectory for VMD, PyMOL, ASE, MDAnalysis (repeatable; format from the suffix: .pdb, .dcd, .xyz)."),
    with_truth: bool = typer.Option(False, "--with-truth", help="Also write the truth beside each --trajectory file, as NAME_true.SUFFIX."),
    animate: Optional[Path] = typer.Option(None, help="Write an animation of the first rollout, prediction beside truth: .mp4 (needs graphdyn[video], else a .gif is written) or .gif."),
    fps: int = typer.Option(10, min=1, help="Frames per second of --animate."),
    frame_stride: Optional[int] = typer.Option(None, min=1, help="Keep every K-th rollout frame in --trajectory files and --animate (default: all frames in files, at most 150 in the animation)."),
) -> None:
    """Roll out from test windows against the truth; write positions, errors and a figure."""
    import numpy as np

    from graphdyn.evaluation.rollout import rollout_test, summary_lines
    from graphdyn.io import save_npz
    from graphdyn.training.checkpoint import load_checkpoint
    from graphdyn.viz.plots import rollout_figure

    from graphdyn.viz.rollout_outputs import check_outputs, write_outputs

    check_outputs(trajectory, animate, with_truth)
    loaded = load_checkpoint(checkpoint)
    splits = loaded.build_data()
    ev = loaded.config.get("eval", {})
    result = rollout_test(loaded.simulator, splits, steps, starts, stability_threshold=ev.get("stability_threshold"),
                          hr_bins=ev.get("hr_bins", 100), short_horizon_steps=ev.get("short_horizon"))
    save_npz(out, {"pred": result.pred.numpy(), "true": result.true.numpy(), "start": result.start.numpy(), "mse": result.mse})
    if trajectory or animate is not None:
        lines, warns = write_outputs(result, splits.test, trajectories=trajectory, with_truth=with_truth, animation=animate, fps=fps,
                                     stride=frame_stride, title=f"{loaded.config['model']['name']} on {splits.name}")
        for line in warns:
            typer.echo(f"warning: {line}", err=True)
        for line in lines:
            typer.echo(line)
    if figure is not None:
        start = result.start[0:1].numpy()
        rollout_figure(np.concatenate([start, result.true[0].numpy()]), np.concatenate([start, result.pred[0].numpy()]), figure,
                       title=f"{steps}-step rollout vs {result.source}")
    typer.echo(f"wrote {out}: {result.pred.shape[0]} rollouts of {steps} steps")
    for line in summary_lines(result.summary()):  # stability, h(r), short horizon; "diverged at stride ..." instead of any NaN
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command("rollout")(rollout_command)
