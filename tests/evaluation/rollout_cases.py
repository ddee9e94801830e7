"""Small datasets of every kind and true rollouts of them, for the rollout-measure tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from graphdyn.data.registry import DataSplits, Window, build_dataset
from graphdyn.evaluation.rollout import RolloutResult, _room, _start_indices, recorded_truth

FILES = Path(__file__).resolve().parents[1] / "data" / "files"
ETHANOL = FILES / "ethanol_md17.npz"


def build(kind: str, tmp_path_factory) -> DataSplits:
    """A small dataset of ``kind`` (no cache files outside the test's folders)."""
    if kind == "springs":
        return build_dataset("springs", {"n_train": 200, "n_val": 10, "n_test": 32}, Window(), 0)
    if kind == "springs_ring":
        return build_dataset("springs", {"n_masses": 5, "dim": 2, "graph": "ring", "mode": "trajectory", "frames": 80,
                                         "n_train": 20, "n_val": 2, "n_test": 4}, Window(), 0)
    if kind in ("charged", "gravity"):
        return build_dataset(kind, {"n_train": 4, "n_val": 2, "n_test": 8, "frames": 60}, Window(), 0)
    if kind == "md17":
        return build_dataset("md17", {"path": str(ETHANOL), "skip": 20, "fractions": [0.4, 0.1, 0.4], "train_size": 50, "val_size": 10,
                                      "test_size": 50, "cache": False}, Window(T=2, delta=1), 0)
    if kind == "mocap":
        from tests.data.test_mocap import SPLIT, TRIALS, _write_trials

        folder = tmp_path_factory.mktemp("mocap")
        _write_trials(folder)
        return build_dataset("mocap", {"subject": 35, "data_dir": str(folder), "trials": [t[0] for t in TRIALS], "split": SPLIT,
                                       "start_pool": 8, "starts_per_trial": 4, "cache": False}, Window(T=2, delta=2), 0)
    if kind == "adk":
        return build_dataset("adk", {"cache": False}, Window(T=2, delta=2), 0)
    raise KeyError(kind)


def true_rollout(splits: DataSplits, steps: int, starts: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(last observed frames [S, N, ...], truth [S, steps, N, ...])`` in float64 from ``starts``
    test windows: the true simulator when the data has one, else the recorded frames.
    ``offset`` shifts the chosen windows (another set of starts)."""
    test = splits.test
    if splits.dynamics is not None:
        idx = (_start_indices(len(test), starts + offset)[offset:])[:starts]
        batch = test.batch(idx).to(dtype=torch.float64)
        truth, _ = splits.dynamics.rollout(batch.x[:, -1], batch.v[:, -1], steps)
        return batch.x[:, -1], truth.double()
    usable = np.nonzero(_room(test) >= steps)[0]
    idx = usable[_start_indices(len(usable), starts + offset)[offset:]][:starts]
    batch = test.batch(idx).to(dtype=torch.float64)
    return batch.x[:, -1], recorded_truth(test, idx, steps).double()


def result_of(pred: torch.Tensor, truth: torch.Tensor, start: torch.Tensor, source: str = "recorded frames") -> RolloutResult:
    """A :class:`RolloutResult` of hand-made predictions (MSE as rollout_test computes it)."""
    mse = ((pred.double() - truth.double()) ** 2).flatten(2).mean(2).numpy()
    return RolloutResult(pred=pred, true=truth, start=start, mse=mse, source=source)
