"""CopyLast: copies the chosen observed frame, and survives a generic training step unchanged."""

from __future__ import annotations

import pytest
import torch

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model


def make(params=None, channels=None):
    node = (3,) + ((channels,) if channels else ()) + (3,)
    batch = Batch(x=torch.randn(2, 4, *node), target_x=torch.randn(2, *node), node_attr=torch.ones(2, 3, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), dt=1.0)
    info = DataInfo(dim=3, channels=channels, node_attr_dim=1, edge_attr_dim=0, T=4, n_nodes=3, has_velocities=False)
    return build_model("copy_last", params or {}, info), batch


@pytest.mark.parametrize("channels", [None, 4])
def test_copies_last_or_chosen_frame(channels):
    model, batch = make(channels=channels)
    assert torch.equal(model(batch), batch.x[:, -1]) and model.target == "position"
    first, _ = make({"frame": 0}, channels)
    assert torch.equal(first(batch), batch.x[:, 0])


def test_training_steps_change_nothing():
    model, batch = make()
    opt = torch.optim.Adam(model.parameters(), lr=0.1, weight_decay=1e-3)
    for _ in range(3):
        opt.zero_grad()
        ((model(batch) - batch.target_x) ** 2).mean().backward()
        opt.step()
    assert torch.equal(model(batch), batch.x[:, -1])


def test_bad_frame():
    with pytest.raises(GraphdynError, match="frame"):
        make({"frame": -5})
