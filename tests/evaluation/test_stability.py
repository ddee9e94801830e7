"""Rollout stability on cases with a known answer: true rollouts are stable, explosions, NaNs
and stretched bonds are caught at exactly their stride, and every dataset kind has its
bonded pairs (or none, said so)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from graphdyn.data.registry import DataSplits
from graphdyn.errors import GraphdynError
from graphdyn.evaluation.rollout import rollout_test, summary_lines
from graphdyn.evaluation.stability import MOLECULE_THRESHOLD, bonds_for, diverged_message, reference_frames, stability
from graphdyn.models.base import DataInfo, DynamicsModel, Params
from graphdyn.simulator import LearnedSimulator
from graphdyn.training.config import parse_config

from rollout_cases import result_of, true_rollout


class PhysicsOracle(DynamicsModel):
    """Predicts the true acceleration of a spring system: a perfect model."""

    target = "acceleration"

    def __init__(self, splits: DataSplits):
        ds = splits.train
        super().__init__(DataInfo(ds.traj.dim, None, 1, 0, ds.T, ds.traj.n_nodes, True), Params())
        self.system = splits.dynamics.system
        self.dummy = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, batch):
        x = batch.x[:, -1]
        return self.system.forces(x) / self.system.masses.to(x)[:, None]


def test_true_simulator_rollout_is_stable_to_the_end(datasets):
    splits = datasets("springs")
    res = rollout_test(LearnedSimulator(PhysicsOracle(splits)).double(), splits, steps=200, n_starts=8)
    assert res.mse.max() < 1e-20  # the oracle is the physics
    s = res.summary()
    st = s["stability"]
    assert st["stable_to_end"] == 8 and st["stable_strides_min"] == 200 and st["diverged_starts"] == 0 and "diverged" not in s
    assert s["truth_stable_to_end"] == 8 and st["pairs"] == 2 and 0 < st["max_bond_deviation"] < st["threshold"]
    assert s["h_r"]["mae"] < 1e-9 < s["h_r"]["noise_floor"]


@pytest.mark.parametrize("kind", ["md17", "mocap", "adk", "springs_ring"])
def test_recorded_and_simulated_truth_is_stable(kind, datasets):
    splits = datasets(kind)
    _, truth = true_rollout(splits, steps=8, starts=4)
    stab = stability(truth, bonds_for(splits))
    assert (stab.first_unstable == 0).all() and (stab.stable_strides == 8).all() and stab.cause == ["stable"] * 4
    # the default threshold is far above what the data itself does
    assert stab.max_deviation.max() < 0.5 * stab.bonds.threshold


def _stretch(truth: torch.Tensor, pair: tuple[int, int], by: float, from_stride: int) -> torch.Tensor:
    """Move atom ``pair[1]`` away from ``pair[0]`` by ``by`` along their bond from ``from_stride`` (1-based) on."""
    out = truth.clone()
    i, j = pair
    u = out[:, from_stride - 1:, j] - out[:, from_stride - 1:, i]
    out[:, from_stride - 1:, j] += by * u / u.norm(dim=-1, keepdim=True)
    return out


@pytest.mark.parametrize("k", [1, 5, 12])
def test_bond_stretched_past_the_threshold_is_caught_at_its_stride(k, datasets):
    splits = datasets("md17")
    bonds = bonds_for(splits)
    assert bonds.threshold == MOLECULE_THRESHOLD
    _, truth = true_rollout(splits, steps=20, starts=4)
    natural = stability(truth, bonds).max_deviation.max()
    assert natural < 0.15  # thermal vibration at 500 K: well inside the margins used below
    i, j = bonds.pairs[1]
    for by in (0.7, -0.7):  # stretched and compressed by more than threshold + vibration
        stab = stability(_stretch(truth, (i, j), by, k), bonds)
        assert (stab.first_unstable == k).all() and stab.cause == ["bond"] * 4 and (stab.first_nonfinite == 0).all()
        assert (stab.stable_strides == k - 1).all()
    stab = stability(_stretch(truth, (i, j), 0.3, k), bonds)  # 0.3 + vibration < 0.5: still a molecule
    assert (stab.first_unstable == 0).all()
    tight = bonds_for(splits, threshold=0.2)  # the configurable threshold catches it
    assert tight.threshold == 0.2 and "set" in tight.rule
    assert (stability(_stretch(truth, (i, j), 0.35, k), tight).first_unstable == k).all()


def test_nan_injected_at_stride_k_is_reported_at_k(datasets):
    splits = datasets("md17")
    _, truth = true_rollout(splits, steps=20, starts=4)
    pred = truth.clone().float()
    pred[1, 6:, 2, 0] = float("nan")  # stride 7 onwards, one coordinate
    pred[3, 15:] = float("inf")
    stab = stability(pred, bonds_for(splits))
    assert stab.first_unstable.tolist() == [0, 7, 0, 16] and stab.first_nonfinite.tolist() == [0, 7, 0, 16]
    assert stab.cause == ["stable", "non-finite", "stable", "non-finite"]
    assert stab.stable_strides.tolist() == [20, 6, 20, 15]
    assert diverged_message(stab.first_nonfinite) == "diverged at stride 7 in 2 of 4 starts"
    s = stab.summary()
    assert s["diverged_starts"] == 2 and s["diverged_first_stride"] == 7 and s["stable_to_end"] == 2 and s["stable_strides_min"] == 6
    mask = stab.frame_mask()
    assert mask.sum() == 20 + 6 + 20 + 15 and not mask[1, 6:].any()


@pytest.mark.parametrize("kind", ["md17", "gravity"])
def test_explosion_is_unstable_at_its_first_stride(kind, datasets):
    """Coordinates multiplied by 1e10 per stride from stride k0: bonds break at k0, float32
    overflows to inf at k0 + 3 (|x| of order 0.1-10 times 1e40). Without bonds (gravity) only
    the overflow counts."""
    splits = datasets(kind)
    _, truth = true_rollout(splits, steps=12, starts=3)
    k0 = 4
    strides = torch.arange(1, 13, dtype=torch.float64)
    factor = torch.where(strides >= k0, 10.0 ** (10 * (strides - k0 + 1)), torch.ones(()))
    centre = truth.mean(dim=2, keepdim=True)
    pred = (centre + (truth - centre) * factor.view(1, -1, 1, 1)).float()
    assert torch.isfinite(pred[:, :k0 + 2]).all() and not torch.isfinite(pred[:, k0 + 2]).all(dim=(1, 2)).any()
    stab = stability(pred, bonds_for(splits))
    assert (stab.first_nonfinite == k0 + 3).all()
    if kind == "md17":
        assert (stab.first_unstable == k0).all() and stab.cause == ["bond"] * 3
    else:
        assert stab.bonds.count == 0 and stab.bonds.threshold is None
        assert (stab.first_unstable == k0 + 3).all() and stab.cause == ["non-finite"] * 3


def test_particles_flying_apart_are_stable_without_bonds(datasets):
    splits = datasets("charged")
    start, truth = true_rollout(splits, steps=10, starts=3)
    pred = truth * torch.linspace(1, 1e6, 10, dtype=torch.float64).view(1, -1, 1, 1)  # finite, far apart
    stab = stability(pred, bonds_for(splits))
    assert (stab.first_unstable == 0).all() and "only non-finite" in stab.bonds.what


def test_bonded_pairs_of_every_dataset_kind(datasets):
    md17 = bonds_for(datasets("md17"))
    traj = datasets("md17").test.traj
    hop1 = traj.edge_index[:, traj.edge_attr[:, 2] == 1]
    assert md17.pairs.tolist() == [[0, 1], [1, 2]]  # ethanol heavy atoms C, C, O: C-C and C-O
    assert {tuple(sorted(p)) for p in hop1.T.tolist()} == {tuple(p) for p in md17.pairs.tolist()}
    assert md17.count == traj.metadata["graph"]["bonds"] and "Fu et al." in md17.rule
    assert 1.3 < md17.reference.min() and md17.reference.max() < 1.6  # C-O 1.42, C-C 1.52 A

    mocap = datasets("mocap")
    bones = bonds_for(mocap)
    n = mocap.test.traj.n_nodes
    assert bones.count == n - 1 and bones.channels == 1  # a tree: one bone per joint but the root
    lengths = np.linalg.norm(np.diff(reference_frames(mocap.train)[:, bones.pairs], axis=2)[:, :, 0], axis=-1)
    assert lengths.std(0).max() < 1e-6 * lengths.mean()  # forward kinematics: rigid bones
    assert bones.threshold == pytest.approx(0.25 * bones.reference.mean())

    adk = datasets("adk")
    backbone = bonds_for(adk)
    n = adk.test.traj.n_nodes
    assert backbone.channels == 4 and backbone.count == 3 * n + (n - 1)  # N-CA, CA-C, C-O per residue, C-N peptide bonds
    assert 1.1 < backbone.reference.min() and backbone.reference.max() < 1.6 and backbone.threshold == MOLECULE_THRESHOLD
    assert [0, 1] in backbone.pairs.tolist() and [2, 4] in backbone.pairs.tolist()  # N0-CA0, C0-N1

    springs = datasets("springs_ring")
    sp = bonds_for(springs)
    assert sp.pairs.tolist() == sorted(sorted(p) for p in springs.dynamics.system.springs.tolist()) and sp.count == 5
    assert "largest recorded deviation" in sp.rule and sp.threshold > 0

    for kind in ("charged", "gravity"):
        b = bonds_for(datasets(kind))
        assert b.count == 0 and b.threshold is None


def test_reference_length_is_the_mean_over_the_training_frames(datasets):
    splits = datasets("md17")
    ds = splits.train
    frames = sorted({int(s + m * ds.delta) for s in ds.starts[:, 1] for m in range(ds.T + 1)})
    x = ds.traj.positions[0, frames]
    bonds = bonds_for(splits)
    want = [np.linalg.norm(x[:, i] - x[:, j], axis=-1).mean() for i, j in bonds.pairs]
    np.testing.assert_allclose(bonds.reference, want, rtol=1e-12)


def test_threshold_must_be_positive(datasets):
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(GraphdynError, match="eval.stability_threshold"):
            bonds_for(datasets("md17"), bad)
    with pytest.raises(GraphdynError, match="stability_threshold"):
        parse_config({"eval": {"stability_threshold": 0}})
    assert parse_config({"eval": {"stability_threshold": 0.3}}).eval.stability_threshold == 0.3


def test_a_rollout_diverged_everywhere_reads_diverged_never_nan(datasets):
    splits = datasets("md17")
    start, truth = true_rollout(splits, steps=10, starts=4)
    pred = truth.clone()
    pred[:, 2:] = float("nan")
    pred[0, 0] = float("nan")
    from graphdyn.evaluation.rollout import measure_rollout

    res = measure_rollout(result_of(pred, truth, start), splits)
    s = res.summary()
    text = json.dumps(s) + "\n".join(summary_lines(s))
    assert s["diverged"] == "diverged at stride 1 in 4 of 4 starts" and s["final_mse_mean"] is None and s["finite_starts"] == 0
    assert "diverged at stride 1 in 4 of 4 starts" in text and not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert s["stability"]["stable_strides"] == [0, 2, 2, 2] and s["h_r"]["rollout_frames"] == 6
