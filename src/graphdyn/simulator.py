"""The learned simulator: a model's prediction -> the next state.

The model predicts (see :mod:`graphdyn.models.base` for the target spaces); this module owns
the physics around it, in the spirit of DeepMind's ``learned_simulator.py``:

* ``training_target(batch)``: the quantity the model learns, computed from the data where
  the target lives (so the loss is ``mse(model(batch), training_target(batch))``);
* ``step(batch)``: the next positions (and velocities) by integrating the prediction;
* ``rollout(batch, steps)``: feed predictions back as observations, sliding the window.

Integration of ``velocity_change`` and ``acceleration`` is the notebook's semi-implicit
Euler, ``v' = v + a dt`` then ``x' = x + v' dt``, which is exact for data that was generated
with it. Position-type targets need no integrator; velocities for them (when the data has
velocities) are the finite difference ``(x' - x) / dt``.
"""

from __future__ import annotations

import torch
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import TARGETS, DynamicsModel


class LearnedSimulator(nn.Module):
    """Wrap a :class:`DynamicsModel` so that it advances states.

    Args:
        model: the learnable core.
        target_scale: optional divisor applied to the training target (and multiplied back
            onto predictions), e.g. a standard deviation, so that tiny targets such as
            ``dv`` are learned on a unit scale. ``None`` (default) learns raw targets, as
            the notebook does.
    """

    def __init__(self, model: DynamicsModel, target_scale: float | None = None):
        super().__init__()
        if model.target not in TARGETS:
            raise GraphdynError(f"model target {model.target!r} is not one of {TARGETS}")
        self.model = model
        dtype = next(model.parameters(), torch.empty(0)).dtype  # follow a model already cast, e.g. .double()
        self.register_buffer("target_scale", torch.tensor(1.0 if target_scale is None else float(target_scale), dtype=dtype))

    @property
    def target(self) -> str:
        return self.model.target

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the simulator (its always-present ``target_scale`` buffer follows
        ``.double()`` and friends, even for a model without parameters)."""
        return self.target_scale.dtype

    # ----------------------------------------------------------------- training
    def training_target(self, batch: Batch) -> torch.Tensor:
        """The learned quantity for ``batch`` in model units, ``[B, N, ...]``."""
        t = self.target
        if t == "position":
            y = batch.target_x
        elif t == "displacement":
            y = batch.target_x - batch.x[:, -1]
        else:
            if batch.v is None or batch.target_v is None:
                raise GraphdynError(f"target {t!r} needs velocities, and this data has none", field="velocities")
            y = batch.target_v - batch.v[:, -1]
            if t == "acceleration":
                y = y / batch.dt
        return y / self.target_scale

    def predict(self, batch: Batch) -> torch.Tensor:
        """The model's prediction in physical units of its target."""
        return self.model(batch) * self.target_scale

    def loss(self, batch: Batch) -> torch.Tensor:
        """Mean squared error on the (scaled) target, mean over every scalar."""
        return torch.nn.functional.mse_loss(self.model(batch), self.training_target(batch))

    # ----------------------------------------------------------------- stepping
    def step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next positions ``[B, N, ...]`` and velocities (or None) from the observed window."""
        return self.integrate(batch, self.predict(batch))

    def integrate(self, batch: Batch, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Turn a prediction in target space into the next state."""
        x_last = batch.x[:, -1]
        t = self.target
        if t in ("position", "displacement"):
            x_next = pred if t == "position" else x_last + pred
            v_next = None if batch.v is None else (x_next - x_last) / batch.dt
            return x_next, v_next
        v_last = batch.v[:, -1]
        v_next = v_last + (pred if t == "velocity_change" else pred * batch.dt)
        return x_last + v_next * batch.dt, v_next

    @torch.no_grad()
    def rollout(self, batch: Batch, steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Autoregressive rollout from the observed window of ``batch``.

        Returns positions ``[B, steps, N, ...]`` (and velocities or None): step ``k`` is the
        prediction ``k + 1`` strides after the last observed frame. Only the model's own
        predictions are fed back; ``batch.target_*`` is never read.
        """
        if steps < 1:
            raise GraphdynError(f"rollout steps must be at least 1, got {steps}", field="steps")
        xs, vs = [], []
        cur = batch
        for _ in range(steps):
            x_next, v_next = self.step(cur)
            xs.append(x_next)
            vs.append(v_next)
            x_win = torch.cat([cur.x[:, 1:], x_next[:, None]], dim=1)
            v_win = None if cur.v is None else torch.cat([cur.v[:, 1:], v_next[:, None]], dim=1)
            cur = cur.with_inputs(x_win, v_win)
        return torch.stack(xs, 1), (None if vs[0] is None else torch.stack(vs, 1))
