import numpy as np
import torch

from spring_chain import notebook_snapshots
from graphdyn import WindowDataset
from graphdyn.data.windows import WindowLoader
from graphdyn.models import DataInfo, build_model
from graphdyn.simulator import LearnedSimulator

INFO = DataInfo(dim=1, channels=None, node_attr_dim=1, edge_attr_dim=0, T=1, n_nodes=3, has_velocities=True)


def test_shapes_for_every_target_and_option():
    batch = WindowDataset(notebook_snapshots(5)).batch()
    for params in ({"target": "velocity_change"}, {"layers": 3, "relative_positions": True}, {"use_node_attr": True}):
        model = build_model("gnn", params, INFO)
        assert model(batch).shape == (5, 3, 1)


def test_learns_the_spring_acceleration_within_a_small_budget():
    torch.manual_seed(0)
    train = WindowDataset(notebook_snapshots(2000, seed=1))
    test = WindowDataset(notebook_snapshots(500, seed=2)).batch()
    sim = LearnedSimulator(build_model("gnn", {"target": "acceleration", "hidden": 32}, INFO))
    opt = torch.optim.Adam(sim.parameters(), lr=1e-2)
    initial = sim.loss(test).item()
    for _ in range(25):
        for batch in WindowLoader(train, 100, shuffle=True):
            opt.zero_grad()
            sim.loss(batch).backward()
            opt.step()
    final = sim.loss(test).item()
    var = test.target_v.sub(test.v[:, -1]).div(test.dt).var().item()  # variance of the true acceleration
    assert final < 1e-3 * var, (initial, final, var)
