"""Figures: rollout against the truth, error against step, loss curves.

All functions write a PNG atomically and return its path; they never open a window.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from graphdyn.io import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _finish_log_axes(fig, ax, xlabel: str, ylabel: str, title: str, path: str | Path) -> Path:
    """Log y axis, labels, title, grid and legend of a curves figure; saved to ``path``."""
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def _draw_rollout(ax, true: np.ndarray, pred: np.ndarray, title: str) -> None:
    """true/pred: [steps + 1, N, ...]; plots the first coordinate of every node."""
    t = true.reshape(true.shape[0], true.shape[1], -1)[..., 0]
    p = pred.reshape(pred.shape[0], pred.shape[1], -1)[..., 0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i in range(t.shape[1]):
        c = colors[i % len(colors)]
        ax.plot(t[:, i], color=c, alpha=0.7, lw=2, label=f"true {i}")
        ax.plot(p[:, i], color=c, ls="--", lw=2, label=f"GNN {i}")
    ax.set_xlabel("time step")
    ax.set_ylabel("position" if true.shape[-1] == 1 else "position (first coordinate)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if t.shape[1] <= 6:
        ax.legend(ncol=3, fontsize=8)


def rollout_figure(true: np.ndarray, pred: np.ndarray, path: str | Path, title: str = "GNN vs true physics") -> Path:
    """One rollout, ``[steps + 1, N, ...]`` each (the first row is the start state)."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    _draw_rollout(ax, np.asarray(true), np.asarray(pred), title)
    fig.tight_layout()
    return _save(fig, path)


def rollout_comparison(panels: list[tuple[str, np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """Several rollouts side by side: ``(title, true, pred)`` per panel."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 4 * len(panels)), squeeze=False)
    for ax, (title, true, pred) in zip(axes[:, 0], panels):
        _draw_rollout(ax, np.asarray(true), np.asarray(pred), title)
    fig.tight_layout()
    return _save(fig, path)


def error_vs_step(curves: dict[str, np.ndarray], path: str | Path, title: str = "rollout error against step") -> Path:
    """``curves``: label -> per-start, per-step MSE ``[S, steps]``; median with 10-90 % band."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, mse in curves.items():
        mse = np.asarray(mse)
        steps = np.arange(1, mse.shape[1] + 1)
        ax.plot(steps, np.median(mse, 0), lw=2, label=f"{label} (median)")
        if mse.shape[0] > 1:
            ax.fill_between(steps, np.quantile(mse, 0.1, 0), np.quantile(mse, 0.9, 0), alpha=0.2)
    return _finish_log_axes(fig, ax, "rollout step", "position MSE", title, path)


def distance_histogram_figure(edges: np.ndarray, densities: dict[str, np.ndarray], path: str | Path, *, title: str = "h(r)",
                              xlabel: str = "r", note: str | None = None) -> Path:
    """Histogram densities on ``edges`` ``[B + 1]``: label -> ``[B]`` (h(r), or bond-length
    deviations), drawn as steps; ``note`` goes in the corner (e.g. the MAE and noise floor)."""
    edges = np.asarray(edges)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, dens in densities.items():
        ax.stairs(np.asarray(dens), edges, lw=2, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    if note:
        ax.text(0.01, 0.98, note, transform=ax.transAxes, va="top", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def bond_length_figure(edges: np.ndarray, deviations: dict[str, np.ndarray], means: dict[str, tuple[np.ndarray, np.ndarray]],
                       path: str | Path, *, threshold: float | None = None, unit: str = "", title: str = "bond lengths",
                       bond_labels: list[str] | None = None) -> Path:
    """Left: densities of ``l - b`` pooled over bonds (label -> ``[B]`` on ``edges``), with the
    stability threshold; right: per-bond mean and standard deviation of the length, label ->
    ``(mean [P], std [P])`` (at most 60 bonds drawn; ``bond_labels`` name them, e.g. "0-1")."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, dens in deviations.items():
        ax1.stairs(np.asarray(dens), np.asarray(edges), lw=2, label=label)
    if threshold is not None:
        for sign in (-1, 1):
            ax1.axvline(sign * threshold, color="k", ls=":", lw=1, label="threshold" if sign > 0 else None)
    ax1.set_xlabel(f"length - reference length {unit}".rstrip())
    ax1.set_ylabel("density")
    ax1.set_title(f"{title}: deviation, all bonds")
    ax1.grid(True, alpha=0.3)
    ax1.legend()
    width = 0.8 / max(len(means), 1)
    for k, (label, (mean, std)) in enumerate(means.items()):
        mean, std = np.asarray(mean)[:60], np.asarray(std)[:60]
        pos = np.arange(len(mean)) + (k - (len(means) - 1) / 2) * width
        ax2.errorbar(pos, mean, yerr=std, fmt="o", ms=3, capsize=2, label=label)
    shown = min(len(next(iter(means.values()))[0]), 60) if means else 0
    if bond_labels is not None and 0 < shown <= 30:
        ax2.set_xticks(np.arange(shown), bond_labels[:shown], rotation=90 if shown > 8 else 0, fontsize=8)
    elif shown:
        ax2.set_xticks(np.arange(0, shown, max(1, shown // 10)))
    ax2.set_xlabel("bond")
    ax2.set_ylabel(f"length {unit} (mean +- std)".replace("  ", " "))
    ax2.set_title(f"{title}: per bond")
    ax2.grid(True, alpha=0.3)
    ax2.legend()
    fig.tight_layout()
    return _save(fig, path)


def short_horizon_figure(curves: dict[str, np.ndarray], horizon: int, path: str | Path, *, title: str = "short-horizon error") -> Path:
    """Position MSE against stride, label -> ``[K]`` (means over starts), with the horizon
    ``H`` marked; non-finite or non-positive points are left out of the log axis."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, curve in curves.items():
        curve = np.asarray(curve, dtype=float)
        steps = np.arange(1, len(curve) + 1)
        ok = np.isfinite(curve) & (curve > 0)
        if ok.any():
            ax.plot(steps[ok], curve[ok], lw=2, label=label)
    ax.axvline(horizon, color="k", ls=":", lw=1, label=f"horizon H = {horizon}")
    return _finish_log_axes(fig, ax, "rollout stride", "position MSE", title, path)


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Lightning CSVLogger file -> metric name -> [(epoch, value)]."""
    out: dict[str, list[tuple[int, float]]] = {}
    path = Path(path)
    if not path.exists():
        return out
    with path.open() as fh:
        for row in csv.DictReader(fh):
            epoch = row.get("epoch")
            for key, value in row.items():
                if key in ("epoch", "step") or value in (None, ""):
                    continue
                out.setdefault(key, []).append((int(float(epoch)), float(value)))
    return out


def loss_curves(metrics_csv: str | Path, path: str | Path, title: str = "loss") -> Path:
    """Training and validation loss against epoch from a CSVLogger ``metrics.csv``."""
    metrics = read_metrics_csv(metrics_csv)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key in ("train_loss", "val_loss"):
        if key in metrics:
            e, v = zip(*metrics[key])
            ax.plot(e, v, marker="." if len(e) < 50 else None, label=key)
    return _finish_log_axes(fig, ax, "epoch", "MSE on the learned target", title, path)
