"""Constants and helpers shared by the benchmark tests (imported by name: tests/benchmark is on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

#: charged particles small enough that a cell trains in well under a second
TINY_CHARGED = {
    "source": "charged",
    "options": {"mode": "trajectory", "n_train": 3, "n_val": 2, "n_test": 2, "frames": 24, "n_particles": 3},
    "T": 3,
    "delta": 1,
}
TINY_CONFIG = {
    "training": {"epochs": 1, "batch_size": 50, "lr": 0.005, "accelerator": "cpu"},
    "eval": {"rollout_steps": 2, "rollout_starts": 2},
}


def harness_env(extra_path: Path | None = None) -> dict[str, str]:
    """The environment of a harness process: one thread, and ``extra_path`` first on the path."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return env
