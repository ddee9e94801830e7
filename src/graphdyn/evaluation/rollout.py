"""Rollouts from test states against the truth: error against step, energy drift, and the
measures of a simulation scientist: stability, h(r), bond lengths, short-horizon error.

The truth is the dataset's true simulator when it has one (``DataSplits.dynamics``, e.g.
spring networks: any horizon), otherwise the recorded frames of the test trajectory (the
horizon is then limited by the trajectory's length). With a true simulator, the starts are
drawn from the test windows followed by recorded frames for the whole horizon when there are
enough of them (trajectory data), and those frames are kept as well (``recorded``). The
learned rollout only ever sees its own predictions (:meth:`LearnedSimulator.rollout`); a
model that returns the truth has zero rollout error, which the tests check.

:func:`rollout_test` also measures the rollout (see the modules for the definitions):

* stability per start (:mod:`graphdyn.evaluation.stability`): first stride with a
  non-finite coordinate or a bonded pair off its reference length by more than the
  threshold; the truth's own stability as a check of the threshold;
* h(r) against the truth frames with its noise floor, and bond-length statistics
  (:mod:`graphdyn.evaluation.distributions`), over the stable frames only;
* the MSE up to the decorrelation horizon with copy-last-frame (and the true simulator,
  when the truth is recorded frames) as references (:mod:`graphdyn.evaluation.horizon`).

No summary holds a NaN: MSE statistics are over the starts that stay finite, and a rollout
that diverged says so (``"diverged at stride S in K of M starts"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphdyn.data.registry import DataSplits
from graphdyn.data.windows import WindowDataset
from graphdyn.errors import GraphdynError
from graphdyn.evaluation.distributions import BINS, BondLengths, DistanceComparison, compare_bond_lengths, compare_distances
from graphdyn.evaluation.horizon import ShortHorizon, short_horizon
from graphdyn.evaluation.stability import Stability, bonds_for, diverged_message, reference_frames, stability
from graphdyn.simulator import LearnedSimulator


@dataclass
class RolloutResult:
    """Predicted and true positions ``[S, steps, N, ...]`` for ``S`` start points.

    ``start`` holds the last observed positions ``[S, N, ...]``; ``mse`` the per-start,
    per-step MSE ``[S, steps]`` (float64, mean over nodes and coordinates; non-finite for a
    start that diverged); ``energy_*`` total energy ``[S, steps]`` when the system defines one
    and the model yields velocities. ``recorded``: the recorded frames ``[S, steps, N, ...]``
    when the truth is the true simulator and the test runs hold the horizon, else None.
    ``stability``, ``distances``, ``bond_lengths``, ``short`` (None when not measured or
    not defined: no bonds) and ``truth_stability`` (the test applied to the truth);
    ``stride_time`` / ``time_unit``: time per stride; ``length_unit`` of the positions.
    """

    pred: torch.Tensor
    true: torch.Tensor
    start: torch.Tensor
    mse: np.ndarray
    source: str
    energy_pred: np.ndarray | None = None
    energy_true: np.ndarray | None = None
    energy_start: np.ndarray | None = None
    recorded: torch.Tensor | None = None
    stability: Stability | None = None
    truth_stability: Stability | None = None
    distances: DistanceComparison | None = None
    bond_lengths: BondLengths | None = None
    short: ShortHorizon | None = None
    stride_time: float | None = None
    time_unit: str | None = None
    length_unit: str | None = None

    @property
    def steps(self) -> int:
        return int(self.pred.shape[1])

    @property
    def diverged(self) -> str | None:
        """``"diverged at stride S in K of M starts"`` or None."""
        if self.stability is not None:
            return diverged_message(self.stability.first_nonfinite)
        bad = ~np.isfinite(self.mse)
        first = np.where(bad.any(1), bad.argmax(1) + 1, 0)
        return diverged_message(first)

    def summary(self) -> dict[str, float | int | str | dict | None]:
        """Scalars for reports, never NaN: final-step MSE (mean, median) and mean over steps
        over the starts that stay finite (None when none does), energy drift, the
        divergence message, and the nested summaries of the measures."""
        finite = np.isfinite(self.mse).all(axis=1)
        ok = self.mse[finite]
        out: dict[str, float | int | str | dict | None] = {
            "steps": self.steps,
            "starts": int(self.mse.shape[0]),
            "truth": self.source,
            "final_mse_mean": float(ok[:, -1].mean()) if len(ok) else None,
            "final_mse_median": float(np.median(ok[:, -1])) if len(ok) else None,
            "mse_mean_over_steps": float(ok.mean()) if len(ok) else None,
            "finite_starts": int(finite.sum()),
        }
        message = self.diverged
        if message is not None:
            out["diverged"] = message
        if self.energy_pred is not None and self.energy_start is not None:
            out["energy_drift_pred"] = _median_drift(self.energy_pred, self.energy_start)
        if self.energy_true is not None and self.energy_start is not None:
            out["energy_drift_true"] = _median_drift(self.energy_true, self.energy_start)
        if self.stability is not None:
            out["stability"] = self.stability.summary(self.stride_time, self.time_unit)
        if self.truth_stability is not None:
            out["truth_stable_to_end"] = int((self.truth_stability.first_unstable == 0).sum())
        if self.distances is not None:
            out["h_r"] = self.distances.summary()
        if self.bond_lengths is not None:
            out["bond_lengths"] = self.bond_lengths.summary()
        if self.short is not None:
            out["short_horizon"] = self.short.summary()
        return out


def _median_drift(energy: np.ndarray, start: np.ndarray) -> float | None:
    """Median over starts of ``|E(K) - E(0)| / |E(0)|``, finite starts only (None when none)."""
    drift = np.abs(energy[:, -1] - start) / np.maximum(np.abs(start), 1e-12)
    drift = drift[np.isfinite(drift)]
    return float(np.median(drift)) if len(drift) else None


def _start_indices(n: int, k: int) -> np.ndarray:
    """``k`` deterministic, evenly spread indices into ``n`` items (first one is 0)."""
    k = min(k, n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def recorded_truth(dataset: WindowDataset, idx: np.ndarray, steps: int) -> torch.Tensor:
    """Recorded positions ``[S, steps, N, ...]`` after the observed windows ``idx``."""
    starts = dataset.starts[idx]
    frames = starts[:, 1:2] + (dataset.T - 1 + np.arange(1, steps + 1)) * dataset.delta
    pos = torch.as_tensor(dataset.traj.positions, dtype=dataset.dtype)
    return pos[torch.as_tensor(starts[:, 0:1]), torch.as_tensor(frames)]


def _room(test: WindowDataset) -> np.ndarray:
    """Strides of recorded frames after each test window."""
    return (test.traj.n_frames - 1 - test.starts[:, 1]) // test.delta - (test.T - 1)


@torch.no_grad()
def rollout_test(simulator: LearnedSimulator, splits: DataSplits, steps: int, n_starts: int = 16, device: torch.device | str = "cpu", *,
                 measure: bool = True, stability_threshold: float | None = None, hr_bins: int = BINS,
                 short_horizon_steps: int | None = None) -> RolloutResult:
    """Roll ``simulator`` out for ``steps`` strides from ``n_starts`` test windows.

    Args:
        measure: also measure stability, h(r), bond lengths and the short-horizon error.
        stability_threshold: bond-length threshold (None: the dataset kind's default).
        hr_bins: bins of the h(r) histograms.
        short_horizon_steps: a fixed short horizon (None: the decorrelation horizon).
    """
    test = splits.test
    simulator.eval()
    dtype = simulator.dtype
    dyn = splits.dynamics
    room = _room(test)
    if dyn is not None:
        # windows with recorded frames for the whole horizon first, so they can be compared too
        usable = np.nonzero(room >= steps)[0]
        idx = usable[_start_indices(len(usable), n_starts)] if len(usable) >= min(n_starts, len(test)) else _start_indices(len(test), n_starts)
        source = "physics"
    else:
        usable = np.nonzero(room >= steps)[0]
        if len(usable) == 0:
            longest = int(room.max()) if len(room) else 0
            raise GraphdynError(
                f"the test trajectory is too short for a {steps}-step rollout against recorded frames (at most {longest})",
                field="eval.rollout_steps",
            )
        idx = usable[_start_indices(len(usable), n_starts)]
        source = "recorded frames"
    batch = test.batch(idx).to(device, dtype)
    pred, vpred = simulator.rollout(batch, steps)
    x0 = batch.x[:, -1]
    e_pred = e_true = e_start = None
    recorded = None
    if dyn is not None:
        if batch.v is None:
            raise GraphdynError("true-physics rollouts need velocities in the data", field="velocities")
        v0 = batch.v[:, -1]
        true, vtrue = dyn.rollout(x0.double(), v0.double(), steps)
        true = true.to(pred.dtype)
        energy = getattr(dyn, "energy", None)
        if energy is not None:
            e_start_t = energy(x0.double(), v0.double())
            if e_start_t is not None:
                e_start = e_start_t.cpu().numpy()
                e_true = energy(true.double(), vtrue.double()).cpu().numpy()
                if vpred is not None:
                    e_pred = energy(pred.double(), vpred.double()).cpu().numpy()
        if bool((room[idx] >= steps).all()):
            recorded = recorded_truth(test, idx, steps).to(device, pred.dtype)
    else:
        true = recorded_truth(test, idx, steps).to(device, pred.dtype)
    reduce = tuple(range(2, pred.dim()))
    mse = ((pred.double() - true.double()) ** 2).mean(dim=reduce).cpu().numpy()
    result = RolloutResult(pred=pred.cpu(), true=true.cpu(), start=x0.cpu(), mse=mse, source=source,
                           energy_pred=e_pred, energy_true=e_true, energy_start=e_start,
                           recorded=None if recorded is None else recorded.cpu(),
                           stride_time=test.dt, time_unit=test.traj.units.get("time"), length_unit=test.traj.units.get("length"))
    if measure:
        measure_rollout(result, splits, stability_threshold=stability_threshold, hr_bins=hr_bins, short_horizon_steps=short_horizon_steps)
    return result


def measure_rollout(result: RolloutResult, splits: DataSplits, *, stability_threshold: float | None = None, hr_bins: int = BINS,
                    short_horizon_steps: int | None = None) -> RolloutResult:
    """Fill ``result``'s stability, distributions and short-horizon curves (in place)."""
    bonds = bonds_for(splits, stability_threshold)
    result.stability = stability(result.pred, bonds)
    result.truth_stability = stability(result.true, bonds)
    truth = result.true
    points = int(np.prod(truth.shape[2:-1]))
    result.distances = compare_distances(result.pred, truth, result.stability, hr_bins) if points >= 2 else None  # h(r) needs a pair
    result.bond_lengths = compare_bond_lengths(result.pred, truth, bonds, result.stability, hr_bins)
    variance = float(reference_frames(splits.train).var(axis=0).mean())  # V of the decorrelation horizon: the data's
    if result.recorded is not None:
        result.short = short_horizon(result.pred, result.recorded, result.start, simulator=result.true, horizon=short_horizon_steps,
                                     against="recorded frames", variance=variance)
    else:
        result.short = short_horizon(result.pred, truth, result.start, horizon=short_horizon_steps, against=result.source, variance=variance)
    return result


def write_figures(result: RolloutResult, fig_dir: str | Path, label: str = "model") -> list[Path]:
    """The measures' figures into ``fig_dir``: ``hr.png`` (h(r) of rollout and truth),
    ``bond_lengths.png`` (when the system has bonds), ``short_horizon.png``; returns the paths.
    A histogram without stable rollout frames is drawn for the truth alone."""
    from graphdyn.viz import plots

    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    out = []
    d = result.distances
    if d is not None:
        dens = {"truth": d.reference.density}
        if d.frames_used:
            dens = {f"{label} ({d.frames_used} stable frames)": d.rollout.density, **dens}
        note = f"MAE {_fmt(d.mae)}, noise floor {_fmt(d.noise_floor)}"
        if result.diverged:
            note += f"\n{result.diverged}"
        unit = result_unit(result)
        out.append(plots.distance_histogram_figure(d.reference.edges, dens, fig_dir / "hr.png", title="h(r): all pairwise distances",
                                                   xlabel=f"r {unit}".rstrip(), note=note))
    b = result.bond_lengths
    if b is not None:
        devs = {"truth": b.dev_reference}
        means = {"truth": (b.mean_reference, b.std_reference)}
        if b.frames_used:
            devs = {label: b.dev_rollout, **devs}
            means = {label: (b.mean_rollout, b.std_rollout), **means}
        out.append(plots.bond_length_figure(b.edges, devs, means, fig_dir / "bond_lengths.png", threshold=b.bonds.threshold,
                                            unit=result_unit(result), title=b.bonds.what.split(" (")[0],
                                            bond_labels=[_point_name(i, b.bonds.channels) + "-" + _point_name(j, b.bonds.channels) for i, j in b.bonds.pairs]))
    s = result.short
    if s is not None:
        upto = min(len(s.copy_last), max(4 * s.horizon, 20))
        curves = {label: s.model[:upto], "copy last frame": s.copy_last[:upto]}
        if s.simulator is not None:
            curves["true simulator"] = s.simulator[:upto]
        out.append(plots.short_horizon_figure(curves, s.horizon, fig_dir / "short_horizon.png",
                                              title=f"position MSE against {s.against} (mean over {s.starts_used} of {s.starts} starts)"))
    return out


def _point_name(point: int, channels: int) -> str:
    """Node number of a point, with its channel for multi-channel data (``"12.1"``)."""
    return str(point) if channels == 1 else f"{point // channels}.{point % channels}"


def result_unit(result: RolloutResult) -> str:
    """The length unit in brackets for axis labels, or ''."""
    unit = result.length_unit
    return f"({unit})" if unit else ""


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _num(value: Any, fmt: str = ".4g") -> str:
    """A number for people: "n/a" when absent, "diverged" when not finite, never "nan"."""
    if value is None:
        return "n/a"
    if isinstance(value, (int, float, np.floating, np.integer)) and not math.isfinite(float(value)):
        return "diverged"
    return format(value, fmt)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines of a :meth:`RolloutResult.summary` (or its JSON form, with None
    for non-finite numbers): rollout MSE, stability, h(r), bond lengths, short horizon,
    energy drift. No line ever holds "nan"."""
    s = summary
    if "skipped" in s:
        return [f"rollout: skipped ({s['skipped']})"]
    lines = []
    finite = s.get("finite_starts", s["starts"])
    mse = f"final-step MSE {_num(s.get('final_mse_mean'))} (mean over {finite} of {s['starts']} starts)" if finite else "no start stayed finite"
    lines.append(f"rollout: {s['steps']} strides from {s['starts']} test starts vs {s['truth']}; {mse}"
                 + (f"; {s['diverged']}" if s.get("diverged") else ""))
    st = s.get("stability")
    if st:
        time = ""
        if st.get("stable_time_median") is not None and st.get("time_unit"):
            unit = "reduced units" if st["time_unit"] == "reduced" else st["time_unit"]
            time = f" ({_num(st['stable_time_median'])} {unit} of simulated time)"
        lines.append(f"stability: {st['stable_to_end']} of {st['starts']} starts stable to the end ({_num(100 * st['stable_to_end_share'], '.0f')} %); "
                     f"stable strides median {_num(st['stable_strides_median'], 'g')}{time}, min {st['stable_strides_min']}; "
                     f"{st['bond_breaks']} bond breaks; "
                     + (f"diverged (non-finite) at stride {st['diverged_first_stride']} in {st['diverged_starts']} of {st['starts']} starts"
                        if st.get("diverged_starts") else "no start diverged"))
        if st.get("pairs"):
            truth = f"; the truth: {s['truth_stable_to_end']} of {st['starts']} stable" if s.get("truth_stable_to_end") is not None else ""
            lines.append(f"  bonded pairs: {st['pairs']} {st['bonded_pairs']}; threshold {_num(st['threshold'])} ({st['threshold_rule']}); "
                         f"largest deviation while stable {_num(st.get('max_bond_deviation'))}{truth}")
        else:
            lines.append("  bonded pairs: none (only non-finite coordinates count)")
    hr = s.get("h_r")
    if hr:
        if hr.get("mae") is None:
            lines.append(f"h(r): no stable rollout frame to compare (noise floor {_num(hr.get('noise_floor'))})")
        else:
            ratio = f", {_num(hr['mae_over_floor'], '.2f')}x the floor" if hr.get("mae_over_floor") is not None else ""
            lines.append(f"h(r): MAE {_num(hr['mae'])} vs noise floor {_num(hr.get('noise_floor'))}{ratio} "
                         f"(L1 of normalised histograms, {hr['bins']} bins to r = {_num(hr['r_max'])}; {hr['rollout_frames']} of {hr['frames']} rollout frames, the stable ones)")
    bl = s.get("bond_lengths")
    if bl and bl.get("rollout_frames"):
        lines.append(f"bond lengths: mean length off the truth's by {_num(bl['mean_length_error_mean'])} on average, {_num(bl['mean_length_error_max'])} at most; "
                     f"spread (std) {_num(bl['std_ratio_median'], '.3g')}x the truth's (median over {bl['pairs']} pairs)")
    sh = s.get("short_horizon")
    if sh:
        sim = f", true simulator {_num(sh['simulator_mse'])}" if sh.get("simulator_mse") is not None else ""
        used = "" if sh["starts_used"] == sh["starts"] else f" ({sh['starts_used']} of {sh['starts']} starts finite)"
        lines.append(f"short horizon: H = {sh['horizon']} strides ({sh['horizon_rule']}); mean position MSE vs {sh['against']} over strides 1..H: "
                     f"model {_num(sh['model_mse'])}{used}, copy last frame {_num(sh['copy_last_mse'])}{sim}")
    if "energy_drift_pred" in s or "energy_drift_true" in s:
        lines.append(f"relative energy drift at stride {s['steps']} (median): learned {_num(s.get('energy_drift_pred'), '.3g')}, "
                     f"true integrator {_num(s.get('energy_drift_true'), '.3g')}")
    return lines
