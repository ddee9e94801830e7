"""ST_TFN: shapes, frames processed independently, softmax pooling, time embedding, inputs that
matter, refusals. The model-level checks are functions of the model name, reused by test_st_se3tr.py."""

from __future__ import annotations

import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model
from tests.models.test_equivariance_models import B, N, T, info_for, ring_batch


def build(name: str, **params):
    batch = ring_batch(None).to(dtype=torch.float64)
    torch.manual_seed(0)
    return build_model(name, params, info_for(batch, None)).double(), batch


def check_shapes(name: str) -> None:
    model, batch = build(name)
    frames = model.frames(batch)
    assert frames.shape == (B, T, N, 3)
    out = model(batch)
    assert out.shape == (B, N, 3) and torch.isfinite(out).all()
    assert (frames - batch.x).abs().max() > 1e-4  # the network moves the positions


def check_frames_are_independent(name: str) -> None:
    """Moving the atoms of one frame changes that frame's prediction only."""
    model, batch = build(name)
    frames = model.frames(batch)
    x = batch.x.clone()
    x[:, 2] += torch.randn(x[:, 2].shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    moved = model.frames(batch.with_inputs(x))
    changed = (moved - frames).abs().amax(dim=(0, 2, 3))
    assert changed[2] > 1e-4
    assert torch.equal(changed[[t for t in range(T) if t != 2]], torch.zeros(T - 1, dtype=x.dtype))


def check_softmax_pooling(name: str) -> None:
    """The prediction is the softmax(theta)-weighted average of the frames, weights summing to one."""
    model, batch = build(name)
    with torch.no_grad():
        model.pool.weights.copy_(torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64))
    w = torch.softmax(model.pool.weights, 0)
    torch.testing.assert_close(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(model(batch), torch.einsum("t,btnd->bnd", w, model.frames(batch)))
    with torch.no_grad():
        model.pool.weights.zero_()  # the initial state: the plain mean of the frames
    torch.testing.assert_close(model(batch), model.frames(batch).mean(1))


def check_time_embedding_tells_frames_apart(name: str) -> None:
    """With the same positions in every frame, the frames' predictions still differ (E[t])."""
    model, batch = build(name)
    still = batch.with_inputs(batch.x[:, :1].expand_as(batch.x).contiguous())
    frames = model.frames(still)
    assert (frames[:, 1:] - frames[:, :1]).abs().max() > 1e-4
    with torch.no_grad():
        model.time_embed.weight.zero_()
    frames = model.frames(still)
    torch.testing.assert_close(frames[:, 1:], frames[:, :1].expand_as(frames[:, 1:]))


def check_inputs_matter(name: str) -> None:
    model, batch = build(name)
    out = model(batch)
    others = {
        "node_attr": batch.node_attr + 1.0,
        "edge_attr": batch.edge_attr + 1.0,
    }
    for field, value in others.items():
        changed = type(batch)(**{**batch.__dict__, field: value})
        assert (model(changed) - out).abs().max() > 1e-6, field
    assert (model(batch.with_inputs(batch.x * 1.5)) - out).abs().max() > 1e-4
    without = build(name, use_edge_attr=False)[0]
    nothing = type(batch)(**{**batch.__dict__, "edge_attr": None})
    assert torch.isfinite(without(nothing)).all()


def check_refusals(name: str) -> None:
    model, batch = build(name)
    with pytest.raises(GraphdynError, match="edge attributes"):
        model(type(batch)(**{**batch.__dict__, "edge_attr": None}))
    info2d = DataInfo(dim=2, channels=None, node_attr_dim=2, edge_attr_dim=2, T=T, n_nodes=N, has_velocities=False)
    with pytest.raises(GraphdynError, match="3-D"):
        build_model(name, {}, info2d)
    with pytest.raises(GraphdynError, match="channels"):
        build_model(name, {"channels": 0}, info_for(batch, None))


CHECKS = [
    check_shapes,
    check_frames_are_independent,
    check_softmax_pooling,
    check_time_embedding_tells_frames_apart,
    check_inputs_matter,
    check_refusals,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_st_tfn(check):
    check("st_tfn")


def test_layers_counts_the_convolutions_and_the_last_one_outputs_a_vector():
    model, _ = build("st_tfn", layers=3)
    assert len(model.layers) == 3
    assert str(model.layers[-1].irreps_out) == "1x1o" and model.layers[-1].gate is None
    assert str(model.layers[0].irreps_in) == "8x0e"  # no type-1 input: the authors' zero velocities


def test_full_kernel_and_sum_aggregation_build_and_run():
    model, batch = build("st_tfn", kernel="full", aggr="sum", channels=4)
    assert model(batch).shape == (B, N, 3)
