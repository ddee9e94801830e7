"""Rollout stability: the first stride at which a rollout stops being physical.

Fu et al., "Forces are not Enough: Benchmark and Critical Evaluation for Machine Learning
Force Fields with Molecular Simulations" (TMLR 2023) call a molecular simulation unstable
once a bond length leaves its equilibrium value by more than a set margin (0.5 A). graphdyn
applies the same test to every rollout: start ``s`` becomes unstable at the first stride
``k`` (counting from 1, the first predicted frame) at which

.. math::

    \\exists\\, \\text{coordinate of } x_{s,k} \\notin \\mathbb{R}
    \\quad\\text{or}\\quad
    \\max_{(i, j) \\in B} \\big|\\, \\lVert x_{s,k,i} - x_{s,k,j} \\rVert - b_{ij} \\big| > \\Delta ,

with ``B`` the bonded pairs of the system (each unordered pair once), ``b_ij`` their
reference lengths and ``Delta`` the threshold. Its *stable strides* are ``k - 1``, or the
whole horizon ``K`` when no stride is unstable.

**Bonded pairs** (:func:`bonded_pairs`), per dataset kind; the data says which edges are
bonds, nothing is guessed from geometry except where noted:

* ``md17``: the 1-hop edges (``edge_attr[:, 2] == 1``, column ``hop`` of ``[Z_i, Z_j,
  hop]``): heavy-atom covalent bonds under 1.6 A in the first frame;
* ``mocap``: the bones (``edge_attr[:, 0] == 1``; 2 marks two-hop pairs);
* ``springs`` (and ``file`` data whose metadata describes a spring system): the springs
  listed in ``metadata["system"]["springs"]``;
* ``adk``: the covalent bonds of the backbone, which the four channels ``N, CA, C, O`` of a
  residue hold: ``N-CA``, ``CA-C``, ``C-O`` in every residue and the peptide bond ``C_i -
  N_{i+1}`` between consecutive nodes whose recorded ``C-N`` distance averages under 2 A
  (nodes are residues in chain order; the test rejects chain breaks and skipped residues).
  Covalent lengths are as rigid as a small molecule's, so the molecular threshold applies;
  the CA-CA contact edges of the graph (6 A cut-off) are not bonds;
* ``charged``, ``gravity`` (and data without bonds): none. Stability then means finite
  coordinates only: particles that fly apart are physical there.

A ``file`` dataset whose metadata names one of these datasets (``metadata["dataset"]``)
is treated as that dataset.

**Reference lengths** ``b``: the mean of each pair's length over the recorded frames the
*training* windows read (their ``T`` observed frames and target), at most
:data:`MAX_REFERENCE_FRAMES` of them, evenly spread. This is Fu et al.'s equilibrium bond
length taken from the reference simulation. It is the same for every start, so a start
whose first frame happens to catch a bond mid-vibration (about 0.05 A at 500 K) is not
judged against a shifted target, and it reads no test frame.

**Threshold** ``Delta`` (``eval.stability_threshold`` overrides it; same length unit as the
positions):

* molecules (``md17``) and the AdK backbone: 0.5 A, Fu et al.'s value;
* every other kind with bonds: ``max(2 * d_max, 0.25 * mean(b))``, with ``d_max`` the largest
  ``|l - b|`` of any pair in the reference frames. Twice the data's own excursion covers
  springs, whose lengths swing widely (a zero-rest-length spring has no preferred length);
  the quarter of the mean length covers rigid bones (``d_max ~ 0``): a skeleton whose bone
  changes length by a quarter of a typical bone is no skeleton.

Shapes: positions ``[S, K, N, D]`` or ``[S, K, N, C, D]`` (``S`` starts, ``K`` strides); a
multi-channel node contributes ``C`` points, numbered ``node * C + channel``; pairs
``[P, 2]`` index these points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from graphdyn.data.registry import DataSplits
from graphdyn.data.windows import WindowDataset
from graphdyn.errors import GraphdynError

#: Fu et al.'s bond-length margin for molecules, angstrom.
MOLECULE_THRESHOLD = 0.5
#: Peptide bond C_i - N_{i+1} of the AdK backbone: consecutive residues count as bonded when
#: their recorded C-N distance averages under this (a peptide bond is 1.33 A).
PEPTIDE_MAX = 2.0
#: Most recorded training frames read for the reference lengths.
MAX_REFERENCE_FRAMES = 20_000
#: Generic threshold: max(SPREAD_FACTOR * largest recorded deviation, LENGTH_FRACTION * mean length).
SPREAD_FACTOR = 2.0
LENGTH_FRACTION = 0.25


@dataclass(frozen=True)
class Bonds:
    """The bonded pairs of a system and the test applied to them.

    ``pairs`` ``[P, 2]`` int64 point indices with ``i < j`` (each unordered pair once),
    ``reference`` ``[P]`` lengths ``b``, ``threshold`` ``Delta`` (None without pairs),
    ``what`` names the pairs, ``rule`` says how ``Delta`` was set, ``channels`` is ``C`` (1 for
    single-channel data).
    """

    pairs: np.ndarray
    reference: np.ndarray
    threshold: float | None
    what: str
    rule: str
    channels: int = 1

    @property
    def count(self) -> int:
        return int(self.pairs.shape[0])

    def describe(self) -> dict[str, Any]:
        return {"bonded_pairs": self.what, "pairs": self.count, "threshold": self.threshold, "threshold_rule": self.rule,
                "reference": "mean length over the recorded training frames"}


@dataclass
class Stability:
    """Per-start stability of one rollout batch.

    ``first_unstable`` ``[S]``: first unstable stride (1-based) or 0 when stable to the end;
    ``first_nonfinite`` ``[S]``: first stride with a non-finite coordinate, or 0;
    ``cause`` ``[S]``: ``"stable"``, ``"non-finite"`` or ``"bond"``; ``max_deviation`` ``[S]``:
    largest ``|l - b|`` over the stable strides (0 without bonds); ``steps`` = ``K``.
    """

    first_unstable: np.ndarray
    first_nonfinite: np.ndarray
    cause: list[str]
    max_deviation: np.ndarray
    steps: int
    bonds: Bonds

    @property
    def stable_strides(self) -> np.ndarray:
        """``[S]`` strides before the first unstable one (``K`` when stable throughout)."""
        return np.where(self.first_unstable > 0, self.first_unstable - 1, self.steps)

    @property
    def starts(self) -> int:
        return int(self.first_unstable.shape[0])

    def frame_mask(self) -> np.ndarray:
        """``[S, K]`` bool: True for the strides before each start's first unstable one."""
        k = np.arange(1, self.steps + 1)
        return k[None, :] <= self.stable_strides[:, None]

    def summary(self, stride_time: float | None = None, time_unit: str | None = None) -> dict[str, Any]:
        """Scalars for reports: stable strides (median, minimum), share stable to the end, how
        many starts diverged (non-finite) and from which stride; ``stride_time`` (time per
        stride) adds the median stable time."""
        stable = self.stable_strides
        diverged = self.first_nonfinite > 0
        out: dict[str, Any] = {
            "steps": self.steps,
            "starts": self.starts,
            "stable_strides_median": float(np.median(stable)),
            "stable_strides_min": int(stable.min()),
            "stable_strides": [int(s) for s in stable],
            "stable_to_end": int((self.first_unstable == 0).sum()),
            "stable_to_end_share": float((self.first_unstable == 0).mean()),
            "bond_breaks": int(sum(c == "bond" for c in self.cause)),
            "diverged_starts": int(diverged.sum()),
            "diverged_first_stride": int(self.first_nonfinite[diverged].min()) if diverged.any() else None,
            "max_bond_deviation": float(self.max_deviation.max()) if self.bonds.count else None,
            **self.bonds.describe(),
        }
        if stride_time is not None:
            out["stable_time_median"] = float(np.median(stable) * stride_time)
            out["time_unit"] = time_unit
        return out


