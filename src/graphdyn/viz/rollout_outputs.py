"""The files ``graphdyn rollout`` writes for viewers: trajectory files and an animation.

Both show the *first* rollout start: its frames ``0 .. steps``, frame 0 being the last
observed state (``RolloutResult.start``) and frame ``k`` the state after ``k`` rollout
strides (``delta`` trajectory frames each). What the atoms are comes from the test split's
trajectory (:func:`graphdyn.viz.topology.topology_of`); the formats are those of
:mod:`graphdyn.viz.trajectory_files` and :mod:`graphdyn.viz.animate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from graphdyn.data.windows import WindowDataset
from graphdyn.errors import GraphdynError
from graphdyn.evaluation.rollout import RolloutResult
from graphdyn.viz.animate import animation_format, animate_rollout
from graphdyn.viz.topology import topology_of
from graphdyn.viz.trajectory_files import trajectory_format, write_rollout_files


def check_outputs(trajectories: Sequence[Path], animation: Path | None, with_truth: bool = False) -> None:
    """Reject unknown suffixes (and ``--with-truth`` alone) before anything is computed."""
    for path in trajectories:
        trajectory_format(path, "--trajectory")
    if animation is not None:
        animation_format(animation, "--animate")
    if with_truth and not trajectories:
        raise GraphdynError("needs at least one --trajectory file to write the truth beside", field="--with-truth")


def first_rollout(result: RolloutResult) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[steps + 1, N, (C,) D]`` of the first start: (prediction, truth)."""
    start = result.start[0:1].numpy()
    return np.concatenate([start, result.pred[0].numpy()]), np.concatenate([start, result.true[0].numpy()])


def write_outputs(
    result: RolloutResult,
    test: WindowDataset,
    *,
    trajectories: Sequence[Path] = (),
    with_truth: bool = False,
    animation: Path | None = None,
    fps: int = 10,
    stride: int | None = None,
    title: str = "",
) -> tuple[list[str], list[str]]:
    """Write the requested files for the first rollout; returns (report lines, warnings).

    ``stride`` keeps every ``stride``-th frame: in trajectory files all frames by default,
    in the animation by default as few as keep at most
    :data:`graphdyn.viz.animate.DEFAULT_MAX_FRAMES`.
    """
    check_outputs(trajectories, animation, with_truth)
    topology = topology_of(test.traj)
    pred, true = first_rollout(result)
    lines: list[str] = []
    warnings: list[str] = []
    if trajectories:
        written = write_rollout_files(
            trajectories, pred, topology, true=true if with_truth else None, frame_dt=test.traj.dt * test.delta,
            time_unit=test.traj.units.get("time"), stride=stride or 1, source=result.source,
        )
        lines += [w.describe() for w in written]
        if topology.padded:
            lines.append(f"({topology.dim}-D coordinates padded with zeros to 3-D in these files)")
    if animation is not None:
        anim = animate_rollout(animation, pred, true, topology, fps=fps, stride=stride,
                               labels=("prediction", f"truth ({result.source})"), title=title)
        if anim.fallback:
            warnings.append(anim.fallback)
        lines.append(anim.describe())
    return lines, warnings
