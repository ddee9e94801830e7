"""Distributions a rollout should reproduce: interatomic distances h(r) and bond lengths.

**h(r)** (Fu et al., "Forces are not Enough", TMLR 2023) is the distribution of every
pairwise distance of a system over a set of frames ``F``:

.. math::

    h(r) = \\frac{1}{|F| \\, P} \\sum_{f \\in F} \\sum_{i < j} \\delta(r - \\lVert x_{f,i} - x_{f,j} \\rVert),
    \\qquad P = \\binom{n}{2},

with ``n`` points per frame (atoms; the four backbone atoms of every AdK residue). It is
estimated as a density on ``B`` equal bins of width ``dr`` over ``[0, r_max]`` (``sum_b h_b
dr`` plus the mass beyond ``r_max`` is 1: distances of an exploding rollout are counted, in
the overflow, not dropped). The rollout's ``h`` is compared with the reference ``h*`` (the
truth frames of the same starts and strides: recorded frames or the true simulator) by

.. math::

    \\mathrm{MAE}_{h} = \\int_0^\\infty |h(r) - h^*(r)|\\, dr
    \\approx \\sum_b |h_b - h^*_b|\\, dr + |o - o^*| ,

the L1 distance between the two distributions (``o`` the overflow masses): dimensionless,
0 for identical histograms, 2 for disjoint ones. ``r_max`` is 1.1 times the largest
reference distance, the same for every histogram of one comparison.

**Noise floor**: the same MAE between two disjoint halves of the reference frames, the
first and the second half of the strides of every start (with a single stride: even and
odd starts): what finite sampling alone gives. Both halves hold every start, as the
rollout and the reference do, so the floor carries no spread between starts (springs
started with different energies differ far more than two stretches of one run). Each half
holds half the frames, so for independent frames the floor sits about sqrt(2) above that of
a full-size comparison: it errs high. On data whose distribution changes along the horizon
(a transition run) the floor includes that change.

Only the rollout's frames before each start's first unstable stride enter its histograms
(:mod:`graphdyn.evaluation.stability`); a start unstable from stride 1 contributes none.
When ``frames x pairs`` exceeds :data:`MAX_DISTANCES`, frames are evenly subsampled.

**Bond lengths**: per bonded pair, the mean and standard deviation of its length over the
rollout's stable frames and over the reference frames, and the histograms of the deviation
``l - b`` from the pair's reference length pooled over all pairs.

Shapes: frames ``[F, n, D]`` (points); pairs ``[P, 2]``; histograms ``[B]``, edges ``[B + 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from graphdyn.errors import GraphdynError
from graphdyn.evaluation.stability import Bonds, Stability, pair_lengths

#: Most pairwise distances that enter one histogram (frames are subsampled beyond it).
MAX_DISTANCES = 20_000_000
#: Distances computed per chunk (memory bound).
CHUNK_DISTANCES = 2_000_000
#: Default number of bins.
BINS = 100


@dataclass
class Histogram:
    """A density on ``edges`` (``[B + 1]``): ``density`` ``[B]`` and the ``overflow`` mass
    beyond the last edge, from ``frames`` frames."""

    edges: np.ndarray
    density: np.ndarray
    overflow: float
    frames: int

    @property
    def width(self) -> float:
        return float(self.edges[1] - self.edges[0])


def l1_distance(a: Histogram, b: Histogram) -> float:
    """``sum_b |a_b - b_b| dr + |overflow_a - overflow_b|`` of two histograms on one grid."""
    if a.edges.shape != b.edges.shape or not np.allclose(a.edges, b.edges):
        raise GraphdynError("histograms on different bins", field="edges")
    return float(np.abs(a.density - b.density).sum() * a.width + abs(a.overflow - b.overflow))


def _subsample(frames: torch.Tensor, per_frame: int, budget: int) -> torch.Tensor:
    if frames.shape[0] * per_frame <= budget:
        return frames
    keep = max(1, budget // max(per_frame, 1))
    idx = torch.as_tensor(np.linspace(0, frames.shape[0] - 1, keep).round().astype(np.int64), device=frames.device)
    return frames.index_select(0, idx)


def _distance_chunks(frames: torch.Tensor):
    """Yield the flat ``i < j`` distances of ``frames`` ``[F, n, D]``, a few frames at a time
    (at most about :data:`CHUNK_DISTANCES` per chunk), in float32: a relative error of 1e-7
    moves no distance across a bin edge that matters for a histogram, and halves the cost."""
    n = frames.shape[1]
    iu = torch.triu_indices(n, n, offset=1, device=frames.device)
    upper = iu[0] * n + iu[1]  # flat positions of the i < j entries of an n x n matrix
    step = max(1, CHUNK_DISTANCES // max(n * n, 1))
    for a in range(0, frames.shape[0], step):
        x = frames[a:a + step].float()
        yield torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist").flatten(1)[:, upper]


@torch.no_grad()
def distance_histogram(frames: torch.Tensor, edges: np.ndarray) -> Histogram:
    """Histogram density of all ``i < j`` distances over ``frames`` ``[F, n, D]``.

    ``edges``: ``[B + 1]`` equal-width bin edges from 0; bin ``b`` holds ``[edges[b],
    edges[b+1])``. Distances from the last edge on (and non-finite ones, from coordinates
    too large for float32) count in the overflow; frames are evenly subsampled beyond
    :data:`MAX_DISTANCES` distances.
    """
    n = frames.shape[1]
    n_pairs = n * (n - 1) // 2
    frames = _subsample(frames, n_pairs, MAX_DISTANCES)
    lo, hi, bins = float(edges[0]), float(edges[-1]), len(edges) - 1
    counts = torch.zeros(bins + 1, dtype=torch.float64, device=frames.device)
    for d in _distance_chunks(frames):
        q = ((d - lo) * (bins / (hi - lo))).nan_to_num_(nan=bins, posinf=bins).clamp_(0, bins).long()
        counts += torch.bincount(q.flatten(), minlength=bins + 1).double()
    total = max(frames.shape[0] * n_pairs, 1)
    density = (counts[:bins] / total / ((hi - lo) / bins)).cpu().numpy()
    return Histogram(np.asarray(edges, dtype=np.float64), density, float(counts[bins]) / total, int(frames.shape[0]))


def _max_distance(frames: torch.Tensor) -> float:
    """Largest pair distance over (an even subsample of) ``frames`` ``[F, n, D]``."""
    n = frames.shape[1]
    frames = _subsample(frames, n * (n - 1) // 2, MAX_DISTANCES)
    return max((float(d.max()) for d in _distance_chunks(frames) if d.numel()), default=0.0)


def _points(x: torch.Tensor) -> torch.Tensor:
    """``[S, K, N, (C,) D]`` -> ``[S, K, N*C, D]``."""
    return x.reshape(x.shape[0], x.shape[1], -1, x.shape[-1])


def halves(truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint halves of reference frames ``[S, K, n, D]``, each ``[F, n, D]``: strides
    ``1 .. K//2`` and ``K//2 + 1 .. K`` of every start, or with a single stride the even and
    odd starts."""
    if truth.shape[1] >= 2:
        mid = truth.shape[1] // 2
        a, b = truth[:, :mid], truth[:, mid:]
    elif truth.shape[0] >= 2:
        a, b = truth[0::2], truth[1::2]
    else:
        raise GraphdynError("a noise floor needs at least two reference frames", field="steps")
    return a.flatten(0, 1), b.flatten(0, 1)


