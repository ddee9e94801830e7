"""TFNLayer: O(3), translation and permutation equivariance in float64, aggregation, isolated nodes, frames."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from graphdyn.nn.tfn import TFNLayer

N, F = 6, 3
IRREPS = o3.Irreps("4x0e + 4x1o")
# row 0 receiver, row 1 sender; node 5 sends to 0 and 4 but receives nothing
EDGES = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4, 0, 4], [1, 0, 2, 1, 3, 2, 4, 3, 5, 5]])


def orthogonal(seed: int, reflect: bool) -> torch.Tensor:
    """A random rotation, times -1 (a rotation followed by the inversion) when ``reflect``."""
    torch.manual_seed(seed)
    r = o3.rand_matrix(dtype=torch.float64)
    return -r if reflect else r


def wigner(irreps: o3.Irreps, rot: torch.Tensor) -> torch.Tensor:
    """The matrix by which ``rot`` (orthogonal, float64) acts on features of ``irreps``, to round-off.

    (e3nn's ``D_from_matrix`` passes through Euler angles and is off by ~1e-7.) Each degree l
    is fitted from spherical harmonics, ``Y^l(R u) = D^l(R) Y^l(u)``, at random points; an
    improper ``R`` then carries ``(-1)^l`` from ``Y^l(-u)``, replaced by the irrep's parity.
    """
    u = torch.randn(64, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    blocks = []
    for mul, ir in irreps:
        y, y_rot = (o3.spherical_harmonics(ir.l, v, normalize=True) for v in (u, u @ rot.T))
        d = torch.linalg.lstsq(y, y_rot).solution.T
        if torch.det(rot) < 0:
            d = d * (-1) ** ir.l * ir.p
        blocks += [d] * mul
    return torch.block_diag(*blocks)


def scalar_columns(irreps: o3.Irreps) -> list[int]:
    """Feature columns holding 0e scalars (possibly none)."""
    return [c for (_, ir), sl in zip(irreps, irreps.slices()) if ir == o3.Irrep("0e") for c in range(sl.start, sl.stop)]


def inputs(irreps=IRREPS, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, F, irreps.dim, generator=g, dtype=torch.float64)
    x = torch.randn(N, F, 3, generator=g, dtype=torch.float64)
    e = torch.randn(EDGES.shape[1], 1, 2, generator=g, dtype=torch.float64)
    return h, x, e


def float64_built(cls, *args, **kw):
    """Build an e3nn-based module with float64 as the default dtype: e3nn stores its l >= 2
    Clebsch-Gordan tables in the dtype of the moment, and ``.double()`` afterwards would keep
    float32 round-off (~1e-8) in them."""
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return cls(*args, **kw)
    finally:
        torch.set_default_dtype(old)


def layer(irreps_out="4x0e + 4x1o", **kw) -> TFNLayer:
    return float64_built(TFNLayer, IRREPS, irreps_out, edge_attr_dim=2, **kw)


CASES = [
    pytest.param({}, id="channelwise"),
    pytest.param({"kernel": "full"}, id="full"),
    pytest.param({"aggr": "sum"}, id="sum"),
    pytest.param({"irreps_out": "1x1o", "gate": False}, id="vector-output"),
    pytest.param({"irreps_out": "2x0e + 2x1o + 2x2e", "lmax": 2}, id="lmax2"),
]


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
@pytest.mark.parametrize("kw", CASES)
def test_o3_equivariant_scalars_invariant_vectors_turn(kw, reflect):
    tfn = layer(**kw)
    h, x, e = inputs()
    rot = orthogonal(1, reflect)
    out = tfn(h, x, EDGES, e)
    out_rot = tfn(h @ wigner(IRREPS, rot).T, x @ rot.T, EDGES, e)
    torch.testing.assert_close(out_rot, out @ wigner(tfn.irreps_out, rot).T, atol=1e-10, rtol=0)
    scalars = scalar_columns(tfn.irreps_out)
    torch.testing.assert_close(out_rot[..., scalars], out[..., scalars], atol=1e-10, rtol=0)
    assert out.abs().max() > 1e-3  # the check saw a real output


def test_a_reflection_flips_vector_outputs():
    """Parity is right: under the inversion x -> -x a 1o output changes sign (a 1e one would not)."""
    tfn = layer(irreps_out="1x1o", gate=False)
    h, x, e = inputs()
    out = tfn(h, x, EDGES, e)
    out_inv = tfn(h @ wigner(IRREPS, -torch.eye(3, dtype=torch.float64)).T, -x, EDGES, e)
    torch.testing.assert_close(out_inv, -out, atol=1e-12, rtol=0)
    assert out.abs().max() > 1e-3


def test_translation_invariant_and_permutation_equivariant():
    tfn = layer()
    h, x, e = inputs()
    out = tfn(h, x, EDGES, e)
    torch.testing.assert_close(tfn(h, x + torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64), EDGES, e), out)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(2))
    new_label = torch.argsort(perm)  # node perm[k] becomes node k
    shuffle = torch.randperm(EDGES.shape[1], generator=torch.Generator().manual_seed(3))
    out_p = tfn(h[perm], x[perm], new_label[EDGES][:, shuffle], e[shuffle])
    torch.testing.assert_close(out_p, out[perm])


def test_node_without_incoming_edges_gets_its_self_interaction():
    tfn = layer()
    h, x, e = inputs()
    out = tfn(h, x, EDGES, e)
    alone = tfn.gate(tfn.lin_self(h))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[5], alone[5])
    assert (out[0] - alone[0]).abs().max() > 1e-6  # a node with neighbours hears them


def test_mean_ignores_duplicated_edges_sum_does_not():
    h, x, e = inputs()
    twice, e2 = torch.cat([EDGES, EDGES], 1), torch.cat([e, e])
    mean, total = layer(), layer(aggr="sum")
    torch.testing.assert_close(mean(h, x, twice, e2), mean(h, x, EDGES, e))
    assert (total(h, x, twice, e2) - total(h, x, EDGES, e)).abs().max() > 1e-6


def test_batch_entries_are_independent_and_edge_attributes_matter():
    tfn = layer()
    h, x, e = inputs()
    out = tfn(h, x, EDGES, e)
    for f in range(F):
        torch.testing.assert_close(tfn(h[:, f], x[:, f], EDGES, e[:, 0]), out[:, f])
    assert (tfn(h, x, EDGES, e + 1.0) - out).abs().max() > 1e-6


def test_vector_messages_point_along_the_edges_from_scalar_inputs():
    """From scalars alone, a node's 1o output lies in the span of its relative vectors: one neighbour -> parallel."""
    torch.manual_seed(0)
    tfn = TFNLayer("4x0e", "1x1o", gate=False).double()
    h = torch.randn(2, 4, dtype=torch.float64)
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, -2.0]], dtype=torch.float64)
    out = tfn(h, x, torch.tensor([[0], [1]]))
    r = x[0] - x[1]
    torch.testing.assert_close(torch.linalg.cross(out[0], r), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)
    assert out[0].norm() > 1e-4
    torch.testing.assert_close(out[1], torch.zeros(3, dtype=torch.float64))  # no edges in, no self vector from scalars


def test_missing_edge_attributes_and_bad_options_are_refused():
    h, x, _ = inputs()
    with pytest.raises(ValueError, match="edge attributes"):
        layer()(h, x, EDGES)
    with pytest.raises(ValueError, match="aggr"):
        TFNLayer(IRREPS, IRREPS, aggr="max")
    with pytest.raises(ValueError, match="kernel"):
        TFNLayer(IRREPS, IRREPS, kernel="dense")
