"""EGNN baseline: one observed frame in, positions out; frame choice, edge attributes, equivariance."""

from __future__ import annotations

import pytest
import torch

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model

B, T, N = 2, 4, 5
EDGES = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4], [1, 0, 2, 1, 3, 2, 4, 3]])


def make(channels=None, params=None, edge_attr_dim=2):
    g = torch.Generator().manual_seed(0)
    node = (N,) + ((channels,) if channels else ()) + (3,)
    batch = Batch(
        x=torch.randn(B, T, *node, generator=g, dtype=torch.float64),
        target_x=torch.randn(B, *node, generator=g, dtype=torch.float64),
        node_attr=torch.randn(B, N, 1, generator=g, dtype=torch.float64),
        edge_index=EDGES,
        edge_attr=torch.randn(EDGES.shape[1], edge_attr_dim, generator=g, dtype=torch.float64) if edge_attr_dim else None,
        dt=1.0,
    )
    info = DataInfo(dim=3, channels=channels, node_attr_dim=1, edge_attr_dim=edge_attr_dim, T=T, n_nodes=N, has_velocities=False)
    torch.manual_seed(0)
    model = build_model("egnn", params or {}, info).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".coord.2." in name:
                p.normal_(0, 0.5)
    return model, batch


@pytest.mark.parametrize("channels", [None, 3])
def test_shape_and_only_the_chosen_frame_matters(channels):
    model, batch = make(channels)
    out = model(batch)
    assert out.shape == batch.target_x.shape and model.target == "position"
    assert (out - batch.x[:, -1]).abs().max() > 1e-3  # x_last + update
    batch.x[:, :-1] += 10.0  # earlier frames are ignored by EGNN-t
    torch.testing.assert_close(model(batch), out)
    first, _ = make(channels, {"frame": 0})
    first.load_state_dict(model.state_dict())
    assert (first(batch) - out).abs().max() > 1e-3


def test_edge_attributes_used_unless_switched_off():
    model, batch = make()
    out = model(batch)
    batch.edge_attr = batch.edge_attr * 2
    assert (model(batch) - out).abs().max() > 0
    plain, _ = make(params={"use_edge_attr": False})
    assert plain.layers[0].edge_attr_dim == 0
    batch.edge_attr = None
    with pytest.raises(GraphdynError, match="edge attributes"):
        model(batch)


@pytest.mark.parametrize("channels,params", [(None, {}), (None, {"unit_vectors": True, "clamp": 100.0}), (3, {"coord_weight": 3.0})])
def test_rotation_translation_equivariance_float64(channels, params):
    model, batch = make(channels, params)
    g = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    shift = torch.randn(3, generator=g, dtype=torch.float64)
    out = model(batch)
    batch.x = batch.x @ q.T + shift
    torch.testing.assert_close(model(batch), out @ q.T + shift, rtol=1e-10, atol=1e-10)


def test_bad_frame():
    with pytest.raises(GraphdynError, match="frame"):
        make(params={"frame": 4})
