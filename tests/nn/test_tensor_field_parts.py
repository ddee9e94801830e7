"""Shared tensor-field parts: the channelwise product is e3nn's weighted uvu product, full-kernel
widths, the radial network's inputs, the gate's irreps and parities."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from graphdyn.nn.tensor_field_parts import EdgeTensorProduct, RadialNet, edge_geometry, gated

IRREPS = o3.Irreps("4x0e + 4x1o")
SH = o3.Irreps.spherical_harmonics(1)


def test_channelwise_product_is_e3nns_weighted_uvu_product():
    """Unweighted product times tied per-channel weights == e3nn's uvu product with those weights."""
    torch.manual_seed(0)
    prod = EdgeTensorProduct(IRREPS, SH, o3.Irreps("8x0e + 4x1o"), "channelwise", radial_hidden=5).double()
    h = torch.randn(7, 2, IRREPS.dim, dtype=torch.float64)
    sh = o3.spherical_harmonics(1, torch.randn(7, 2, 3, dtype=torch.float64), normalize=True)
    sh = torch.cat([torch.ones_like(sh[..., :1]), sh], -1)
    phi = torch.randn(7, 2, 5, dtype=torch.float64)
    instructions = [(i.i_in1, i.i_in2, i.i_out, "uvu", True) for i in prod.tp.instructions]
    ref = o3.TensorProduct(IRREPS, SH, prod.irreps_out, instructions, shared_weights=False, internal_weights=False)
    assert [str(ir) for _, ir in prod.irreps_out] == ["0e", "1o", "1o", "0e"]  # 1o x 1o -> 1e left out
    torch.testing.assert_close(prod(h, sh, phi), ref(h, sh, prod.radial_out[0](phi)))


def test_weightings_share_the_product_with_their_own_weights():
    torch.manual_seed(0)
    prod = EdgeTensorProduct(IRREPS, SH, IRREPS, "channelwise", radial_hidden=5, weightings=2)
    h, phi = torch.randn(6, IRREPS.dim), torch.randn(6, 5)
    sh, _ = edge_geometry(torch.randn(4, 3), torch.tensor([[0, 1, 2, 3, 0, 2], [1, 2, 3, 0, 2, 0]]), 1)
    k, v = prod(h, sh, phi)
    assert k.shape == v.shape == (6, prod.irreps_out.dim) and (k - v).abs().max() > 1e-4


@pytest.mark.parametrize(
    "target,expected", [("16x0e + 8x1o", "4x0e+4x1o"), ("1x1o", "1x1o"), ("2x0e + 8x1o", "2x0e+4x1o")]
)
def test_full_kernel_outputs_at_most_the_input_width(target, expected):
    prod = EdgeTensorProduct(IRREPS, SH, o3.Irreps(target), "full", radial_hidden=4)
    assert str(prod.irreps_out) == expected
    assert prod.radial_out[0].out_features == prod.tp.weight_numel


def test_radial_net_sees_lengths_beyond_r_max_and_edge_attributes_per_edge():
    torch.manual_seed(0)
    radial = RadialNet(n_basis=6, r_max=2.0, hidden=16, edge_attr_dim=3)
    dist = torch.tensor([8.0, 12.0]).view(2, 1, 1).expand(2, 4, 1)  # 2 edges, 4 frames, both past r_max
    e = torch.randn(1, 1, 3).expand(2, 1, 3)  # the same attributes on both edges, shared by the frames
    phi = radial(dist, e)
    assert phi.shape == (2, 4, 16) and (phi >= 0).all()
    assert (phi[0] - phi[1]).abs().max() > 1e-4  # the Gaussians are ~0 for both: the length tells them apart
    assert (radial(dist, e + 1.0) - phi).abs().max() > 1e-4
    with pytest.raises(ValueError, match="edge attributes"):
        radial(dist)


def test_gate_irreps_and_odd_scalars_keep_their_parity():
    gate, irreps_in = gated(o3.Irreps("3x0e + 2x0o + 4x1o"))
    assert irreps_in.count("0e") == 3 + 4 and irreps_in.count("0o") == 2 and irreps_in.count("1o") == 4
    assert str(gate.irreps_out) == "3x0e+2x0o+4x1o"
    x = torch.randn(5, irreps_in.dim)
    odd = [s for (_, ir), s in zip(gate.irreps_out, gate.irreps_out.slices()) if ir == o3.Irrep("0o")][0]
    flip = torch.ones(irreps_in.dim)
    for (_, ir), s in zip(irreps_in, irreps_in.slices()):
        if ir == o3.Irrep("0o"):
            flip[s] = -1
    torch.testing.assert_close(gate(x * flip)[:, odd], -gate(x)[:, odd])  # tanh: odd in, odd out
