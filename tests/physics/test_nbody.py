"""Charged and gravitating n-body systems: pair laws, conservation of momentum and energy."""

import json

import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.physics import ChargedSystem, Dynamics, GravitySystem, from_metadata, initial_state


def systems():
    return [
        ChargedSystem([1.0, -1.0, 1.0, 1.0, -1.0], m=[1.0, 2.0, 1.0, 0.5, 1.0], softening=0.1),
        ChargedSystem([1.0, -1.0, -1.0], softening=0.0),
        GravitySystem(5, m=[1.0, 2.0, 3.0, 0.5, 1.0], softening=0.1),
        GravitySystem(4, G=2.0, softening=0.0),
    ]


@pytest.mark.parametrize("system", systems(), ids=lambda s: f"{s.kind}-{s.n_nodes}-eps{s.softening}")
def test_pairwise_forces_cancel_and_are_minus_gradient(system):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, system.n_nodes, 3, generator=g, dtype=torch.float64, requires_grad=True)
    f = system.forces(x)
    assert f.sum(-2).abs().max() < 1e-12 * f.abs().max()  # Newton's third law: total force 0
    (grad,) = torch.autograd.grad(system.potential_energy(x).sum(), x)
    assert torch.allclose(f, -grad, atol=1e-12)


def test_two_body_laws():
    x = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    like = ChargedSystem([1.0, 1.0], softening=0.0).forces(x)
    assert like[0, 0].item() == pytest.approx(-0.25)  # repelled away from particle 1, 1/r^2
    unlike = ChargedSystem([1.0, -1.0], softening=0.0).forces(x)
    assert unlike[0, 0].item() == pytest.approx(0.25)
    grav = GravitySystem(2, m=[1.0, 3.0], G=2.0, softening=0.0)
    assert grav.forces(x)[0, 0].item() == pytest.approx(2.0 * 3.0 / 4.0)  # attracted
    assert grav.potential_energy(x).item() == pytest.approx(-3.0)
    assert ChargedSystem([1.0, 1.0], softening=0.0).potential_energy(x).item() == pytest.approx(0.5)


def test_softening_bounds_the_force_at_contact():
    x = torch.zeros(2, 3, dtype=torch.float64)
    assert torch.equal(GravitySystem(2, softening=0.1).forces(x), torch.zeros(2, 3, dtype=torch.float64))


@pytest.mark.parametrize("make", [lambda: ChargedSystem([1.0, -1.0, 1.0, -1.0, 1.0]), lambda: GravitySystem(5)], ids=["charged", "gravity"])
def test_verlet_conserves_energy_and_momentum(make):
    system = make()
    g = torch.Generator().manual_seed(1)
    x0, v0 = initial_state(system, 32, pos_std=1.0, vel_std=0.5, zero_momentum=True, generator=g)

    def energy_error(dt):
        """Largest drift |E(t) - E(0)| over t in (0, 1], relative to each run's energy scale."""
        X, V = Dynamics(system, dt, "velocity_verlet").rollout(x0, v0, round(1.0 / dt))
        drift = (system.energy(X, V) - system.energy(x0, v0)[:, None]).abs().amax(1)
        scale = system.kinetic_energy(V).mean(1) + system.potential_energy(X).abs().mean(1)
        return (drift / scale).max().item(), V

    err, V = energy_error(0.001)
    # Stated tolerance: relative energy drift below 1e-3 over t = 1 (1000 steps at the
    # default dt = 0.001), in the worst of 32 runs (close encounters dominate; the median is ~1e-6).
    assert err < 1e-3
    momentum = (system.masses[:, None] * V).sum(-2)
    assert momentum.abs().max() < 1e-12
    # Second order: twice the step, about four times the error.
    assert 3.0 < energy_error(0.002)[0] / err < 5.0


def test_complete_graph_and_node_attr():
    system = ChargedSystem([1.0, -1.0, 1.0])
    assert system.edge_index.shape == (2, 6)
    assert not (system.edge_index[0] == system.edge_index[1]).any()
    assert system.node_attr().tolist() == [[1.0], [-1.0], [1.0]]
    assert GravitySystem(3, m=[1.0, 2.0, 3.0]).node_attr().tolist() == [[1.0], [2.0], [3.0]]


@pytest.mark.parametrize("system", systems(), ids=lambda s: f"{s.kind}-{s.n_nodes}-eps{s.softening}")
def test_metadata_round_trip(system):
    meta = json.loads(json.dumps(system.to_metadata()))
    other = from_metadata(meta)
    x = torch.randn(3, system.n_nodes, 3, dtype=torch.float64)
    assert type(other) is type(system)
    assert torch.equal(other.forces(x), system.forces(x))
    assert torch.equal(other.energy(x, x), system.energy(x, x))


def test_bad_constants():
    with pytest.raises(GraphdynError, match="softening"):
        GravitySystem(3, softening=-1.0)
    with pytest.raises(GraphdynError, match="charges"):
        ChargedSystem([1.0])
    with pytest.raises(GraphdynError, match="kind"):
        from_metadata({"kind": "plasma"})
