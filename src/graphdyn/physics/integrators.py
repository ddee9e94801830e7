"""Time integration: the notebook's semi-implicit Euler, velocity Verlet, and :class:`Dynamics`.

Both integrators are symplectic (their energy error stays bounded instead of drifting);
semi-implicit Euler is first order, velocity Verlet second order.

Semi-implicit (symplectic) Euler, exactly the notebook's order::

    v' = v + a(x) dt
    x' = x + v' dt

Velocity Verlet::

    v_half = v + a(x) dt / 2
    x'     = x + v_half dt
    v'     = v_half + a(x') dt / 2

Verlet evaluates ``a`` once per step: ``a(x')`` is reused as the next step's ``a(x)``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from graphdyn.errors import GraphdynError
from graphdyn.physics.system import System

AccelFn = Callable[[torch.Tensor], torch.Tensor]
INTEGRATORS = ("semi_implicit_euler", "velocity_verlet")


def semi_implicit_euler_step(
    x: torch.Tensor, v: torch.Tensor, accel: AccelFn, dt: float, a: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One step ``v' = v + a(x) dt, x' = x + v' dt``.

    Shapes: ``x, v [..., N, D]``. ``a`` is ignored (accepted so both integrators share a
    signature); returns ``(x', v', None)``.
    """
    v = v + accel(x) * dt
    return x + v * dt, v, None


def velocity_verlet_step(
    x: torch.Tensor, v: torch.Tensor, accel: AccelFn, dt: float, a: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One velocity-Verlet step; returns ``(x', v', a(x'))`` for reuse by the next step.

    Shapes: ``x, v, a [..., N, D]``; pass ``a = a(x)`` when known, else it is computed.
    """
    if a is None:
        a = accel(x)
    v_half = v + a * (0.5 * dt)
    x = x + v_half * dt
    a = accel(x)
    return x, v_half + a * (0.5 * dt), a


_STEPS = {"semi_implicit_euler": semi_implicit_euler_step, "velocity_verlet": velocity_verlet_step}


def integrator_step(name: str):
    """The step function of a named integrator."""
    if name not in _STEPS:
        raise GraphdynError(f"unknown integrator {name!r}; choose one of {', '.join(INTEGRATORS)}", field="integrator")
    return _STEPS[name]


class Dynamics:
    """The true physics of a system: a system, an integrator and a time step.

    One :meth:`step` advances ``substeps`` integrator steps of ``dt`` (time ``frame_dt =
    substeps * dt``); with the default ``substeps = 1`` one step is one integrator step.
    Dataset builders set ``substeps`` so that one step spans one window stride of their data.

    Args:
        system: the :class:`~graphdyn.physics.system.System`.
        dt: integrator time step.
        integrator: ``"semi_implicit_euler"`` (the notebook's) or ``"velocity_verlet"``.
        substeps: integrator steps per :meth:`step`.
        force_noise_std: standard deviation of Gaussian noise added to every force component
            at every force evaluation (random external kicks; the notebook's commented
            ``forces += randn * 0.1``). 0 (default) is deterministic physics.
        dtype: dtype the physics is computed in (float64 by default); inputs are cast to it
            and results cast back to the input dtype. None computes in the input dtype.
        generator: torch generator for the force noise (seeded reproducibility).
    """

    def __init__(
        self,
        system: System,
        dt: float,
        integrator: str = "semi_implicit_euler",
        substeps: int = 1,
        force_noise_std: float = 0.0,
        dtype: torch.dtype | None = torch.float64,
        generator: torch.Generator | None = None,
    ):
        self.system = system
        self.dt = float(dt)
        if not self.dt > 0:
            raise GraphdynError(f"time step must be positive, got {dt}", field="dt")
        self.integrator = integrator
        self._step = integrator_step(integrator)
        self.substeps = int(substeps)
        if self.substeps < 1:
            raise GraphdynError(f"substeps must be at least 1, got {substeps}", field="substeps")
        self.force_noise_std = float(force_noise_std)
        if self.force_noise_std < 0:
            raise GraphdynError(f"force noise must be >= 0, got {force_noise_std}", field="force_noise_std")
        self.dtype = dtype
        self.generator = generator

    @property
    def frame_dt(self) -> float:
        """Time advanced by one :meth:`step`."""
        return self.dt * self.substeps

    def with_substeps(self, substeps: int) -> "Dynamics":
        """The same physics with ``substeps`` integrator steps per :meth:`step`."""
        return Dynamics(self.system, self.dt, self.integrator, substeps, self.force_noise_std, self.dtype, self.generator)

    # ------------------------------------------------------------------ physics
    def acceleration(self, x: torch.Tensor) -> torch.Tensor:
        """a = (F(x) + noise) / m, ``[..., N, D]`` in ``x``'s dtype."""
        if self.force_noise_std == 0:
            return self.system.acceleration(x)
        noise = torch.randn(x.shape, generator=self.generator, dtype=x.dtype, device=x.device)
        f = self.system.forces(x) + noise * self.force_noise_std
        return f / self.system.const("masses", x)[:, None]

    def step(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance ``x, v [..., N, D]`` by ``substeps`` integrator steps."""
        out_dtype = x.dtype
        x, v = self._cast(x), self._cast(v)
        a = None
        for _ in range(self.substeps):
            x, v, a = self._step(x, v, self.acceleration, self.dt, a)
        return x.to(out_dtype), v.to(out_dtype)

    def rollout(self, x0: torch.Tensor, v0: torch.Tensor, steps: int, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Integrate from ``x0, v0 [..., N, D]`` and return ``steps`` frames.

        Frame ``k`` (0-based) is the state after ``(k + 1) * stride`` calls of :meth:`step`
        (the initial state is not included), as in
        :meth:`graphdyn.simulator.LearnedSimulator.rollout`.

        Returns:
            ``X, V [..., steps, N, D]`` in the dtype of ``x0``.
        """
        if int(steps) < 1:
            raise GraphdynError(f"rollout steps must be at least 1, got {steps}", field="steps")
        if int(stride) < 1:
            raise GraphdynError(f"stride must be at least 1, got {stride}", field="stride")
        out_dtype = x0.dtype
        x, v = self._cast(x0), self._cast(v0)
        shape = (*x.shape[:-2], int(steps), *x.shape[-2:])
        X = torch.empty(shape, dtype=out_dtype, device=x.device)
        V = torch.empty(shape, dtype=out_dtype, device=x.device)
        inner = int(stride) * self.substeps
        a = None
        for k in range(int(steps)):
            for _ in range(inner):
                x, v, a = self._step(x, v, self.acceleration, self.dt, a)
            X[..., k, :, :] = x
            V[..., k, :, :] = v
        return X, V

    def energy(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor | None:
        """Total energy ``[...]`` of states ``x, v [..., N, D]``, in the dtype of ``x``."""
        return self.system.energy(self._cast(x), self._cast(v)).to(x.dtype)

    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.dtype is None else t.to(self.dtype)

    # ------------------------------------------------------------------ metadata
    def to_metadata(self) -> dict[str, Any]:
        """``{"system", "dt", "integrator", "substeps"}``; read back by ``dynamics_from_metadata``."""
        return {"system": self.system.to_metadata(), "dt": self.dt, "integrator": self.integrator, "substeps": self.substeps}

    def __repr__(self) -> str:
        return f"Dynamics({self.system!r}, dt={self.dt}, integrator={self.integrator!r}, substeps={self.substeps})"
