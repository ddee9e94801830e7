"""The spring benchmarks' plumbing at tiny sizes (their numbers are studies, run by hand; see
docs/benchmarks.md): the notebook re-implementation learns graphdyn's target, and both scripts
run end to end and report what the docs quote."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from graphdyn.data.registry import Window, build_dataset

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"  # the scripts run by the run_benchmark fixture (conftest.py)


@pytest.fixture(scope="module")
def spring_training():
    sys.path.insert(0, str(BENCH))
    try:
        import spring_training

        yield spring_training
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize("target", ["dv", "acceleration"])
def test_notebook_samples_hold_graphdyn_training_target(spring_training, target):
    """The notebook's per-sample target, computed in its loop as the notebook does, is exactly the
    quantity graphdyn's simulator trains on: both sides of the benchmark learn the same thing."""
    splits = build_dataset("springs", {"n_train": 16, "n_val": 4, "n_test": 4}, Window(), 0)
    samples = spring_training.notebook_samples(splits.train, target)
    assert set(samples[0]) == {"positions", "velocities", "edges", "next_velocities" if target == "dv" else "accelerations"}
    notebook = torch.stack([spring_training.notebook_target(s) for s in samples])
    graphdyn = spring_training.make_simulator(splits, target).training_target(splits.train.batch())
    torch.testing.assert_close(notebook, graphdyn[:, :, 0], rtol=0, atol=0)


def test_spring_training_runs_and_reports(run_benchmark):
    r = run_benchmark("spring_training.py", "--target", "dv", "--notebook-epochs", "1", "--samples", "1", "--max-epochs", "3")
    nb, thr = r["notebook"], r["graphdyn_throughput"]
    assert nb["samples_per_second"] > 0 and nb["final_test_mse"] > 0
    assert len(thr["samples_per_second_each"]) == 1 and thr["samples_per_second_median"] > 0
    assert r["throughput_ratio"] == pytest.approx(thr["samples_per_second_median"] / nb["samples_per_second"])
    assert len(r["graphdyn_time_to_accuracy"]["each"]) == 1


def test_trainer_overhead_runs_and_reports(run_benchmark):
    r = run_benchmark("trainer_overhead.py", "--target", "dv", "--batch-sizes", "1", "4", "--epochs", "3", "--rounds", "2")
    assert set(r["ms_per_step"]) == {"1", "4"}
    for row in r["ms_per_step"].values():
        assert len(row["graphdyn"]) == len(row["bare"]) == 2
        assert min(row["graphdyn"] + row["bare"]) > 0