@dataclass
class DistanceComparison:
    """h(r) of a rollout against the reference and the noise floor (None with a single
    reference frame); ``mae`` is None when the rollout has no stable frame."""

    rollout: Histogram
    reference: Histogram
    mae: float | None
    noise_floor: float | None
    frames_used: int
    frames_total: int

    def summary(self) -> dict[str, Any]:
        ratio = None if self.mae is None or not self.noise_floor else self.mae / self.noise_floor
        return {
            "mae": self.mae,
            "noise_floor": self.noise_floor,
            "mae_over_floor": ratio,
            "bins": int(len(self.reference.density)),
            "r_max": float(self.reference.edges[-1]),
            "rollout_frames": self.frames_used,
            "frames": self.frames_total,
            "rollout_overflow": self.rollout.overflow,
            "definition": "integral |h - h_ref| dr of normalised densities (L1, 0..2); rollout frames before instability only; "
                          "noise floor: same between the first and second half of the reference strides",
        }


@torch.no_grad()
def compare_distances(pred: torch.Tensor, truth: torch.Tensor, stab: Stability | None = None, bins: int = BINS) -> DistanceComparison:
    """h(r) of ``pred`` (its stable frames) against ``truth``, both ``[S, K, N, (C,) D]``.

    ``stab`` gives the stable frames (None: every finite frame counts).
    """
    if bins < 2:
        raise GraphdynError(f"need at least 2 bins, got {bins}", field="eval.hr_bins")
    p, t = _points(pred), _points(truth).double()
    if p.shape[2] < 2:
        raise GraphdynError("h(r) needs at least two points per frame", field="positions")
    mask = torch.isfinite(p).flatten(2).all(dim=2)
    if stab is not None:
        mask &= torch.as_tensor(stab.frame_mask(), device=p.device)
    r_top = _max_distance(t.flatten(0, 1))
    edges = np.linspace(0.0, 1.1 * max(r_top, 1e-12), bins + 1)
    reference = distance_histogram(t.flatten(0, 1), edges)
    floor = None
    if t.shape[0] >= 2 or t.shape[1] >= 2:
        a, b = halves(t)
        floor = l1_distance(distance_histogram(a, edges), distance_histogram(b, edges))
    used = p[mask]
    if used.shape[0]:
        rollout = distance_histogram(used, edges)
        mae = l1_distance(rollout, reference)
    else:
        rollout, mae = Histogram(edges, np.zeros(bins), 0.0, 0), None
    return DistanceComparison(rollout, reference, mae, floor, int(used.shape[0]), int(mask.numel()))


