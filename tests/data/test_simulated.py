"""Simulated datasets and trajectory files through the dataset registry."""

import json

import numpy as np
import pytest
import torch

from graphdyn.data.registry import Window, build_dataset
from graphdyn.errors import GraphdynError
from graphdyn.physics import GravitySystem, SpringSystem, generate

SMALL_NBODY = {"n_train": 4, "n_val": 2, "n_test": 2, "frames": 12}


def test_springs_defaults_are_the_notebook():
    splits = build_dataset("springs", {}, Window(), seed=0)
    assert splits.name == "springs"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1000, 200, 200)
    batch = splits.train.batch(np.arange(8))
    assert batch.x.shape == (8, 1, 3, 1) and batch.dt == pytest.approx(0.01)
    assert batch.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    x = batch.x[:, 0, :, 0].double()
    forces = torch.stack([-(x[:, 0] - x[:, 1]), -(x[:, 1] - x[:, 0]) - (x[:, 1] - x[:, 2]), -(x[:, 2] - x[:, 1])], 1)
    dv = (batch.target_v - batch.v[:, 0])[..., 0].double()
    assert torch.allclose(dv, forces * 0.01, atol=1e-7)  # float32 windows
    meta = splits.train.traj.metadata
    assert meta["system"]["k"] == [1.0, 1.0] and meta["system"]["m"] == [1.0] * 3 and meta["dt"] == 0.01
    assert meta["pos_std"] == 0.5 and meta["vel_std"] == 0.3 and meta["mode"] == "snapshots"
    json.dumps(splits.description)  # JSON-serialisable
    assert splits.description["options"]["n_masses"] == 3


def test_splits_share_no_system_and_are_seeded():
    a = build_dataset("springs", {"n_train": 50, "n_val": 50, "n_test": 50}, Window(), seed=1)
    b = build_dataset("springs", {"n_train": 50, "n_val": 50, "n_test": 50}, Window(), seed=1)
    c = build_dataset("springs", {"n_train": 50, "n_val": 50, "n_test": 50}, Window(), seed=2)
    starts = {name: getattr(a, name).traj.positions[:, 0] for name in ("train", "val", "test")}
    assert not np.allclose(starts["train"], starts["val"]) and not np.allclose(starts["val"], starts["test"])
    assert np.array_equal(a.test.traj.positions, b.test.traj.positions)
    assert not np.allclose(a.train.traj.positions, c.train.traj.positions)


def test_dynamics_steps_one_window_stride():
    opts = {"mode": "trajectory", "frames": 40, "record_every": 3, "n_train": 2, "n_val": 2, "n_test": 3,
            "integrator": "velocity_verlet", "graph": "ring", "n_masses": 4, "dim": 2}
    splits = build_dataset("springs", opts, Window(T=2, delta=2), seed=0)
    test = splits.test
    assert splits.dynamics.frame_dt == pytest.approx(test.dt) and test.dt == pytest.approx(0.06)
    batch = test.batch(np.arange(len(test))).to(dtype=torch.float64)
    X, V = splits.dynamics.rollout(batch.x[:, -1], batch.v[:, -1], 1)
    # Float32 windows, float64 physics: agreement to float32 rounding.
    assert torch.allclose(X[:, 0], batch.target_x, atol=1e-5) and torch.allclose(V[:, 0], batch.target_v, atol=1e-5)
    assert len(test) == 3 * (40 - 4)


def test_snapshot_mode_gives_one_window_per_sample_for_any_window():
    splits = build_dataset("springs", {"n_train": 10, "n_val": 3, "n_test": 3}, Window(T=3, delta=2), seed=0)
    assert len(splits.train) == 10 and splits.train.traj.n_frames == 7


@pytest.mark.parametrize("name", ["charged", "gravity"])
def test_nbody_datasets(name):
    splits = build_dataset(name, SMALL_NBODY, Window(), seed=0)
    traj = splits.train.traj
    assert traj.positions.shape == (4, 12, 5, 3) and traj.n_edges == 20
    assert traj.dt == pytest.approx(0.01) and splits.dynamics.frame_dt == pytest.approx(0.01)
    assert set(np.unique(traj.node_attr)) <= ({-1.0, 1.0} if name == "charged" else {1.0})
    # Velocity Verlet at dt = 0.001 keeps each run's energy.
    assert np.abs(traj.energy - traj.energy[:, :1]).max() < 1e-3 * np.abs(traj.energy).max()
    # The same system (charges) in every split.
    assert np.array_equal(splits.val.traj.node_attr, traj.node_attr)


