"""The learned simulator: a model's prediction -> the next state.

The model predicts (see :mod:`graphdyn.models.base` for the target spaces); this module owns
the physics around it, in the spirit of DeepMind's ``learned_simulator.py``:

* ``training_target(batch)``: the quantity the model learns, computed from the data where
  the target lives (so the loss is ``mse(model(batch), training_target(batch))``);
* ``step(batch)``: the next positions (and velocities) by integrating the prediction;
* ``rollout(batch, steps)``: feed predictions back as observations, sliding the window.

Two options train for long, stable rollouts (``training.noise`` and ``training.unroll`` of the
run config; validation and test losses never use them):

* ``add_noise(batch, std, kind, correction)``: noise on the observed frames, as in DeepMind's
  learned simulators (Sanchez-Gonzalez et al., "Learning to Simulate Complex Physics with Graph
  Networks", ICML 2020), so the model sees inputs as off the data as its own rollouts are.
  ``kind="random_walk"`` (theirs): per-frame increments ``e_t ~ N(0, std^2 / T)`` summed over the
  window, ``n_t = e_0 + ... + e_t`` (frame ``t = 0 .. T-1``), so the last frame's noise has
  standard deviation ``std``. Theirs leaves the first observed frame clean (``T - 1``
  increments); here the unobserved frame before the window is the clean one, so a one-frame
  window (``T = 1``, the notebook's models) is perturbed too.
  ``kind="gaussian"``: ``n_t ~ N(0, std^2)`` independently per frame. Observed positions become
  ``x_t + n_t``; observed velocities, when the data has them, become ``v_t + (n_t - n_{t-1}) / dt``
  (``n_{-1} = 0`` for the random walk, one more independent draw for Gaussian noise), so the
  noisy window obeys the same finite-difference relation ``x_t - x_{t-1} = v_t dt`` as the clean
  one. The target is corrected so the model learns to undo the noise:
  ``correction="velocity"`` (DeepMind's) moves the target frames with the last frame's noise,
  ``x' = x + n_{T-1}``: the model learns the clean next displacement (and velocity) from the
  noisy window, and keeps the last frame's offset; ``correction="position"`` keeps the clean
  target frames: the model learns to undo the offset as well (a denoiser). The target velocity
  is the one that carries the noisy last frame to the corrected target frame,
  ``v'_T = v_T + (x'_T - x_T - n_{T-1}) / dt`` (exact for data whose velocities obey
  ``x_T - x_{T-1} = v_T dt``), so velocity targets (``velocity_change``, ``acceleration``) are
  corrected alike.
* ``loss(batch, strides=K, mode, weights)``: the model rolls its own predictions forward ``K``
  strides, sliding the window as ``rollout`` does, and the loss is the weighted mean over the
  strides of the one-stride loss of each window against the true frame ``k`` strides on
  (``batch.future_x``, from ``WindowDataset(horizon=K)``). ``mode="unrolled"`` back-propagates
  through the whole chain; ``mode="pushforward"`` (Brandstetter et al., "Message Passing Neural
  PDE Solvers", ICLR 2022) detaches each stride's input window, so each term's gradient goes
  through its own, last, stride only; with weights ``(0, ..., 0, 1)`` it is their pushforward
  trick exactly (strides of zero weight run without a graph). For ``position`` and
  ``displacement`` targets each term is the position error of that stride (over the target
  scale squared). ``K = 1`` is the one-stride loss.

Integration of ``velocity_change`` and ``acceleration`` is the notebook's semi-implicit
Euler, ``v' = v + a dt`` then ``x' = x + v' dt``, which is exact for data that was generated
with it. Position-type targets need no integrator; velocities for them (when the data has
velocities) are the finite difference ``(x' - x) / dt``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import TARGETS, DynamicsModel

#: kinds of training noise (see :meth:`LearnedSimulator.add_noise`)
NOISE_KINDS = ("random_walk", "gaussian")
#: what the target of a noisy window is corrected to
NOISE_CORRECTIONS = ("velocity", "position")
#: how a multi-stride loss passes gradients between strides
UNROLL_MODES = ("pushforward", "unrolled")


def stride_weights(strides: int, weights: Sequence[float] | None = None) -> list[float]:
    """The weights of a ``strides``-stride loss, normalized to sum 1 (equal when None)."""
    if isinstance(strides, bool) or not isinstance(strides, int) or strides < 1:
        raise GraphdynError(f"strides must be a whole number of at least 1, got {strides!r}", field="strides")
    if weights is None:
        return [1.0 / strides] * strides
    w = [float(v) for v in weights]
    if len(w) != strides:
        raise GraphdynError(f"{len(w)} weights given for a loss over {strides} strides; give one per stride", field="weights")
    if not all(math.isfinite(v) and v >= 0 for v in w) or sum(w) <= 0:
        raise GraphdynError(f"stride weights must be finite, non-negative and not all zero, got {list(weights)}", field="weights")
    total = sum(w)
    return [v / total for v in w]


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

    def loss(self, batch: Batch, strides: int = 1, mode: str = "pushforward", weights: Sequence[float] | None = None) -> torch.Tensor:
        """Mean squared error on the (scaled) target, mean over every scalar.

        With ``strides = K > 1``: the weighted mean (``weights``, normalized; equal by default)
        over ``k = 1 .. K`` of that error for the window the model reaches after ``k - 1`` of its
        own strides, against the true frame ``k`` strides after the observed window
        (``batch.future_x[:, k - 1]``). ``mode``: ``"unrolled"`` back-propagates through every
        stride, ``"pushforward"`` only through the last stride of each term (see the module
        docstring).
        """
        w = stride_weights(strides, weights)
        if mode not in UNROLL_MODES:
            raise GraphdynError(f"unroll mode must be one of {UNROLL_MODES}, got {mode!r}", field="mode")
        if strides == 1:
            return torch.nn.functional.mse_loss(self.model(batch), self.training_target(batch))
        if batch.future_x is None or batch.future_x.shape[1] < strides:
            raise GraphdynError(
                f"a loss over {strides} strides needs the {strides} frames after each window; the batch holds {batch.horizon} "
                f"(windows of WindowDataset(horizon={strides}))",
                field="strides",
            )
        if batch.v is not None and batch.future_v is None:
            raise GraphdynError("a multi-stride loss on data with velocities needs future_v", field="future_v")
        total = None
        cur = batch
        used = max(k for k, wk in enumerate(w) if wk > 0) + 1  # strides after the last weighted one change nothing
        for k in range(used):
            cur = replace(cur, target_x=batch.future_x[:, k], target_v=None if batch.future_v is None else batch.future_v[:, k])
            with torch.set_grad_enabled(torch.is_grad_enabled() and (mode == "unrolled" or w[k] > 0)):
                out = self.model(cur)
                if w[k] > 0:
                    term = w[k] * torch.nn.functional.mse_loss(out, self.training_target(cur))
                    total = term if total is None else total + term
                if k + 1 < used:
                    x_next, v_next = self.integrate(cur, out * self.target_scale)
            if k + 1 < used:
                if mode == "pushforward":
                    x_next = x_next.detach()
                    v_next = None if v_next is None else v_next.detach()
                cur = self._advance(cur, x_next, v_next)
        return total

    def add_noise(self, batch: Batch, std: float, kind: str = "random_walk", correction: str = "velocity",
                  generator: torch.Generator | None = None) -> Batch:
        """``batch`` with noise on its observed frames and its targets corrected (module docstring).

        ``std``: standard deviation of the last observed frame's noise per coordinate, in the
        data's length unit. Draws from ``generator`` (default: torch's global generator, seeded
        by the run). Returns a new batch; ``batch`` is not modified.
        """
        if kind not in NOISE_KINDS:
            raise GraphdynError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}", field="kind")
        if correction not in NOISE_CORRECTIONS:
            raise GraphdynError(f"noise correction must be one of {NOISE_CORRECTIONS}, got {correction!r}", field="correction")
        if not (math.isfinite(std) and std >= 0):
            raise GraphdynError(f"noise std must be finite and non-negative, got {std!r}", field="std")
        if std == 0:
            return batch
        x = batch.x
        T = x.shape[1]

        def draw(shape, scale):
            return torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype) * scale

        if kind == "random_walk":
            steps = draw(x.shape, std / math.sqrt(T))  # e_t, t = 0 .. T-1
            noise = steps.cumsum(1)
        else:
            noise = draw(x.shape, std)
            if batch.v is not None:  # n_t - n_{t-1}, with n_{-1} drawn too
                steps = torch.diff(noise, dim=1, prepend=draw((x.shape[0], 1, *x.shape[2:]), std))
        last = noise[:, -1]
        out = {"x": x + noise}
        if batch.v is not None:
            out["v"] = batch.v + steps / batch.dt
        if correction == "velocity":  # the targets move with the last frame's noise
            out["target_x"] = batch.target_x + last
            if batch.future_x is not None:
                out["future_x"] = batch.future_x + last[:, None]
        else:  # clean target frames, reached from the noisy last frame
            if batch.target_v is not None:
                out["target_v"] = batch.target_v - last / batch.dt
            if batch.future_v is not None:
                out["future_v"] = torch.cat([batch.future_v[:, :1] - last[:, None] / batch.dt, batch.future_v[:, 1:]], 1)
        return replace(batch, **out)

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
            cur = self._advance(cur, x_next, v_next)
        return torch.stack(xs, 1), (None if vs[0] is None else torch.stack(vs, 1))

    @staticmethod
    def _advance(batch: Batch, x_next: torch.Tensor, v_next: torch.Tensor | None) -> Batch:
        """The window one stride on: drop the oldest frame, append the new state."""
        x_win = torch.cat([batch.x[:, 1:], x_next[:, None]], dim=1)
        v_win = None if batch.v is None else torch.cat([batch.v[:, 1:], v_next[:, None]], dim=1)
        return batch.with_inputs(x_win, v_win)
