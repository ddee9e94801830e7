"""graphdyn.testing: the checker passes on equivariant models and fails on broken ones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.evaluation.equivariance import DEFAULT_SYMMETRIES, TRANSFORMS
from graphdyn.models.base import DataInfo, DynamicsModel, Params
from graphdyn.models.registry import build_model
from graphdyn.nn.mlp import MLP
from graphdyn.nn.scatter import scatter_sum
from graphdyn.simulator import LearnedSimulator
from graphdyn.testing import assert_equivariant, assert_invariant


def make_batch(B=3, T=3, N=5, D=3, C=None, seed=0) -> Batch:
    """Random windows of a fully connected graph, velocities and edge attributes included."""
    g = torch.Generator().manual_seed(seed)
    node = (N,) + ((C,) if C else ()) + (D,)
    i, j = torch.meshgrid(torch.arange(N), torch.arange(N), indexing="ij")
    keep = i != j
    edge_index = torch.stack([i[keep], j[keep]])
    return Batch(
        x=torch.randn(B, T, *node, generator=g),
        v=torch.randn(B, T, *node, generator=g),
        target_x=torch.randn(B, *node, generator=g),
        target_v=torch.randn(B, *node, generator=g),
        node_attr=torch.randn(N, 2, generator=g).expand(B, N, 2),
        edge_index=edge_index,
        edge_attr=torch.randn(edge_index.shape[1], 1, generator=g),
        dt=0.1,
    )


def info_for(batch: Batch) -> DataInfo:
    multi = batch.x.dim() == 5
    return DataInfo(
        dim=batch.x.shape[-1], channels=batch.x.shape[3] if multi else None, node_attr_dim=batch.node_attr.shape[-1],
        edge_attr_dim=batch.edge_attr.shape[-1], T=batch.n_frames, n_nodes=batch.n_nodes, has_velocities=True,
    )


class ToyParams(Params):
    hidden: int = 8
    target: str = "displacement"
    history: bool = False  # also read x(0) - x(T-1): E(n)-equivariant, not per-frame-shift equivariant


class ToyEGNN(DynamicsModel):
    """A one-layer EGNN on the last frame (any channels), with a speed-gated velocity term.

    out_i = sum_j (x_i - x_j) phi_x(m_ij) + v_i phi_v(a_i, |v_i|^2)  per channel,
    m_ij = phi_e(a_i, a_j, |x_i - x_j|^2, e_ij); ``position`` adds x_i.
    """

    Params = ToyParams
    needs_velocities = True
    equivariant = True

    def __init__(self, info: DataInfo, params: ToyParams):
        super().__init__(info, params)
        self.target = params.target
        C, A, K, H = info.channels or 1, info.node_attr_dim, info.edge_attr_dim, params.hidden
        # only the last frame is read, so a per-frame shift moves the output with that frame
        self.symmetries = DEFAULT_SYMMETRIES + (() if params.history else ("frame_translation",))
        self.edge_mlp = MLP([2 * A + C + K, H, H], act="silu", final_act=True)
        self.coord_mlp = MLP([H, H, C], act="silu")
        self.vel_mlp = MLP([A + C, H, C], act="silu")

    def forward(self, batch: Batch) -> torch.Tensor:
        multi = self.info.channels is not None
        x, v = batch.x[:, -1], batch.v[:, -1]
        if not multi:
            x, v = x.unsqueeze(-2), v.unsqueeze(-2)  # [B, N, 1, D]
        B, N = x.shape[:2]
        i, j = batch.edge_index
        d = x[:, i] - x[:, j]  # [B, E, C, D]
        a = batch.node_attr
        e = batch.edge_attr.expand(B, *batch.edge_attr.shape)
        m = self.edge_mlp(torch.cat([a[:, i], a[:, j], (d * d).sum(-1), e], -1))
        out = scatter_sum(d * self.coord_mlp(m).unsqueeze(-1), i, N, dim=1)
        out = out + v * self.vel_mlp(torch.cat([a, (v * v).sum(-1)], -1)).unsqueeze(-1)
        if self.params.history:
            first = batch.x[:, 0] if multi else batch.x[:, 0].unsqueeze(-2)
            out = out + 0.3 * (first - x)
        out = 0.1 * out  # keeps short rollouts bounded
        if self.target == "position":
            out = x + out
        return out if multi else out.squeeze(-2)


class VelocityAsPoint(ToyEGNN):
    """Bug: mixes a position into a vector output (x_i + v_i), so translations leak in."""

    def forward(self, batch: Batch) -> torch.Tensor:
        return 0.1 * (batch.x[:, -1] + batch.v[:, -1])


class CrossProduct(ToyEGNN):
    """sum_j (x_i - x_j) x v_i: a pseudo-vector, right under rotations, sign-flipped under reflections."""

    def forward(self, batch: Batch) -> torch.Tensor:
        i, j = batch.edge_index
        x, v = batch.x[:, -1], batch.v[:, -1]
        return scatter_sum(torch.linalg.cross(x[:, i] - x[:, j], v[:, i]), i, batch.n_nodes, dim=1)


def toy(batch: Batch, cls=ToyEGNN, **params) -> DynamicsModel:
    torch.manual_seed(0)
    return cls(info_for(batch), ToyParams(**params))


@pytest.mark.parametrize("channels", [None, 4])
@pytest.mark.parametrize("target", ["displacement", "position"])
def test_equivariant_toy_passes_every_transform(channels, target):
    batch = make_batch(C=channels)
    report = assert_equivariant(toy(batch, target=target), batch)
    assert report.passed
    assert set(report.transforms) == set(TRANSFORMS)
    # the declared per-frame translation was asserted, and every deviation is round-off
    assert report.get("prediction", "frame_translation").asserted
    assert report.worst() < 1e-12
    assert report.get("prediction", "rotation").scale > 0.1  # the output is not trivially zero


def test_spatio_temporal_model_reports_frame_translation_without_asserting_it():
    batch = make_batch(T=4)
    model = toy(batch, history=True)
    report = assert_equivariant(model, batch)  # E(n) holds: passes
    dev = report.get("prediction", "frame_translation")
    assert not dev.asserted and dev.max_abs > 1e-3
    assert "(" in report.table()
    model.symmetries = TRANSFORMS  # a model that wrongly claims per-frame translation equivariance
    with pytest.raises(AssertionError, match="frame_translation"):
        assert_equivariant(model, batch)


def test_notebook_gnn_fails_on_3d_but_is_permutation_equivariant():
    batch = make_batch()
    gnn = build_model("gnn", {"hidden": 16}, info_for(batch))
    assert gnn.symmetries == ("permutation",)
    assert_equivariant(gnn, batch)  # what it declares holds; rotations are only reported
    gnn.symmetries = ("rotation", "reflection", "translation", "permutation")  # claim E(n): the check must fail
    with pytest.raises(AssertionError) as err:
        assert_equivariant(gnn, batch)
    msg = str(err.value)
    assert "rotation" in msg and "FAIL" in msg
    report = assert_equivariant(gnn, batch, transforms=("permutation",))
    assert report.worst() < 1e-12


def test_gnn_with_relative_positions_is_translation_but_not_rotation_equivariant():
    batch = make_batch()
    gnn = build_model("gnn", {"relative_positions": True}, info_for(batch))
    assert gnn.symmetries == ("translation", "permutation")
    assert_equivariant(gnn, batch, transforms=("translation", "permutation"))
    gnn.symmetries = ("rotation", "translation", "permutation")
    with pytest.raises(AssertionError, match="rotation"):
        assert_equivariant(gnn, batch, transforms=("rotation",))


def test_positions_and_velocities_are_typed_differently():
    batch = make_batch()
    bad = toy(batch, cls=VelocityAsPoint)
    assert_equivariant(bad, batch, transforms=("rotation", "reflection", "permutation"))
    with pytest.raises(AssertionError, match="translation"):
        assert_equivariant(bad, batch, transforms=("translation",))


def test_reflection_is_checked_apart_from_rotation():
    batch = make_batch()
    model = toy(batch, cls=CrossProduct)
    assert_equivariant(model, batch, transforms=("rotation", "translation", "permutation"))
    with pytest.raises(AssertionError, match="reflection"):
        assert_equivariant(model, batch, transforms=("reflection",))


def test_users_model_is_left_untouched():
    batch = make_batch()
    model = toy(batch)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x_before = batch.x.clone()
    assert_equivariant(model, batch, steps=2)
    assert model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert batch.x.dtype == torch.float32 and torch.equal(batch.x, x_before)


def test_simulator_step_and_rollout_outputs_are_checked():
    batch = make_batch(C=2)
    sim = LearnedSimulator(toy(batch, target="displacement"), target_scale=0.5)
    report = assert_equivariant(sim, batch, steps=3, n_trials=2)
    names = set(report.outputs)
    assert {"prediction", "step x", "step v", "x@1", "x@3", "v@3"} <= names
    assert report.worst() < 1e-10


def test_same_seed_same_report_other_seed_other_draws():
    batch = make_batch()
    model = toy(batch, history=True)
    a = assert_equivariant(model, batch, seed=3).get("prediction", "frame_translation").max_abs
    b = assert_equivariant(model, batch, seed=3).get("prediction", "frame_translation").max_abs
    c = assert_equivariant(model, batch, seed=4).get("prediction", "frame_translation").max_abs
    assert a == b and a != c


class WithFeatures(ToyEGNN):
    """Declares internal invariants; ``centred`` False leaves a per-frame shift in them."""

    centred = True

    def invariant_features(self, batch: Batch) -> dict:
        x = batch.x
        if self.centred:
            x = x - x.mean(dim=2, keepdim=True)  # centre every frame
        i, j = batch.edge_index
        return {"norms": ((x * x).sum(-1).transpose(1, 2), "node"), "spread": ((x[:, :, i] * x[:, :, j]).sum(-1).transpose(1, 2), "edge")}


def test_declared_invariant_features_are_asserted_under_per_frame_shifts():
    batch = make_batch(T=4)
    model = toy(batch, cls=WithFeatures, history=True)
    report = assert_equivariant(model, batch)
    assert report.get("feature norms", "frame_translation").asserted
    model.centred = False
    with pytest.raises(AssertionError, match="feature norms"):
        assert_equivariant(model, batch)


def test_assert_invariant_on_feature_functions():
    batch = make_batch(T=4)

    def centred_gram(b: Batch) -> torch.Tensor:  # [B, E, T] edge scalars
        x = b.x - b.x.mean(dim=2, keepdim=True)
        i, j = b.edge_index
        return (x[:, :, i] * x[:, :, j]).sum(-1).transpose(1, 2)

    report = assert_invariant(centred_gram, batch, where="edge")
    assert report.worst() < 1e-12
    both = assert_invariant(lambda b: {"gram": (centred_gram(b), "edge"), "attr": b.node_attr}, batch)
    assert both.outputs == ["gram", "attr"] and both.passed
    with pytest.raises(AssertionError, match="frame_translation"):
        assert_invariant(lambda b: b.x.norm(dim=-1).transpose(1, 2), batch, transforms=("frame_translation",))
    with pytest.raises(ValueError, match="edge"):  # node rows declared as edge rows
        assert_invariant(lambda b: (b.x * b.x).sum(-1).transpose(1, 2), batch, where="edge")


class Silent(nn.Module):
    """A plain module is fine as long as it has a target."""

    target = "acceleration"

    def forward(self, batch: Batch) -> torch.Tensor:
        return torch.zeros_like(batch.x[:, -1])


def test_any_module_with_a_target_can_be_checked():
    batch = make_batch(D=2)
    assert assert_equivariant(Silent(), batch).worst() == 0.0