# ---------------------------------------------------------------------------- bonded pairs
def _unique_pairs(edge_index: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unordered pairs ``[P, 2]`` (``i < j``, sorted, once each) of the edges under ``mask``."""
    e = np.asarray(edge_index)[:, np.asarray(mask, dtype=bool)]
    pairs = np.sort(e.T, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0).astype(np.int64).reshape(-1, 2)


def _kind(splits: DataSplits) -> str:
    """The dataset kind that decides the bonded pairs (``file`` data: its metadata's)."""
    meta = splits.test.traj.metadata
    if splits.name == "file":
        if isinstance(meta.get("system"), dict):
            return str(meta["system"].get("kind", "file"))
        return str(meta.get("dataset", "file"))
    return splits.name


def bonded_pairs(splits: DataSplits) -> tuple[np.ndarray, str, str]:
    """``(pairs [P, 2], what they are, family)`` for the data of ``splits``.

    ``family`` is ``"molecule"``, ``"protein"``, ``"skeleton"``, ``"springs"`` or ``"none"``
    and selects the default threshold. See the module docstring for the rules.
    """
    traj = splits.test.traj
    kind = _kind(splits)
    ea = traj.edge_attr
    if kind == "md17":
        if ea is None or ea.ndim != 2 or ea.shape[1] < 3:
            raise GraphdynError("MD17 data needs edge attributes [Z_i, Z_j, hop] to find its bonds", field="edge_attr")
        return _unique_pairs(traj.edge_index, ea[:, 2] == 1), "covalent bonds (1-hop edges, hop == 1)", "molecule"
    if kind == "mocap":
        if ea is None or ea.ndim != 2:
            raise GraphdynError("motion-capture data needs edge attributes (1 = bone, 2 = two-hop) to find its bones", field="edge_attr")
        return _unique_pairs(traj.edge_index, ea[:, 0] == 1), "bones (edge_attr == 1)", "skeleton"
    if kind == "springs":
        system = traj.metadata.get("system")
        if isinstance(system, dict) and "springs" in system:
            springs = np.asarray(system["springs"], dtype=np.int64).reshape(-1, 2)
        elif splits.dynamics is not None and hasattr(splits.dynamics.system, "springs"):
            springs = splits.dynamics.system.springs.numpy()
        else:
            raise GraphdynError("spring data without its springs (metadata 'system')", field="metadata.system")
        pairs = np.unique(np.sort(springs, axis=1), axis=0).reshape(-1, 2)
        return pairs, "springs", "springs"
    if kind == "adk":
        return _backbone_bonds(splits), "covalent backbone bonds (N-CA, CA-C, C-O, peptide C-N)", "protein"
    return np.zeros((0, 2), dtype=np.int64), "none (no bonds: only non-finite coordinates count)", "none"


def _backbone_bonds(splits: DataSplits) -> np.ndarray:
    """Covalent bonds of ``[N, 4]`` backbone nodes (channels N, CA, C, O) as point pairs."""
    traj = splits.test.traj
    channels = traj.metadata.get("channels", ["N", "CA", "C", "O"])
    if traj.n_channels != 4 or [str(c) for c in channels] != ["N", "CA", "C", "O"]:
        raise GraphdynError(f"AdK data needs the four backbone channels N, CA, C, O, got {channels}", field="positions")
    n = traj.n_nodes
    base = np.arange(n)[:, None] * 4
    intra = np.concatenate([base + [0, 1], base + [1, 2], base + [2, 3]])  # N-CA, CA-C, C-O
    peptide = np.stack([np.arange(n - 1) * 4 + 2, np.arange(1, n) * 4 + 0], 1)  # C_i - N_{i+1}
    if len(peptide):
        frames = reference_frames(splits.train)
        length = np.linalg.norm(frames[:, peptide[:, 0]] - frames[:, peptide[:, 1]], axis=-1).mean(0)
        peptide = peptide[length < PEPTIDE_MAX]
    return np.unique(np.concatenate([intra, peptide]), axis=0).astype(np.int64)


# ---------------------------------------------------------------------------- reference lengths
def reference_frames(ds: WindowDataset, max_frames: int = MAX_REFERENCE_FRAMES) -> np.ndarray:
    """The distinct recorded frames the windows of ``ds`` read, as points ``[F, P, D]``.

    A window starting at ``s`` reads frames ``s + m * delta``, ``m = 0 .. T`` (observed and
    target). At most ``max_frames``, evenly spread over the sorted ``(run, frame)`` pairs.
    """
    frames = ds.starts[:, 1:2] + np.arange(ds.T + 1)[None, :] * ds.delta
    runs = np.broadcast_to(ds.starts[:, 0:1], frames.shape)
    keep = frames < ds.traj.n_frames
    both = np.unique(np.stack([runs[keep], frames[keep]], 1), axis=0)
    if len(both) > max_frames:
        both = both[np.linspace(0, len(both) - 1, max_frames).round().astype(np.int64)]
    pos = np.asarray(ds.traj.positions[both[:, 0], both[:, 1]], dtype=np.float64)
    return pos.reshape(pos.shape[0], -1, pos.shape[-1])


def pair_lengths(points: np.ndarray | torch.Tensor, pairs: np.ndarray) -> np.ndarray | torch.Tensor:
    """``||x_i - x_j||`` for every pair: points ``[..., P_points, D]`` -> ``[..., P]``."""
    if isinstance(points, torch.Tensor):
        p = torch.as_tensor(pairs, device=points.device)
        return (points[..., p[:, 0], :] - points[..., p[:, 1], :]).norm(dim=-1)
    return np.linalg.norm(points[..., pairs[:, 0], :] - points[..., pairs[:, 1], :], axis=-1)


def bonds_for(splits: DataSplits, threshold: float | None = None) -> Bonds:
    """The bonded pairs, reference lengths and threshold of ``splits``' data.

    Args:
        splits: the dataset (its training windows give the reference lengths).
        threshold: ``Delta`` in the data's length unit; None = the default of the kind.
    """
    if threshold is not None and not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise GraphdynError(f"must be a positive number, got {threshold!r}", field="eval.stability_threshold")
    pairs, what, family = bonded_pairs(splits)
    channels = splits.test.traj.n_channels or 1
    if len(pairs) == 0:
        return Bonds(pairs, np.zeros(0), None, what, "no bonded pairs: stable while every coordinate is finite", channels)
    lengths = pair_lengths(reference_frames(splits.train), pairs)  # [F, P]
    reference = lengths.mean(0)
    unit = splits.test.traj.units.get("length", "")
    if threshold is not None:
        rule = f"set: {threshold:g} {unit}".rstrip()
    elif family in ("molecule", "protein"):
        threshold, rule = MOLECULE_THRESHOLD, "0.5 A on covalent bonds (Fu et al., TMLR 2023)"
    else:
        spread = float(np.abs(lengths - reference).max())
        threshold = max(SPREAD_FACTOR * spread, LENGTH_FRACTION * float(reference.mean()))
        rule = (f"max(2 x largest recorded deviation {spread:.3g}, 0.25 x mean length {float(reference.mean()):.3g}) "
                f"= {threshold:.3g} {unit}").rstrip()
    return Bonds(pairs, reference, float(threshold), what, rule, channels)


# ---------------------------------------------------------------------------- the test
def _first(flags: torch.Tensor) -> np.ndarray:
    """``[S, K]`` bool -> first True stride (1-based) per row, 0 when none."""
    k = torch.arange(1, flags.shape[1] + 1, device=flags.device)
    first = torch.where(flags, k, flags.shape[1] + 1).min(dim=1).values
    return torch.where(first > flags.shape[1], 0, first).cpu().numpy().astype(np.int64)


@torch.no_grad()
def stability(pred: torch.Tensor, bonds: Bonds) -> Stability:
    """Stability of rollouts ``pred`` ``[S, K, N, (C,) D]`` under ``bonds``.

    A stride is unstable when any of its coordinates is non-finite or any bonded pair
    deviates from its reference length by more than the threshold; each start's first
    unstable stride is reported, with its cause.
    """
    if pred.dim() not in (4, 5):
        raise GraphdynError(f"expected rollout positions [starts, strides, nodes, (channels,) dim], got {tuple(pred.shape)}", field="pred")
    S, K = pred.shape[:2]
    points = pred.reshape(S, K, -1, pred.shape[-1]).double()
    nonfinite = ~torch.isfinite(points).flatten(2).all(dim=2)  # [S, K]
    first_nonfinite = _first(nonfinite)
    if bonds.count:
        dev = (pair_lengths(points, bonds.pairs) - torch.as_tensor(bonds.reference, dtype=points.dtype)).abs()  # [S, K, P]
        dev = torch.where(torch.isfinite(dev), dev, torch.zeros((), dtype=dev.dtype))
        broken = (dev > bonds.threshold).any(dim=2)
        first_broken = _first(broken & ~nonfinite)
    else:
        dev = points.new_zeros(S, K, 1)
        first_broken = np.zeros(S, dtype=np.int64)
    first = np.where((first_nonfinite > 0) & ((first_broken == 0) | (first_nonfinite <= first_broken)), first_nonfinite, first_broken)
    cause = ["stable" if f == 0 else ("non-finite" if f == first_nonfinite[s] else "bond") for s, f in enumerate(first)]
    stable = np.where(first > 0, first - 1, K)
    mask = torch.arange(K, device=dev.device)[None, :] < torch.as_tensor(stable, device=dev.device)[:, None]
    max_dev = torch.where(mask[..., None], dev, torch.zeros((), dtype=dev.dtype)).flatten(1).max(dim=1).values.cpu().numpy()
    return Stability(first, first_nonfinite, cause, max_dev, int(K), bonds)


def diverged_message(first_nonfinite: np.ndarray) -> str | None:
    """``"diverged at stride S in K of M starts"`` (S the earliest), or None when none did."""
    first_nonfinite = np.asarray(first_nonfinite)
    bad = first_nonfinite > 0
    if not bad.any():
        return None
    return f"diverged at stride {int(first_nonfinite[bad].min())} in {int(bad.sum())} of {len(first_nonfinite)} starts"

