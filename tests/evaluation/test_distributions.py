"""h(r) and bond-length distributions on cases with a known answer: exact histograms of known
distances, an independent sample of the true dynamics at the noise floor, a wrong
distribution far above it, only stable frames counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rollout_cases import true_rollout

from graphdyn.errors import GraphdynError
from graphdyn.evaluation.distributions import (
    Histogram,
    compare_bond_lengths,
    compare_distances,
    distance_histogram,
    halves,
    l1_distance,
)
from graphdyn.evaluation.stability import bonds_for, stability


def test_histogram_of_known_distances():
    # three points on a line: distances 1, 2 and 3 in every frame
    frames = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]]).repeat(5, 1, 1)
    edges = np.linspace(0.0, 2.5, 6)  # bins of 0.5: 1 -> bin 2, 2 -> bin 4, 3 -> overflow
    h = distance_histogram(frames, edges)
    np.testing.assert_allclose(h.density, [0, 0, 2 / 3, 0, 2 / 3], atol=1e-12)  # mass 1/3 each, width 0.5
    assert h.overflow == pytest.approx(1 / 3) and h.frames == 5
    assert h.density.sum() * h.width + h.overflow == pytest.approx(1.0)


def test_l1_distance_is_zero_for_equal_and_two_for_disjoint():
    edges = np.linspace(0, 4, 5)
    a = Histogram(edges, np.array([1.0, 0, 0, 0]), 0.0, 1)
    b = Histogram(edges, np.array([0, 0, 0, 0.5]), 0.5, 1)
    assert l1_distance(a, a) == 0 and l1_distance(a, b) == pytest.approx(2.0)
    with pytest.raises(GraphdynError, match="different bins"):
        l1_distance(a, Histogram(np.linspace(0, 5, 5), a.density, 0.0, 1))


def test_noise_floor_halves_are_disjoint():
    t = torch.arange(3 * 4 * 2 * 1, dtype=torch.float64).reshape(3, 4, 2, 1)
    a, b = halves(t)
    assert a.shape == b.shape == (6, 2, 1) and set(a[:, 0, 0].tolist()).isdisjoint(b[:, 0, 0].tolist())
    a, b = halves(t[:, :1])  # one stride: even and odd starts
    assert a.shape == (2, 2, 1) and b.shape == (1, 2, 1)


@pytest.mark.parametrize("kind", ["springs", "springs_ring"])
def test_a_continued_true_rollout_sits_at_the_noise_floor(kind, datasets):
    """The true dynamics over strides K+1 .. 2K of the same starts is a perfect simulator that
    has drifted off the truth of strides 1 .. K (as a learned one would): its h(r) MAE lies
    within a factor 2 of the noise floor. The same frames stretched by 30 % lie far above it.
    (Energy is conserved per start and per normal mode: other starts would sample other
    distributions, so the continuation is the fair sample.)"""
    splits = datasets(kind)
    _, both = true_rollout(splits, steps=4000, starts=4)
    truth, later = both[:, :2000], both[:, 2000:]
    cmp = compare_distances(later, truth)
    assert cmp.noise_floor > 0 and 0.5 * cmp.noise_floor <= cmp.mae <= 2 * cmp.noise_floor
    assert cmp.frames_used == cmp.frames_total == 4 * 2000
    assert compare_distances(1.3 * later, truth).mae > 2.5 * cmp.noise_floor


def test_recorded_frames_of_other_starts_sit_at_the_noise_floor(datasets):
    splits = datasets("md17")
    _, truth = true_rollout(splits, steps=60, starts=8)
    _, other = true_rollout(splits, steps=60, starts=8, offset=8)
    cmp = compare_distances(other, truth)
    assert cmp.mae <= 2 * cmp.noise_floor
    assert compare_distances(truth, truth).mae == 0.0


def test_only_frames_before_instability_count(datasets):
    splits = datasets("md17")
    bonds = bonds_for(splits)
    _, truth = true_rollout(splits, steps=20, starts=4)
    pred = truth.clone()
    pred[:2, 10:] *= 100.0  # two starts blow up (finite) from stride 11
    pred[3, 5:] = float("nan")
    stab = stability(pred, bonds)
    assert stab.stable_strides.tolist() == [10, 10, 20, 5]
    cmp = compare_distances(pred, truth, stab)
    assert cmp.frames_used == 10 + 10 + 20 + 5 and cmp.frames_total == 80 and cmp.rollout.overflow == 0
    unfiltered = compare_distances(pred, truth)  # finite frames only, unstable ones included
    assert unfiltered.frames_used == 65 and unfiltered.rollout.overflow == pytest.approx(20 / 65)  # every distance x100 is past r_max
    assert unfiltered.mae > cmp.mae
    pred[:] = float("nan")
    none = compare_distances(pred, truth, stability(pred, bonds))
    assert none.mae is None and none.frames_used == 0 and none.summary()["mae_over_floor"] is None


def test_bond_lengths_per_bond(datasets):
    splits = datasets("md17")
    bonds = bonds_for(splits)
    _, truth = true_rollout(splits, steps=20, starts=4)
    same = compare_bond_lengths(truth, truth, bonds)
    np.testing.assert_allclose(same.mean_rollout, same.mean_reference)
    assert same.summary()["mean_length_error_max"] == 0 and same.summary()["std_ratio_median"] == pytest.approx(1.0)
    i, j = bonds.pairs[0]
    moved = truth.clone()
    u = moved[..., j, :] - moved[..., i, :]
    moved[..., j, :] += 0.1 * u / u.norm(dim=-1, keepdim=True)  # bond 0 longer by exactly 0.1 A
    lengths = compare_bond_lengths(moved, truth, bonds)
    np.testing.assert_allclose(lengths.mean_rollout[0] - lengths.mean_reference[0], 0.1, atol=1e-9)
    assert lengths.std_rollout[0] == pytest.approx(lengths.std_reference[0], rel=1e-9)
    width = lengths.edges[1] - lengths.edges[0]
    assert lengths.dev_rollout.sum() * width == pytest.approx(1.0) and lengths.dev_reference.sum() * width == pytest.approx(1.0)
    assert compare_bond_lengths(truth, truth, bonds_for(datasets("gravity"))) is None
