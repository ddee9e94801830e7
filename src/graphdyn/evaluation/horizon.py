"""Short-horizon accuracy: position MSE against the truth while the truth is still predictable.

A chaotic system (molecular dynamics, several bodies) forgets its start: after some strides
even a perfect simulator started from a recorded state drifts away from the recorded
trajectory, so the MSE against it measures chaos, not the model. The MSE is therefore
reported up to the *decorrelation horizon* ``H`` of the data, where copying the last
observed frame stops being informative:

.. math::

    c(k) = \\operatorname{mean}_{s, n, d} \\big(y_{s,k} - x_{s,0}\\big)^2, \\qquad
    V = \\operatorname{mean}_{n, d} \\operatorname{Var}_{s, k}\\big(y_{s,k,n,d}\\big), \\qquad
    \\rho(k) = 1 - \\frac{c(k)}{2 V},

    H = \\min\\{k : \\rho(k) \\le \\rho^*\\}, \\quad \\rho^* = 0.5
    \\quad (\\Leftrightarrow c(k) \\ge V),

with ``y`` the truth ``[S, K, N, ...]``, ``x_0`` the last observed frame ``[S, N, ...]``,
``c`` the copy-last-frame MSE and ``V`` the variance of each coordinate over the recorded
frames the training windows read (averaged over coordinates; the variance over the truth's
own starts and strides when no data is given). For stationary data ``2V`` is the plateau
that ``c`` reaches once ``y_k`` and ``x_0`` are independent, and ``rho`` is the positions'
autocorrelation: ``H`` is the first stride at which it falls to one half. Taking ``V`` from
the data, not from the rollout, makes ``H`` a property of the data, the same for any rollout
length (a rotating molecule's variance over a short rollout would grow with the rollout).
When ``rho`` never falls to one half within the rollout, ``H = K`` (``decorrelated:
false``). ``c`` is averaged over the rollout's starts, so ``H`` carries their sampling noise
(ethanol at 500 K, 8 starts: 82 to 121 strides of 5 fs); ``eval.short_horizon`` fixes ``H``
instead.

Curves over ``k = 1 .. K`` (means over starts): the model's MSE (starts finite through
``H`` only; the others are counted as diverged), copy-last-frame's, and, when the truth is
recorded frames and a true simulator exists, the simulator's MSE against those frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from graphdyn.errors import GraphdynError

#: Autocorrelation at which the truth counts as decorrelated from the start.
RHO = 0.5


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[S, K, ...]`` pair -> per-start, per-stride MSE ``[S, K]`` (float64)."""
    return ((a.double() - b.double()) ** 2).flatten(2).mean(dim=2)


@dataclass
class ShortHorizon:
    """Curves ``[K]`` (means over starts) and the horizon ``H`` they are summarised up to."""

    horizon: int
    decorrelated: bool
    rule: str
    model: np.ndarray
    copy_last: np.ndarray
    simulator: np.ndarray | None
    starts_used: int
    starts: int
    against: str

    def summary(self) -> dict[str, Any]:
        h = self.horizon
        out: dict[str, Any] = {
            "horizon": h,
            "decorrelated": self.decorrelated,
            "horizon_rule": self.rule,
            "against": self.against,
            "starts_used": self.starts_used,
            "starts": self.starts,
            "model_mse": float(self.model[:h].mean()) if self.starts_used else None,
            "copy_last_mse": float(self.copy_last[:h].mean()),
        }
        if self.simulator is not None:
            out["simulator_mse"] = float(self.simulator[:h].mean())
        if out["model_mse"] is not None and out["copy_last_mse"] > 0:
            out["model_over_copy_last"] = out["model_mse"] / out["copy_last_mse"]
        return out


def decorrelation_horizon(truth: torch.Tensor, start: torch.Tensor, rho: float = RHO, variance: float | None = None) -> tuple[int, bool]:
    """``(H, decorrelated)`` for truth ``[S, K, ...]`` after last frames ``start`` ``[S, ...]``;
    ``variance`` is ``V`` (None: over the truth's starts and strides)."""
    copy = _mse(truth, start[:, None].expand_as(truth)).mean(0)  # [K]
    var = truth.double().flatten(2).var(dim=(0, 1), unbiased=False).mean() if variance is None else torch.tensor(float(variance))
    reached = torch.nonzero(copy >= 2 * (1 - rho) * var).flatten()
    if var > 0 and len(reached):
        return int(reached[0]) + 1, True
    return int(truth.shape[1]), False


@torch.no_grad()
def short_horizon(pred: torch.Tensor, truth: torch.Tensor, start: torch.Tensor, *, simulator: torch.Tensor | None = None,
                  horizon: int | None = None, against: str = "truth", variance: float | None = None) -> ShortHorizon:
    """Short-horizon curves of ``pred`` against ``truth`` (both ``[S, K, N, ...]``).

    Args:
        start: last observed frames ``[S, N, ...]`` (copy-last-frame's prediction).
        simulator: the true simulator's rollout ``[S, K, N, ...]`` when ``truth`` is recorded
            frames, else None.
        horizon: a fixed ``H`` (clipped to ``K``); None = the decorrelation horizon.
        against: what ``truth`` is, for reports.
        variance: ``V``, the data's variance per coordinate (None: the truth's own).
    """
    if pred.shape != truth.shape or start.shape != truth.shape[:1] + truth.shape[2:]:
        raise GraphdynError(f"shapes disagree: pred {tuple(pred.shape)}, truth {tuple(truth.shape)}, start {tuple(start.shape)}", field="pred")
    K = truth.shape[1]
    if horizon is not None:
        if horizon < 1:
            raise GraphdynError(f"must be at least 1, got {horizon}", field="eval.short_horizon")
        h, decorrelated, rule = min(int(horizon), K), False, f"fixed (eval.short_horizon = {horizon})"
    else:
        h, decorrelated = decorrelation_horizon(truth, start, variance=variance)
        rule = (f"first stride where the truth's autocorrelation falls to {RHO:g} (copy-last MSE >= {2 * (1 - RHO):g} x variance)"
                if decorrelated else f"truth still correlated with its start after {K} strides: the whole rollout")
    err = _mse(pred, truth)  # [S, K]
    ok = torch.isfinite(err[:, :h]).all(dim=1)
    model = err[ok].mean(0).cpu().numpy() if ok.any() else np.full(K, np.nan)
    copy = _mse(truth, start[:, None].expand_as(truth)).mean(0).cpu().numpy()
    sim = None if simulator is None else _mse(simulator, truth).mean(0).cpu().numpy()
    return ShortHorizon(h, decorrelated, rule, model, copy, sim, int(ok.sum()), int(truth.shape[0]), against)
