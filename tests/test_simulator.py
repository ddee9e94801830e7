import numpy as np
import pytest
import torch

from spring_chain import CHAIN3_EDGES, notebook_snapshots
from graphdyn import Trajectory, WindowDataset
from graphdyn.data.registry import DataSplits
from graphdyn.evaluation.rollout import rollout_test
from graphdyn.models.base import DataInfo, DynamicsModel, Params
from graphdyn.simulator import LearnedSimulator


def chain_acceleration(x):
    """The notebook's forces for 3 masses (k = m = 1), x: [..., 3, 1]."""
    a = torch.zeros_like(x)
    a[..., 0, :] = -(x[..., 0, :] - x[..., 1, :])
    a[..., 1, :] = -(x[..., 1, :] - x[..., 0, :]) - (x[..., 1, :] - x[..., 2, :])
    a[..., 2, :] = -(x[..., 2, :] - x[..., 1, :])
    return a


class Oracle(DynamicsModel):
    """Returns the true acceleration or dv: a perfect model."""

    def __init__(self, target):
        super().__init__(DataInfo(1, None, 1, 0, 1, 3, True), Params())
        self.target = target
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, batch):
        a = chain_acceleration(batch.x[:, -1])
        return a if self.target == "acceleration" else a * batch.dt


class ChainPhysics:
    """True dynamics for the rollout: the notebook's loop."""

    def rollout(self, x0, v0, steps, stride=1):
        xs, vs, x, v = [], [], x0, v0
        for _ in range(steps):
            v = v + chain_acceleration(x) * 0.01
            x = x + v * 0.01
            xs.append(x)
            vs.append(v)
        return torch.stack(xs, 1), torch.stack(vs, 1)

    def energy(self, x, v):
        return None


@pytest.mark.parametrize("target", ["acceleration", "velocity_change"])
def test_perfect_model_has_zero_loss_and_zero_rollout_error(target):
    traj = notebook_snapshots(16)
    ds = WindowDataset(traj, dtype=torch.float64)
    sim = LearnedSimulator(Oracle(target).double())
    batch = ds.batch()
    assert sim.loss(batch).item() < 1e-20
    x_next, v_next = sim.step(batch)
    torch.testing.assert_close(x_next, batch.target_x)  # the notebook's v += a dt; x += v dt
    torch.testing.assert_close(v_next, batch.target_v)
    splits = DataSplits("chain", ds, ds, ds, dynamics=ChainPhysics())
    result = rollout_test(sim, splits, steps=50, n_starts=8)
    assert result.mse.shape == (8, 50) and result.mse.max() < 1e-24


def test_rollout_never_reads_targets():
    traj = notebook_snapshots(4)
    sim = LearnedSimulator(Oracle("acceleration"))
    batch = WindowDataset(traj).batch()
    ref, _ = sim.rollout(batch, 5)
    batch.target_x = batch.target_x + 1e3  # corrupt the answers: a teacher-forced rollout would change
    batch.target_v = batch.target_v + 1e3
    out, _ = sim.rollout(batch, 5)
    torch.testing.assert_close(out, ref)


class Extrapolate(DynamicsModel):
    """Constant-velocity extrapolation from the last two frames (target displacement)."""

    target = "displacement"

    def __init__(self):
        super().__init__(DataInfo(2, None, 1, 0, 2, 3, False), Params())
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, batch):
        return batch.x[:, -1] - batch.x[:, -2]


def test_rollout_against_recorded_frames_is_exact_for_exact_model():
    t = np.arange(60)[:, None, None]
    pos = (np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]) + 0.1 * t * np.array([[1.0, 0.5], [0.0, -1.0], [0.3, 0.3]]))[None]
    ds = WindowDataset(Trajectory(positions=pos, edge_index=CHAIN3_EDGES, dt=0.1), T=2, delta=3, dtype=torch.float64)
    splits = DataSplits("line", ds, ds, ds)
    res = rollout_test(LearnedSimulator(Extrapolate()).double(), splits, steps=10, n_starts=4)
    assert res.source == "recorded frames" and res.mse.max() < 1e-24
    with pytest.raises(Exception, match="too short"):
        rollout_test(LearnedSimulator(Extrapolate()), splits, steps=100)
