"""Spring networks: the notebook's forces bit for bit, graphs, energies, metadata."""

import json

import numpy as np
import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.physics import Dynamics, SpringSystem, chain_graph, from_metadata, random_graph, ring_graph


def notebook_forces(positions, k=1.0):
    """The notebook's explicit formulas, copied term by term."""
    forces = torch.zeros(3, dtype=positions.dtype)
    forces[0] = -k * (positions[0] - positions[1])
    forces[1] = -k * (positions[1] - positions[0]) - k * (positions[1] - positions[2])
    forces[2] = -k * (positions[2] - positions[1])
    return forces


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_notebook_chain_forces_are_bit_exact(dtype):
    torch.manual_seed(0)
    x = torch.randn(200, 3, dtype=dtype) * 0.5
    system = SpringSystem.build()  # the notebook's 3-mass 1-D chain, k = m = 1
    ours = system.acceleration(x[:, :, None])[..., 0]
    expected = torch.stack([notebook_forces(p) for p in x])
    assert torch.equal(ours, expected)


def test_notebook_edges_are_the_chain_in_both_directions():
    system = SpringSystem.build()
    assert system.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]


def test_notebook_500_step_rollout_is_bit_exact_in_float32():
    torch.manual_seed(1)
    x0, v0 = torch.randn(3) * 0.5, torch.randn(3) * 0.3
    k, m, dt = 1.0, 1.0, 0.01
    pos, vel, ref = x0.clone(), v0.clone(), []
    for _ in range(500):  # the notebook's simulate_true_physics
        accel = notebook_forces(pos, k) / m
        vel = vel + accel * dt
        pos = pos + vel * dt
        ref.append(pos.clone())
    dyn = Dynamics(SpringSystem.build(), dt, "semi_implicit_euler", dtype=None)
    X, _ = dyn.rollout(x0[None, :, None], v0[None, :, None], 500)
    assert X.dtype == torch.float32
    assert torch.equal(X[0, :, :, 0], torch.stack(ref))


def _connected(springs, n):
    adj = {i: set() for i in range(n)}
    for a, b in springs:
        adj[a].add(b)
        adj[b].add(a)
    seen, todo = {0}, [0]
    while todo:
        for j in adj[todo.pop()] - seen:
            seen.add(j)
            todo.append(j)
    return len(seen) == n


def test_graph_builders():
    assert chain_graph(4).tolist() == [[0, 1], [1, 2], [2, 3]]
    assert ring_graph(4).tolist() == [[0, 1], [1, 2], [2, 3], [3, 0]]
    for seed in range(20):
        g = random_graph(8, edge_prob=0.1, seed=seed)
        assert _connected(g.tolist(), 8)
        assert (g[:, 0] < g[:, 1]).all() and len({tuple(p) for p in g.tolist()}) == len(g)
    assert np.array_equal(random_graph(8, 0.3, seed=5), random_graph(8, 0.3, seed=5))
    assert not all(np.array_equal(random_graph(8, 0.3, seed=5), random_graph(8, 0.3, seed=s)) for s in range(6, 10))
    with pytest.raises(GraphdynError):
        ring_graph(2)


def test_edge_index_holds_both_directions_receiver_first():
    system = SpringSystem.build(n_masses=6, graph="random", graph_seed=3)
    pairs = set(map(tuple, system.edge_index.T.tolist()))
    assert all((j, i) in pairs for i, j in pairs)
    assert system.edge_index.shape[1] == 2 * system.n_springs


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_forces_are_minus_gradient_of_energy(dim):
    g = torch.Generator().manual_seed(dim)
    springs = random_graph(5, 0.5, seed=1)
    k = torch.rand(len(springs), generator=g, dtype=torch.float64) + 0.5
    system = SpringSystem(springs, 5, dim, k=k.tolist(), m=2.0, rest_length=0.7)
    x = torch.randn(4, 5, dim, generator=g, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(system.potential_energy(x).sum(), x)
    assert torch.allclose(system.forces(x), -grad, atol=1e-12)
    assert torch.allclose(system.acceleration(x), -grad / 2.0, atol=1e-12)


def test_spring_at_rest_length_exerts_no_force_and_stretched_spring_pulls():
    system = SpringSystem([[0, 1]], 2, dim=2, k=3.0, rest_length=1.0)
    x = torch.tensor([[0.0, 0.0], [0.6, 0.8]], dtype=torch.float64)  # |r| = 1
    assert torch.allclose(system.forces(x), torch.zeros(2, 2, dtype=torch.float64), atol=1e-15)
    f = system.forces(2 * x)  # |r| = 2: pulled together with |F| = k (2 - 1) = 3
    assert torch.allclose(f[0], 3.0 * torch.tensor([0.6, 0.8], dtype=torch.float64))
    assert torch.allclose(f[1], -f[0])


def test_energy_is_kinetic_plus_potential():
    system = SpringSystem.build(m=[1.0, 2.0, 3.0])
    x = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    v = torch.tensor([[1.0], [1.0], [-1.0]], dtype=torch.float64)
    # K = (1 + 2 + 3) / 2 = 3; U = (1^2 + 2^2) / 2 = 2.5
    assert system.energy(x, v).item() == pytest.approx(5.5)


def test_any_leading_batch_dims():
    system = SpringSystem.build(n_masses=4, dim=2, graph="ring")
    x = torch.randn(2, 3, 4, 2, dtype=torch.float64)
    assert torch.equal(system.forces(x)[1, 2], system.forces(x[1, 2]))
    assert system.energy(x, x).shape == (2, 3)


def test_metadata_round_trip_through_json():
    springs = random_graph(5, 0.5, seed=2)
    system = SpringSystem(springs, 5, dim=3, k=np.arange(1.0, len(springs) + 1), m=[1, 2, 3, 4, 5], rest_length=0.5)
    meta = json.loads(json.dumps(system.to_metadata()))
    assert meta["kind"] == "springs"
    other = from_metadata(meta)
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    assert torch.equal(system.forces(x), other.forces(x))
    assert torch.equal(system.energy(x, x), other.energy(x, x))


def test_uniform_k_gives_no_edge_attr_and_varying_k_does():
    assert SpringSystem.build().edge_attr() is None
    attr = SpringSystem.build(k=[1.0, 2.0]).edge_attr()
    assert attr.tolist() == [[1.0], [1.0], [2.0], [2.0]]


def test_bad_constants_are_user_errors():
    with pytest.raises(GraphdynError, match="k"):
        SpringSystem.build(k=[1.0, 2.0, 3.0])
    with pytest.raises(GraphdynError, match="positive"):
        SpringSystem.build(m=[1.0, 0.0, 1.0])
    with pytest.raises(GraphdynError, match="graph"):
        SpringSystem.build(graph="star")
    with pytest.raises(GraphdynError, match="positions"):
        SpringSystem.build().forces(torch.zeros(3, 2))