def test_charged_options():
    splits = build_dataset("charged", {**SMALL_NBODY, "charges": [1, 1, -1]}, Window(), seed=0)
    assert splits.train.traj.node_attr[:, 0].tolist() == [1.0, 1.0, -1.0]
    with pytest.raises(GraphdynError, match="n_particles"):
        build_dataset("charged", {**SMALL_NBODY, "charges": [1, 1, -1], "n_particles": 4}, Window(), seed=0)


@pytest.mark.parametrize(
    "options, field",
    [
        ({"n_masses": 3, "color": "red"}, "data.options.color"),
        ({"graph": "star"}, "data.options.graph"),
        ({"dt": -0.1}, "data.options.dt"),
        ({"k": [1.0, 2.0, 3.0]}, "data.options.k"),
        ({"frames": 10}, "data.options.frames"),
        ({"mode": "trajectory", "frames": 2}, "data.options.frames"),
    ],
)
def test_bad_springs_options_name_the_field(options, field):
    with pytest.raises(GraphdynError) as exc:
        build_dataset("springs", options, Window(T=1 if "mode" not in options else 2), seed=0)
    assert exc.value.field == field


def test_file_dataset_split_by_runs_with_dynamics(tmp_path):
    system = GravitySystem(4)
    traj = generate(system, n_runs=10, dt=0.001, integrator="velocity_verlet", mode="trajectory", frames=20, record_every=5,
                    pos_std=1.0, vel_std=0.5, zero_momentum=True, seed=3)
    path = traj.save(tmp_path / "grav.npz")
    splits = build_dataset("file", {"path": str(path)}, Window(T=1, delta=2), seed=0)
    runs = [s.traj.n_runs for s in (splits.train, splits.val, splits.test)]
    assert runs == [8, 1, 1]
    all_runs = np.concatenate([s.traj.positions[:, 0] for s in (splits.train, splits.val, splits.test)])
    assert len(np.unique(all_runs[:, 0, 0])) == 10  # every run in exactly one split
    assert splits.dynamics.frame_dt == pytest.approx(splits.test.dt) == pytest.approx(0.01)
    batch = splits.test.batch(np.arange(3)).to(dtype=torch.float64)
    X, _ = splits.dynamics.rollout(batch.x[:, -1], batch.v[:, -1], 1)
    assert torch.allclose(X[:, 0], batch.target_x, atol=1e-5)
    assert splits.description["split"]["by"] == "runs"


def test_file_dataset_single_run_splits_windows_in_time(tmp_path):
    traj = generate(SpringSystem.build(), n_runs=1, dt=0.01, mode="trajectory", frames=101, seed=0)
    traj.metadata = {}  # a file without physics: rollouts use recorded frames
    path = traj.save(tmp_path / "one.npz")
    splits = build_dataset("file", {"path": str(path), "split": [0.6, 0.2, 0.2]}, Window(), seed=0)
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [60, 20, 20]
    assert splits.train.starts[:, 1].max() < splits.val.starts[:, 1].min()
    assert splits.dynamics is None


def test_file_dataset_errors(tmp_path):
    with pytest.raises(GraphdynError, match="not found"):
        build_dataset("file", {"path": str(tmp_path / "missing.npz")}, Window(), seed=0)
    with pytest.raises(GraphdynError) as exc:
        build_dataset("file", {}, Window(), seed=0)
    assert exc.value.field == "data.options.path"
    traj = generate(SpringSystem.build(), n_runs=2, dt=0.01, seed=0)
    path = traj.save(tmp_path / "two.npz")
    with pytest.raises(GraphdynError, match="frames"):
        build_dataset("file", {"path": str(path)}, Window(T=2), seed=0)
    with pytest.raises(GraphdynError, match="empty"):
        build_dataset("file", {"path": str(path), "split_by": "runs"}, Window(), seed=0)
    with pytest.raises(GraphdynError, match="without windows"):
        build_dataset("file", {"path": str(path), "split_by": "windows", "split": [0.0, 0.0, 0.0]}, Window(), seed=0)
    traj = generate(SpringSystem.build(), n_runs=10, dt=0.01, seed=0)
    traj.metadata["system"]["kind"] = "plasma"
    path = traj.save(tmp_path / "bad.npz")
    with pytest.raises(GraphdynError, match="plasma") as exc:
        build_dataset("file", {"path": str(path)}, Window(), seed=0)
    assert exc.value.field == "metadata.system.kind"
