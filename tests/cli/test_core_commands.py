"""The train / evaluate / rollout / demo commands, end to end through the entry point.

Commands run in-process through ``graphdyn.cli.app.main`` (the ``run_cli`` fixture); one test
runs the installed script itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graphdyn import Trajectory

GRAPHDYN = [sys.executable, "-m", "graphdyn.cli.app"]
TINY = ["--set", "data.options.n_train=100", "--set", "data.options.n_val=20", "--set", "data.options.n_test=20",
        "--set", "training.batch_size=50", "--set", "eval.rollout_steps=10", "--set", "eval.rollout_starts=2", "--quiet"]


def test_installed_script_prints_one_line_errors(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([*GRAPHDYN, "train", str(tmp_path / "nope.yaml")], capture_output=True, text=True, env=env, timeout=300)
    assert_one_line_error((proc.returncode, proc.stdout, proc.stderr), "nope.yaml", "not found")
    proc = subprocess.run([*GRAPHDYN, "--help"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and "simulate" in proc.stdout


def assert_one_line_error(result, *fragments: str) -> None:
    code, _, err = result
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for frag in fragments:
        assert frag in lines[0], lines[0]


@pytest.mark.parametrize("command", ["simulate", "train", "evaluate", "rollout", "demo", "data"])
def test_help(command, run_cli):
    proc = run_cli(command, "--help")
    assert proc.code == 0 and "Usage" in proc.out


def test_train_evaluate_rollout(tmp_path, run_cli):
    proc = run_cli("train", "--epochs", "2", "--output-dir", str(tmp_path), *TINY)
    assert proc.code == 0, proc.err
    (run_dir,) = tmp_path.iterdir()
    assert "test MSE" in proc.out and (run_dir / "model.pt").exists()
    proc = run_cli("evaluate", str(run_dir / "model.pt"), "--steps", "5", "--starts", "2", "--out", str(tmp_path / "m.json"), "--json")
    assert proc.code == 0, proc.err
    assert '"pos_mse"' in proc.out and (tmp_path / "m.json").exists()
    proc = run_cli("rollout", str(run_dir / "model.pt"), "--steps", "7", "--starts", "2", "--out", str(tmp_path / "r.npz"), "--figure", str(tmp_path / "r.png"))
    assert proc.code == 0, proc.err
    with np.load(tmp_path / "r.npz") as z:
        assert z["pred"].shape == (2, 7, 3, 1) and z["mse"].shape == (2, 7)
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_demo_runs_both_models(tmp_path, run_cli):
    proc = run_cli("demo", "--output-dir", str(tmp_path), "--epochs", "2", "--steps", "20")
    assert proc.code == 0, proc.err
    (demo,) = tmp_path.iterdir()
    for name in ("report.md", "notebook_comparison.png", "error_vs_step.png", "results.json"):
        assert (demo / name).exists()
    assert "dv" in proc.out and "acceleration" in proc.out
    # not a terminal: one line per epoch on stderr, no progress bar anywhere
    assert "\r" not in proc.out + proc.err
    assert [ln.split("  ")[0] for ln in proc.err.splitlines()] == ["epoch 1/2", "epoch 2/2"] * 2, proc.err


def test_unknown_config_key(tmp_path, run_cli):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("training:\n  epoch: 3\n")
    proc = run_cli("train", str(cfg), "--output-dir", str(tmp_path / "runs"))
    assert_one_line_error(proc, "c.yaml", "training.epoch")
    assert not (tmp_path / "runs").exists()


def test_missing_files(run_cli):
    assert_one_line_error(run_cli("train", "nope.yaml"), "nope.yaml", "not found")
    assert_one_line_error(run_cli("evaluate", "nope.pt"), "nope.pt", "not found")


def _bad_trajectory(tmp_path: Path, kind: str) -> Path:
    pos = np.random.default_rng(0).normal(size=(2, 10, 3, 1))
    arrays = dict(format=np.array("graphdyn.trajectory"), format_version=np.array(1), positions=pos, dt=np.array(0.1),
                  node_attr=np.ones((3, 1)), edge_index=np.array([[1, 0], [0, 1]]), units=np.array("{}"), metadata=np.array("{}"))
    if kind == "nan":
        arrays["positions"][1, 3, 2, 0] = np.nan
    elif kind == "shape":
        arrays["positions"] = pos[0]
    path = tmp_path / f"{kind}.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("kind, fragment", [("nan", "NaN"), ("shape", "expected shape")])
def test_bad_trajectory_files(tmp_path, kind, fragment, run_cli):
    path = _bad_trajectory(tmp_path, kind)
    proc = run_cli("train", "--dataset", "file", "--set", f"data.options.path={path}", "--output-dir", str(tmp_path / "runs"))
    assert_one_line_error(proc, path.name, "positions", fragment)
    assert not (tmp_path / "runs").exists()


def _walk(tmp_path: Path, velocities: bool) -> Path:
    rng = np.random.default_rng(1)
    pos = np.cumsum(rng.normal(size=(4, 30, 3, 2)) * 0.01, 1)
    t = Trajectory(positions=pos, velocities=np.gradient(pos, axis=1) if velocities else None, edge_index=np.array([[1, 0], [0, 1]]), dt=0.1)
    return t.save(tmp_path / f"walk{int(velocities)}.npz")


def test_trajectory_file_trains(tmp_path, run_cli):
    path = _walk(tmp_path, velocities=True)
    proc = run_cli("train", "--dataset", "file", "--set", f"data.options.path={path}", "--set", "model.params.target=displacement",
               "--epochs", "1", "--output-dir", str(tmp_path / "runs"), "--quiet", "--set", "eval.rollout_steps=5")
    assert proc.code == 0, proc.err
    assert "recorded frames" in proc.out


def test_model_that_needs_velocities_on_data_without(tmp_path, run_cli):
    path = _walk(tmp_path, velocities=False)
    proc = run_cli("train", "--dataset", "file", "--set", f"data.options.path={path}", "--output-dir", str(tmp_path / "runs"))
    assert_one_line_error(proc, "gnn", "velocities")
    assert not (tmp_path / "runs").exists()


def test_estag_demo_compares_three_models(tmp_path, run_cli):
    proc = run_cli("demo", "estag", "--output-dir", str(tmp_path), "--epochs", "1", "--quiet")
    assert proc.code == 0, proc.err
    (demo,) = tmp_path.iterdir()
    report = (demo / "report.md").read_text()
    for name in ("copy_last", "egnn_last_frame", "estag"):
        assert f"| {name} |" in report
    assert "best:" in proc.out


def test_unknown_demo(run_cli):
    assert_one_line_error(run_cli("demo", "nope"), "unknown demo")
