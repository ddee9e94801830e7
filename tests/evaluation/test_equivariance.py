"""The equivariance core: random transforms, their action on batches and outputs, rollout checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.evaluation.equivariance import (
    DEFAULT_SYMMETRIES,
    Deviation,
    EquivarianceReport,
    Field,
    check_fields,
    check_model,
    check_rollout,
    declared_symmetries,
    random_orthogonal,
    random_transform,
)
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model
from graphdyn.nn.scatter import scatter_sum
from graphdyn.simulator import LearnedSimulator


def chain_batch(B=2, T=3, N=4, D=3, C=None, seed=0, dtype=torch.float64) -> Batch:
    """Random windows of an open chain 0-1-2-..., both edge directions listed."""
    g = torch.Generator().manual_seed(seed)
    node = (N,) + ((C,) if C else ()) + (D,)
    a = torch.arange(N - 1)
    edge_index = torch.cat([torch.stack([a, a + 1]), torch.stack([a + 1, a])], 1)
    return Batch(
        x=torch.randn(B, T, *node, generator=g, dtype=dtype),
        v=torch.randn(B, T, *node, generator=g, dtype=dtype),
        target_x=torch.randn(B, *node, generator=g, dtype=dtype),
        target_v=torch.randn(B, *node, generator=g, dtype=dtype),
        node_attr=torch.arange(N, dtype=dtype)[:, None].expand(B, N, 1),
        edge_index=edge_index,
        edge_attr=torch.arange(edge_index.shape[1], dtype=dtype)[:, None],
        dt=0.05,
    )


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("proper", [True, False])
def test_random_orthogonal_matrices(dim, proper):
    R = random_orthogonal(16, dim, proper=proper, generator=torch.Generator().manual_seed(dim))
    eye = torch.eye(dim, dtype=torch.float64).expand(16, dim, dim)
    assert torch.allclose(R @ R.transpose(1, 2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.full((16,), 1.0 if proper else -1.0, dtype=torch.float64), atol=1e-12)
    if dim > 1:
        assert not torch.allclose(R[0], R[1])  # a different draw for every sample


def test_rotation_acts_on_points_and_vectors_alike_and_keeps_scalars():
    b = chain_batch(C=2)
    g = random_transform("rotation", b, torch.Generator().manual_seed(0))
    out = g.apply(b)
    R = g.rotation
    assert torch.allclose(out.x, torch.einsum("bij,btncj->btnci", R, b.x))
    assert torch.allclose(out.v, torch.einsum("bij,btncj->btnci", R, b.v))
    assert torch.allclose(out.target_v, torch.einsum("bij,bncj->bnci", R, b.target_v))
    assert torch.equal(out.node_attr, b.node_attr) and torch.equal(out.edge_attr, b.edge_attr)
    assert torch.equal(out.edge_index, b.edge_index)
    assert torch.equal(b.x, chain_batch(C=2).x)  # the input batch is not modified


@pytest.mark.parametrize("name", ["translation", "frame_translation"])
def test_shifts_move_points_never_vectors(name):
    b = chain_batch(T=4, C=3)
    g = random_transform(name, b, torch.Generator().manual_seed(1))
    out = g.apply(b)
    shift = out.x - b.x  # [B, T, N, C, D]
    # every node and channel of a frame moves by that frame's shift
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift))
    per_frame = shift[:, :, 0, 0]  # [B, T, D]
    differs = not torch.allclose(per_frame, per_frame[:, :1].expand_as(per_frame))
    assert differs == (name == "frame_translation")
    assert torch.equal(out.v, b.v) and torch.equal(out.target_v, b.target_v)
    # the target position moves with the last observed frame
    assert torch.allclose(out.target_x - b.target_x, per_frame[:, -1, None, None, :].expand_as(b.target_x))
    assert per_frame.abs().max() > 0.3


def test_permutation_relabels_nodes_and_edges_consistently():
    b = chain_batch(N=6)
    g = random_transform("permutation", b, torch.Generator().manual_seed(2))
    out = g.apply(b)
    sigma, eperm = g.node_perm, g.edge_perm
    assert not torch.equal(sigma, torch.arange(6)) and not torch.equal(eperm, torch.arange(10))
    assert torch.equal(out.x, b.x[:, :, sigma]) and torch.equal(out.node_attr, b.node_attr[:, sigma])
    # new edge e is old edge eperm[e] between the same physical nodes, with its attribute
    i_new, j_new = out.edge_index
    i_old, j_old = b.edge_index[:, eperm]
    assert torch.equal(sigma[i_new], i_old) and torch.equal(sigma[j_new], j_old)
    assert torch.equal(out.edge_attr, b.edge_attr[eperm])
    assert torch.equal(out.x[:, :, i_new] - out.x[:, :, j_new], b.x[:, :, i_old] - b.x[:, :, j_old])
    # an edge field follows the edge shuffle, a node field the relabelling
    e_field = Field(torch.arange(10.0).expand(2, 10)[..., None], "scalar", "edge")
    assert torch.equal(g.act(e_field)[0, :, 0], eperm.double())
    n_field = Field(b.x[:, -1], "point")
    assert torch.equal(g.act(n_field), b.x[:, -1, sigma])


def test_point_output_moves_with_the_last_frame():
    b = chain_batch(T=3)
    g = random_transform("frame_translation", b, torch.Generator().manual_seed(3))
    y = torch.randn(2, 4, 3, dtype=torch.float64)
    assert torch.allclose(g.act(Field(y, "point")), y + g.shift[:, -1, None])
    assert torch.equal(g.act(Field(y, "vector")), y)


def test_check_fields_measures_each_transform_and_flags_nan():
    b = chain_batch()

    def fields(batch: Batch) -> dict[str, Field]:
        x = batch.x[:, -1]
        return {
            "centroid": Field(x.mean(1, keepdim=True).expand_as(x), "point"),  # equivariant
            "absolute": Field(x.norm(dim=-1, keepdim=True), "scalar"),  # not translation invariant
        }

    rep = check_fields(fields, b, transforms=("rotation", "translation", "permutation"))
    assert rep.get("centroid", "translation").max_abs < 1e-12
    assert rep.get("absolute", "rotation").max_abs < 1e-12
    assert rep.get("absolute", "translation").max_abs > 1e-2
    assert [(d.output, d.transform) for d in rep.failures] == [("absolute", "translation")]
    nan = EquivarianceReport(atol=1.0, deviations=[Deviation("rotation", "y", math.nan, 1.0, True)])
    assert not nan.passed and math.isnan(nan.worst())


def test_bad_arguments_are_reported():
    b = chain_batch()
    with pytest.raises(GraphdynError, match="unknown transform"):
        check_fields(lambda batch: {}, b, transforms=("shear",))
    with pytest.raises(GraphdynError, match="n_trials"):
        check_fields(lambda batch: {}, b, n_trials=0)

    class Claims(nn.Module):
        symmetries = ("rotation", "galilean")

    with pytest.raises(GraphdynError, match="galilean"):
        declared_symmetries(Claims())
    assert declared_symmetries(nn.Module()) == DEFAULT_SYMMETRIES


class DampedSprings(nn.Module):
    """Acceleration of unit masses on springs along the edges, plus damping: E(n)-equivariant.

    a_i = sum_j -k (|x_i - x_j| - 1) (x_i - x_j) / |x_i - x_j| - gamma v_i  (per channel)
    """

    target = "acceleration"

    def __init__(self):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(2.0))
        self.gamma = nn.Parameter(torch.tensor(0.3))

    def forward(self, batch: Batch) -> torch.Tensor:
        x, v = batch.x[:, -1], batch.v[:, -1]
        i, j = batch.edge_index
        d = x[:, i] - x[:, j]
        r = d.norm(dim=-1, keepdim=True)
        return scatter_sum(-self.k * (r - 1) * d / r, i, batch.n_nodes, dim=1) - self.gamma * v


@pytest.mark.parametrize("channels", [None, 2])
def test_rollout_check_passes_for_physics_and_reports_every_step(channels):
    b = chain_batch(T=2, C=channels, dtype=torch.float32)
    sim = LearnedSimulator(DampedSprings())
    sim.model.symmetries = DEFAULT_SYMMETRIES + ("frame_translation",)  # it reads the last frame only
    rep = check_rollout(sim, b, 12, n_trials=2)
    assert rep.passed, rep.table()
    assert rep.outputs == [f"x@{k:02d}" for k in range(1, 13)] + [f"v@{k:02d}" for k in range(1, 13)]
    assert rep.worst() < 1e-10
    assert rep.get("x@12", "rotation").scale > 0.5
    assert sim.model.k.dtype == torch.float32  # checked on a float64 copy


def test_rollout_check_fails_for_the_notebook_gnn_from_the_first_step():
    b = chain_batch(dtype=torch.float32)
    info = DataInfo(dim=3, channels=None, node_attr_dim=1, edge_attr_dim=1, T=3, n_nodes=4, has_velocities=True)
    torch.manual_seed(0)
    gnn = build_model("gnn", {"target": "velocity_change"}, info)
    assert "rotation" not in gnn.symmetries  # it says so; claim it anyway, the check must catch it
    gnn.symmetries = ("rotation", "reflection", "translation", "permutation")
    rep = check_rollout(gnn, b, 4, transforms=("rotation", "permutation"))
    assert {(d.output, d.transform) for d in rep.failures} == {(f"{q}@{k}", "rotation") for q in "xv" for k in range(1, 5)}
    assert rep.get("x@1", "permutation").max_abs < 1e-12
    assert "FAIL" in rep.table()


def test_one_step_check_of_a_dynamics_model_types_its_output_by_target():
    b = chain_batch(T=2)
    model = DampedSprings()
    assert check_model(model, b).passed
    model.target = "position"  # an acceleration read as a position: translation must now fail
    rep = check_model(model, b, transforms=("translation", "rotation"))
    assert [d.transform for d in rep.failures] == ["translation"]
