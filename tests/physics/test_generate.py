"""Vectorised data generation: the notebook's snapshots, trajectories, noise, metadata."""

import numpy as np
import pytest
import torch

from graphdyn.data.trajectory import Trajectory
from graphdyn.errors import GraphdynError
from graphdyn.physics import ChargedSystem, GravitySystem, SpringSystem, dynamics_from_metadata, generate


def test_snapshots_are_the_notebook_samples():
    traj = generate(SpringSystem.build(), n_runs=4000, dt=0.01, seed=0)
    assert traj.positions.shape == (4000, 2, 3, 1) and traj.velocities.shape == (4000, 2, 3, 1)
    assert traj.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert traj.dt == 0.01 and traj.node_attr.tolist() == [[1.0]] * 3
    x, v = traj.positions[:, 0, :, 0], traj.velocities[:, 0, :, 0]
    # Initial states ~ N(0, 0.5^2) and N(0, 0.3^2).
    assert abs(x.std() - 0.5) < 0.02 and abs(v.std() - 0.3) < 0.012 and abs(x.mean()) < 0.02
    # next_velocities = velocities + forces / m * dt with the notebook's force formulas.
    forces = np.stack([-(x[:, 0] - x[:, 1]), -(x[:, 1] - x[:, 0]) - (x[:, 1] - x[:, 2]), -(x[:, 2] - x[:, 1])], 1)
    assert np.array_equal(traj.velocities[:, 1, :, 0], v + forces * 0.01)
    assert np.array_equal(traj.positions[:, 1, :, 0], x + traj.velocities[:, 1, :, 0] * 0.01)
    assert np.array_equal(traj.forces[:, 0, :, 0], forces)
    meta = traj.metadata
    assert (meta["mode"], meta["integrator"], meta["dt"], meta["seed"]) == ("snapshots", "semi_implicit_euler", 0.01, 0)
    assert meta["system"]["kind"] == "springs"


def test_seeding():
    system = SpringSystem.build()
    a = generate(system, n_runs=10, dt=0.01, seed=7)
    b = generate(system, n_runs=10, dt=0.01, seed=7)
    c = generate(system, n_runs=10, dt=0.01, seed=8)
    assert np.array_equal(a.positions, b.positions) and a.checksum() == b.checksum()
    assert not np.allclose(a.positions, c.positions)


@pytest.mark.parametrize("integrator", ["semi_implicit_euler", "velocity_verlet"])
def test_trajectory_frames_follow_the_dynamics_in_the_metadata(tmp_path, integrator):
    system = SpringSystem.build(n_masses=5, dim=2, graph="random", graph_seed=4, k=2.0, m=[1, 2, 1, 2, 1])
    traj = generate(system, n_runs=6, dt=0.005, integrator=integrator, mode="trajectory", frames=30, record_every=4, seed=1)
    assert traj.positions.shape == (6, 30, 5, 2) and traj.energy.shape == (6, 30)
    assert traj.dt == pytest.approx(0.02)
    loaded = Trajectory.load(traj.save(tmp_path / "t.npz"))
    dyn = dynamics_from_metadata(loaded.metadata)
    assert dyn.frame_dt == pytest.approx(0.02)
    x0 = torch.as_tensor(loaded.positions[:, 0])
    v0 = torch.as_tensor(loaded.velocities[:, 0])
    X, V = dyn.rollout(x0, v0, 29)
    assert torch.allclose(X, torch.as_tensor(loaded.positions[:, 1:]), atol=1e-13, rtol=0)
    assert torch.allclose(V, torch.as_tensor(loaded.velocities[:, 1:]), atol=1e-13, rtol=0)
    # Symplectic integrators keep the energy close to its start over the run.
    assert np.abs(traj.energy - traj.energy[:, :1]).max() < 0.05 * np.abs(traj.energy).mean()


def test_position_noise_touches_only_the_recorded_positions():
    system = SpringSystem.build()
    clean = generate(system, n_runs=2000, dt=0.01, seed=3)
    noisy = generate(system, n_runs=2000, dt=0.01, seed=3, position_noise_std=0.05)
    diff = noisy.positions - clean.positions
    assert abs(diff.std() - 0.05) < 0.003
    assert np.array_equal(noisy.velocities, clean.velocities) and np.array_equal(noisy.energy, clean.energy)
    assert noisy.metadata["position_noise_std"] == 0.05


def test_force_noise_kicks_the_velocities():
    system = SpringSystem.build()
    clean = generate(system, n_runs=2000, dt=0.01, seed=3)
    noisy = generate(system, n_runs=2000, dt=0.01, seed=3, force_noise_std=0.1)
    assert np.array_equal(noisy.positions[:, 0], clean.positions[:, 0])
    dv = noisy.velocities[:, 1] - clean.velocities[:, 1]
    assert abs(dv.std() - 0.1 * 0.01) < 1e-4  # the kick is noise / m * dt
    assert noisy.metadata["force_noise_std"] == 0.1


@pytest.mark.parametrize("system", [ChargedSystem([1.0, -1.0, 1.0, -1.0, 1.0]), GravitySystem(5, m=[1, 2, 3, 4, 5])], ids=["charged", "gravity"])
def test_nbody_runs_start_at_rest_in_the_centre_of_mass_frame(system):
    traj = generate(system, n_runs=8, dt=0.001, integrator="velocity_verlet", mode="trajectory", frames=5, record_every=10, pos_std=1.0, vel_std=0.5, zero_momentum=True)
    m = system.masses.numpy()[None, None, :, None]
    assert np.abs((m * traj.velocities).sum(2)).max() < 1e-12
    assert np.abs((m[:, 0] * traj.positions[:, 0]).sum(1)).max() < 1e-12
    assert traj.edge_index.shape == (2, 20)
    assert traj.node_attr[:, 0].tolist() == (system.charges if system.kind == "charged" else system.masses).tolist()


def test_bad_arguments():
    system = SpringSystem.build()
    with pytest.raises(GraphdynError, match="mode"):
        generate(system, n_runs=2, dt=0.01, mode="movie")
    with pytest.raises(GraphdynError, match="n_runs"):
        generate(system, n_runs=0, dt=0.01)
    with pytest.raises(GraphdynError, match="position_noise_std"):
        generate(system, n_runs=2, dt=0.01, position_noise_std=-1.0)