@dataclass
class BondLengths:
    """Per-pair length statistics of a rollout's stable frames against the reference.

    ``mean_*`` / ``std_*`` ``[P]`` (NaN for the rollout when it has no stable frame);
    ``edges`` ``[B + 1]`` and ``dev_*`` ``[B]`` densities of ``l - b`` pooled over pairs.
    """

    bonds: Bonds
    mean_rollout: np.ndarray
    std_rollout: np.ndarray
    mean_reference: np.ndarray
    std_reference: np.ndarray
    edges: np.ndarray
    dev_rollout: np.ndarray
    dev_reference: np.ndarray
    frames_used: int

    def summary(self) -> dict[str, Any]:
        if self.frames_used == 0:
            return {"pairs": self.bonds.count, "rollout_frames": 0}
        err = np.abs(self.mean_rollout - self.mean_reference)
        ratio = self.std_rollout / np.maximum(self.std_reference, 1e-300)
        return {
            "pairs": self.bonds.count,
            "rollout_frames": self.frames_used,
            "mean_length_error_mean": float(err.mean()),
            "mean_length_error_max": float(err.max()),
            "std_ratio_median": float(np.median(ratio)),
            "std_reference_median": float(np.median(self.std_reference)),
        }


@torch.no_grad()
def compare_bond_lengths(pred: torch.Tensor, truth: torch.Tensor, bonds: Bonds, stab: Stability | None = None, bins: int = BINS) -> BondLengths | None:
    """Bond-length statistics of ``pred`` (stable frames) and ``truth``, ``[S, K, N, (C,) D]``
    each; None when the system has no bonded pairs."""
    if bonds.count == 0:
        return None
    p, t = _points(pred), _points(truth).double()
    mask = torch.isfinite(p).flatten(2).all(dim=2)
    if stab is not None:
        mask &= torch.as_tensor(stab.frame_mask(), device=p.device)
    ref = torch.as_tensor(bonds.reference, dtype=torch.float64, device=t.device)
    lt = pair_lengths(t.flatten(0, 1), bonds.pairs)  # [F, P]
    lp = pair_lengths(p[mask].double(), bonds.pairs)  # [F', P]
    half = max(float((lt - ref).abs().max()) * 1.5, 0.5 * (bonds.threshold or 0.0), 1e-9)
    edges = np.linspace(-half, half, bins + 1)
    width = edges[1] - edges[0]

    def dens(dev: torch.Tensor) -> np.ndarray:
        if dev.numel() == 0:
            return np.zeros(bins)
        return (torch.histc(dev.flatten(), bins=bins, min=-half, max=half) / dev.numel() / width).cpu().numpy()

    nan = np.full(bonds.count, np.nan)
    return BondLengths(
        bonds=bonds,
        mean_rollout=lp.mean(0).cpu().numpy() if lp.shape[0] else nan,
        std_rollout=lp.std(0, unbiased=False).cpu().numpy() if lp.shape[0] else nan,
        mean_reference=lt.mean(0).cpu().numpy(),
        std_reference=lt.std(0, unbiased=False).cpu().numpy(),
        edges=edges,
        dev_rollout=dens(lp - ref),
        dev_reference=dens(lt - ref),
        frames_used=int(lp.shape[0]),
    )
