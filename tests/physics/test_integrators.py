"""Integrators and Dynamics: the update rules, their order of accuracy, rollout bookkeeping."""

import math

import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.physics import Dynamics, SpringSystem, semi_implicit_euler_step, velocity_verlet_step


def oscillator():
    """Two unit masses on one unit spring: the relative coordinate oscillates at omega = sqrt(2)."""
    return SpringSystem([[0, 1]], 2, dim=1)


def test_semi_implicit_euler_updates_velocity_first():
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    v = torch.tensor([[0.5], [0.0]], dtype=torch.float64)
    acc = oscillator().acceleration
    x1, v1, _ = semi_implicit_euler_step(x, v, acc, 0.1)
    assert torch.allclose(v1, v + acc(x) * 0.1)
    assert torch.allclose(x1, x + v1 * 0.1)  # the new velocity moves the masses


def test_velocity_verlet_step_and_its_cached_acceleration():
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    v = torch.tensor([[0.5], [0.0]], dtype=torch.float64)
    acc = oscillator().acceleration
    x1, v1, a1 = velocity_verlet_step(x, v, acc, 0.1)
    v_half = v + 0.05 * acc(x)
    assert torch.allclose(x1, x + 0.1 * v_half)
    assert torch.allclose(v1, v_half + 0.05 * acc(x1))
    assert torch.allclose(a1, acc(x1))


def _final_error(integrator, dt, t_end=2.0):
    x0 = torch.tensor([[[0.0], [1.0]]], dtype=torch.float64)
    v0 = torch.zeros_like(x0)
    X, _ = Dynamics(oscillator(), dt, integrator).rollout(x0, v0, round(t_end / dt))
    rel = (X[0, -1, 1, 0] - X[0, -1, 0, 0]).item()
    return abs(rel - math.cos(math.sqrt(2.0) * t_end))


def test_orders_of_accuracy():
    # Halving dt: first-order error halves, second-order error quarters.
    sie = _final_error("semi_implicit_euler", 0.01) / _final_error("semi_implicit_euler", 0.005)
    vv = _final_error("velocity_verlet", 0.01) / _final_error("velocity_verlet", 0.005)
    assert 1.7 < sie < 2.3
    assert 3.6 < vv < 4.4


@pytest.mark.parametrize("integrator", ["semi_implicit_euler", "velocity_verlet"])
def test_rollout_stride_and_substeps_pick_the_same_frames(integrator):
    system = SpringSystem.build(n_masses=4, dim=2, graph="ring")
    x0 = torch.randn(5, 4, 2, dtype=torch.float64)
    v0 = torch.randn(5, 4, 2, dtype=torch.float64)
    dyn = Dynamics(system, 0.01, integrator)
    X6, V6 = dyn.rollout(x0, v0, 6)
    X3, V3 = dyn.rollout(x0, v0, 3, stride=2)
    Xs, Vs = dyn.with_substeps(2).rollout(x0, v0, 3)
    assert X6.shape == (5, 6, 4, 2)
    assert torch.allclose(X3, X6[:, 1::2], atol=1e-14) and torch.allclose(V3, V6[:, 1::2], atol=1e-14)
    assert torch.allclose(Xs, X3, atol=1e-14) and torch.allclose(Vs, V3, atol=1e-14)
    x1, v1 = dyn.step(x0, v0)
    assert torch.allclose(x1, X6[:, 0], atol=1e-14) and torch.allclose(v1, V6[:, 0], atol=1e-14)


def test_rollout_computes_in_float64_and_returns_the_input_dtype():
    system = SpringSystem.build(n_masses=3, dim=3)
    x0 = torch.randn(2, 3, 3)
    v0 = torch.randn(2, 3, 3)
    X, V = Dynamics(system, 0.01).rollout(x0, v0, 50)
    assert X.dtype == torch.float32 and V.dtype == torch.float32
    X64, _ = Dynamics(system, 0.01).rollout(x0.double(), v0.double(), 50)
    assert torch.equal(X, X64.float())  # same float64 arithmetic, rounded once at the end


def test_rollout_over_extra_leading_dims():
    system = SpringSystem.build()
    x0 = torch.randn(2, 3, 3, 1, dtype=torch.float64)
    X, _ = Dynamics(system, 0.01).rollout(x0, x0, 4)
    assert X.shape == (2, 3, 4, 3, 1)
    X1, _ = Dynamics(system, 0.01).rollout(x0[1], x0[1], 4)
    assert torch.equal(X[1], X1)


def test_energy_in_input_dtype():
    dyn = Dynamics(SpringSystem.build(), 0.01)
    x = torch.randn(7, 3, 1)
    assert dyn.energy(x, x).shape == (7,) and dyn.energy(x, x).dtype == torch.float32


def test_force_noise_is_seeded_and_perturbs():
    system = SpringSystem.build()
    x0 = torch.randn(4, 3, 1, dtype=torch.float64)
    v0 = torch.zeros_like(x0)
    clean, _ = Dynamics(system, 0.01).rollout(x0, v0, 20)
    runs = [Dynamics(system, 0.01, force_noise_std=0.1, generator=torch.Generator().manual_seed(3)).rollout(x0, v0, 20)[0] for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], clean, atol=1e-6)


def test_bad_arguments_are_user_errors():
    system = SpringSystem.build()
    with pytest.raises(GraphdynError, match="integrator"):
        Dynamics(system, 0.01, "rk4")
    with pytest.raises(GraphdynError, match="dt"):
        Dynamics(system, 0.0)
    with pytest.raises(GraphdynError, match="steps"):
        Dynamics(system, 0.01).rollout(torch.zeros(1, 3, 1), torch.zeros(1, 3, 1), 0)


def test_metadata_round_trip():
    from graphdyn.physics import dynamics_from_metadata

    dyn = Dynamics(SpringSystem.build(n_masses=4, graph="ring"), 0.02, "velocity_verlet", substeps=3)
    other = dynamics_from_metadata(dyn.to_metadata())
    x0 = torch.randn(2, 4, 1, dtype=torch.float64)
    assert (other.dt, other.integrator, other.substeps) == (0.02, "velocity_verlet", 3)
    assert torch.equal(dyn.rollout(x0, x0, 5)[0], other.rollout(x0, x0, 5)[0])
