"""Rollouts from test states against the truth: error against step, energy drift.

The truth is the dataset's true simulator when it has one (``DataSplits.dynamics``, e.g.
spring networks: any horizon), otherwise the recorded frames of the test trajectory (the
horizon is then limited by the trajectory's length). The learned rollout only ever sees its
own predictions (:meth:`LearnedSimulator.rollout`); a model that returns the truth has zero
rollout error, which the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from graphdyn.data.registry import DataSplits
from graphdyn.data.windows import WindowDataset
from graphdyn.errors import GraphdynError
from graphdyn.simulator import LearnedSimulator


@dataclass
class RolloutResult:
    """Predicted and true positions ``[S, steps, N, ...]`` for ``S`` start points.

    ``start`` holds the last observed positions ``[S, N, ...]``; ``mse`` the per-start,
    per-step MSE ``[S, steps]`` (mean over nodes and coordinates); ``energy_*`` total energy
    ``[S, steps]`` when the system defines one and the model yields velocities.
    """

    pred: torch.Tensor
    true: torch.Tensor
    start: torch.Tensor
    mse: np.ndarray
    source: str
    energy_pred: np.ndarray | None = None
    energy_true: np.ndarray | None = None
    energy_start: np.ndarray | None = None

    @property
    def steps(self) -> int:
        return int(self.pred.shape[1])

    def summary(self) -> dict[str, float | int | str]:
        """Scalars for reports: final-step MSE (mean, median), mean over steps, energy drift."""
        out: dict[str, float | int | str] = {
            "steps": self.steps,
            "starts": int(self.mse.shape[0]),
            "truth": self.source,
            "final_mse_mean": float(self.mse[:, -1].mean()),
            "final_mse_median": float(np.median(self.mse[:, -1])),
            "mse_mean_over_steps": float(self.mse.mean()),
        }
        if self.energy_pred is not None and self.energy_start is not None:
            drift = np.abs(self.energy_pred[:, -1] - self.energy_start) / np.maximum(np.abs(self.energy_start), 1e-12)
            out["energy_drift_pred"] = float(np.median(drift))
        if self.energy_true is not None and self.energy_start is not None:
            drift = np.abs(self.energy_true[:, -1] - self.energy_start) / np.maximum(np.abs(self.energy_start), 1e-12)
            out["energy_drift_true"] = float(np.median(drift))
        return out


def _start_indices(n: int, k: int) -> np.ndarray:
    """``k`` deterministic, evenly spread indices into ``n`` items (first one is 0)."""
    k = min(k, n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def recorded_truth(dataset: WindowDataset, idx: np.ndarray, steps: int) -> torch.Tensor:
    """Recorded positions ``[S, steps, N, ...]`` after the observed windows ``idx``."""
    starts = dataset.starts[idx]
    frames = starts[:, 1:2] + (dataset.T - 1 + np.arange(1, steps + 1)) * dataset.delta
    pos = torch.as_tensor(dataset.traj.positions, dtype=dataset.dtype)
    return pos[torch.as_tensor(starts[:, 0:1]), torch.as_tensor(frames)]


@torch.no_grad()
def rollout_test(simulator: LearnedSimulator, splits: DataSplits, steps: int, n_starts: int = 16, device: torch.device | str = "cpu") -> RolloutResult:
    """Roll ``simulator`` out for ``steps`` strides from ``n_starts`` test windows."""
    test = splits.test
    simulator.eval()
    dtype = simulator.dtype
    dyn = splits.dynamics
    if dyn is not None:
        idx = _start_indices(len(test), n_starts)
        source = "physics"
    else:
        room = (test.traj.n_frames - 1 - test.starts[:, 1]) // test.delta - (test.T - 1)
        usable = np.nonzero(room >= steps)[0]
        if len(usable) == 0:
            longest = int(room.max()) if len(room) else 0
            raise GraphdynError(
                f"the test trajectory is too short for a {steps}-step rollout against recorded frames (at most {longest})",
                field="eval.rollout_steps",
            )
        idx = usable[_start_indices(len(usable), n_starts)]
        source = "recorded frames"
    batch = test.batch(idx).to(device, dtype)
    pred, vpred = simulator.rollout(batch, steps)
    x0 = batch.x[:, -1]
    e_pred = e_true = e_start = None
    if dyn is not None:
        if batch.v is None:
            raise GraphdynError("true-physics rollouts need velocities in the data", field="velocities")
        v0 = batch.v[:, -1]
        true, vtrue = dyn.rollout(x0.double(), v0.double(), steps)
        true = true.to(pred.dtype)
        energy = getattr(dyn, "energy", None)
        if energy is not None:
            e_start_t = energy(x0.double(), v0.double())
            if e_start_t is not None:
                e_start = e_start_t.cpu().numpy()
                e_true = energy(true.double(), vtrue.double()).cpu().numpy()
                if vpred is not None:
                    e_pred = energy(pred.double(), vpred.double()).cpu().numpy()
    else:
        true = recorded_truth(test, idx, steps).to(device, pred.dtype)
    reduce = tuple(range(2, pred.dim()))
    mse = ((pred - true) ** 2).mean(dim=reduce).cpu().numpy()
    return RolloutResult(pred=pred.cpu(), true=true.cpu(), start=x0.cpu(), mse=mse, source=source,
                         energy_pred=e_pred, energy_true=e_true, energy_start=e_start)
