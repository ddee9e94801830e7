"""Every dataset kind gets the rollout measures (stability, h(r), bond lengths, short horizon)
through :func:`measure_rollout`, their report lines and figures, with no NaN anywhere."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from rollout_cases import result_of, true_rollout

from graphdyn.evaluation.rollout import measure_rollout, rollout_test, summary_lines, write_figures
from graphdyn.models.base import DataInfo
from graphdyn.models.copy_last import CopyLast
from graphdyn.simulator import LearnedSimulator

KINDS = ["springs", "charged", "gravity", "md17", "mocap", "adk"]
HAS_BONDS = {"springs": True, "charged": False, "gravity": False, "md17": True, "mocap": True, "adk": True}


@pytest.mark.parametrize("kind", KINDS)
def test_every_dataset_kind_gets_the_measures(kind, datasets, tmp_path):
    splits = datasets(kind)
    steps, starts = (4, 2) if kind == "adk" else (8, 4)  # AdK: 852 points, 362 526 distances per frame
    start, truth = true_rollout(splits, steps=steps, starts=starts)
    gen = torch.Generator().manual_seed(0)
    scale = truth.std()
    pred = truth + 1e-3 * scale * torch.randn(truth.shape, generator=gen, dtype=truth.dtype)
    res = measure_rollout(result_of(pred, truth, start, "physics" if splits.dynamics else "recorded frames"), splits)
    s = res.summary()
    st = s["stability"]
    assert st["stable_to_end"] == starts == st["starts"] and (st["pairs"] > 0) == HAS_BONDS[kind]
    assert s["truth_stable_to_end"] == starts
    assert s["h_r"]["mae"] > 0 and s["h_r"]["noise_floor"] > 0 and s["h_r"]["rollout_frames"] == steps * starts
    assert ("bond_lengths" in s) == HAS_BONDS[kind]
    assert 1 <= s["short_horizon"]["horizon"] <= steps and s["short_horizon"]["model_mse"] > 0
    lines = summary_lines(s)
    text = "\n".join(lines) + json.dumps(s)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE) and "diverged at" not in text
    assert any(line.startswith(f"stability: {starts} of {starts} starts stable") for line in lines)
    assert any(line.startswith("h(r): MAE") for line in lines) and any(line.startswith("short horizon: H =") for line in lines)
    paths = write_figures(res, tmp_path, "noisy truth")
    names = sorted(p.name for p in paths)
    assert names == sorted(["hr.png", "short_horizon.png"] + (["bond_lengths.png"] if HAS_BONDS[kind] else []))
    assert all(p.stat().st_size > 5000 for p in paths)


def test_rollout_test_measures_and_keeps_recorded_frames_beside_the_physics(datasets):
    """Spring trajectories have a true simulator and recorded frames: the short horizon is
    measured against the recorded frames, with the simulator as a reference (here exact)."""
    splits = datasets("springs_ring")
    ds = splits.train
    sim = LearnedSimulator(CopyLast(DataInfo(ds.traj.dim, None, 1, 0, ds.T, ds.traj.n_nodes, True), CopyLast.Params())).double()
    res = rollout_test(sim, splits, steps=20, n_starts=3)
    assert res.source == "physics" and res.recorded is not None and res.recorded.shape == res.true.shape
    np.testing.assert_allclose(res.recorded.numpy(), res.true.numpy(), atol=1e-6)  # same integrator, float32 frames
    s = res.summary()
    sh = s["short_horizon"]
    assert sh["against"] == "recorded frames" and sh["simulator_mse"] < 1e-10
    # copy-last is the model here: its curve is copy-last's
    assert sh["model_mse"] == pytest.approx(sh["copy_last_mse"], rel=1e-6)
    assert any("true simulator" in line for line in summary_lines(s))
    too_long = rollout_test(sim, splits, steps=200, n_starts=3)  # beyond the recorded runs: physics only
    assert too_long.recorded is None and too_long.summary()["short_horizon"]["against"] == "physics"


def test_a_partly_diverged_rollout_reports_finite_starts_and_the_stride(datasets, tmp_path):
    splits = datasets("md17")
    start, truth = true_rollout(splits, steps=12, starts=4)
    pred = truth.clone()
    pred[1, 8:] = float("nan")
    pred[2, 3:] = float("inf")
    res = measure_rollout(result_of(pred, truth, start), splits)
    s = res.summary()
    assert s["diverged"] == "diverged at stride 4 in 2 of 4 starts" and s["finite_starts"] == 2 and s["final_mse_mean"] == 0.0
    lines = summary_lines(s)
    assert "diverged at stride 4 in 2 of 4 starts" in lines[0] and "(mean over 2 of 4 starts)" in lines[0]
    assert "diverged (non-finite) at stride 4 in 2 of 4 starts" in lines[1]
    assert not re.search(r"\bnan\b", "\n".join(lines) + json.dumps(s), re.IGNORECASE)
    assert len(write_figures(res, tmp_path)) == 3
