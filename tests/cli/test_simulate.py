"""``graphdyn simulate springs|charged|gravity``: a trajectory file and one summary line, or one error line."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from graphdyn.cli.app import app
from graphdyn.data.trajectory import Trajectory
from graphdyn.physics import dynamics_from_metadata

runner = CliRunner()




def test_springs_defaults_write_the_notebook_snapshots(tmp_path):
    out = tmp_path / "springs.npz"
    result = runner.invoke(app, ["simulate", "springs", "--out", str(out), "--seed", "3", "--runs", "50"])
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1 and "50 runs x 2 frames x 3 particles in 1-D" in result.output
    traj = Trajectory.load(out)
    assert traj.positions.shape == (50, 2, 3, 1) and traj.dt == 0.01
    assert traj.metadata["seed"] == 3 and traj.metadata["system"]["k"] == [1.0, 1.0]
    again = tmp_path / "again.npz"
    runner.invoke(app, ["simulate", "springs", "--out", str(again), "--seed", "3", "--runs", "50"])
    assert np.array_equal(Trajectory.load(again).positions, traj.positions)


def test_springs_options_reach_the_file(tmp_path):
    out = tmp_path / "ring.npz"
    args = ["simulate", "springs", "--out", str(out), "--graph", "ring", "--n-masses", "4", "--dim", "2", "--k", "1,2,3,4",
            "--m", "2", "--mode", "trajectory", "--frames", "15", "--record-every", "2", "--integrator", "velocity_verlet",
            "--runs", "3", "--position-noise-std", "0.01"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    traj = Trajectory.load(out)
    meta = traj.metadata
    assert traj.positions.shape == (3, 15, 4, 2) and traj.dt == pytest.approx(0.02)
    assert meta["system"]["k"] == [1.0, 2.0, 3.0, 4.0] and meta["system"]["m"] == [2.0] * 4
    assert meta["position_noise_std"] == 0.01 and traj.edge_attr is not None
    assert meta["integrator"] == "velocity_verlet" and dynamics_from_metadata(meta).frame_dt == pytest.approx(0.02)
    # The same run without measurement noise: same velocities, positions off by the noise.
    clean_out = tmp_path / "clean.npz"
    assert runner.invoke(app, [*args[:-2], "--out", str(clean_out)]).exit_code == 0
    clean = Trajectory.load(clean_out)
    assert np.array_equal(clean.velocities, traj.velocities)
    assert 0.005 < np.std(traj.positions - clean.positions) < 0.02
    # Noise-free physics from the metadata reproduces the clean frames.
    X, _ = dynamics_from_metadata(clean.metadata).rollout(torch.as_tensor(clean.positions[:, 0]), torch.as_tensor(clean.velocities[:, 0]), 14)
    assert torch.allclose(X, torch.as_tensor(clean.positions[:, 1:]), atol=1e-12)


@pytest.mark.parametrize("kind", ["charged", "gravity"])
def test_nbody_commands(tmp_path, kind):
    out = tmp_path / f"{kind}.npz"
    extra = ["--charges", "1,-1,1"] if kind == "charged" else ["--m", "1,2,3", "--n-particles", "3", "--gravity-constant", "0.5"]
    result = runner.invoke(app, ["simulate", kind, "--out", str(out), "--runs", "4", "--frames", "10", *extra])
    assert result.exit_code == 0, result.output
    traj = Trajectory.load(out)
    assert traj.positions.shape == (4, 10, 3, 3) and traj.n_edges == 6
    if kind == "charged":
        assert traj.node_attr[:, 0].tolist() == [1.0, -1.0, 1.0]
    else:
        assert traj.metadata["system"]["G"] == 0.5 and traj.node_attr[:, 0].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("cmd", [["simulate"], ["simulate", "springs"], ["simulate", "charged"], ["simulate", "gravity"]])
def test_help(cmd):
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_molecule_command_is_registered():
    assert "molecule" in runner.invoke(app, ["simulate", "--help"]).output


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--graph", "star"], "--graph"),
        (["--k", "a,b"], "--k"),
        (["--k", "1,2,3"], "--k"),
        (["--dt", "-0.1"], "--dt"),
        (["--dim", "4"], "--dim"),
        (["--runs", "0"], "--runs"),
    ],
)
def test_bad_option_value_is_one_line_and_exit_code_2(run_cli, tmp_path, args, flag):
    out = tmp_path / "bad.npz"
    code, stdout, stderr = run_cli("simulate", "springs", "--out", str(out), *args)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("graphdyn: error:") and flag in stderr
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written


def test_bad_output_name(run_cli, tmp_path):
    code, _, stderr = run_cli("simulate", "charged", "--out", str(tmp_path / "x.txt"))
    assert code == 2 and ".npz" in stderr and stderr.count("\n") == 1
