"""SE3AttentionLayer and segment_softmax: O(3)/translation/permutation equivariance in float64,
attention weights (a softmax per receiver, invariant, driven by query and key), isolated nodes."""

from __future__ import annotations

import pytest
import torch

from graphdyn.nn.se3_attention import SE3AttentionLayer, segment_softmax
from tests.nn.test_tfn import EDGES, IRREPS, N, float64_built, inputs, orthogonal, scalar_columns, wigner


def layer(irreps_out="4x0e + 4x1o", **kw) -> SE3AttentionLayer:
    return float64_built(SE3AttentionLayer, IRREPS, irreps_out, edge_attr_dim=2, **kw)


def per_receiver_sums(alpha: torch.Tensor, n: int = N) -> torch.Tensor:
    return alpha.new_zeros((n, *alpha.shape[1:])).index_add_(0, EDGES[0], alpha)


CASES = [
    pytest.param({}, id="one-head"),
    pytest.param({"heads": 2}, id="two-heads"),
    pytest.param({"kernel": "full", "heads": 2}, id="full"),
    pytest.param({"irreps_out": "1x1o", "gate": False}, id="vector-output"),
    pytest.param({"irreps_out": "2x0e + 2x1o + 2x2e", "lmax": 2, "heads": 2}, id="lmax2"),
]


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
@pytest.mark.parametrize("kw", CASES)
def test_o3_equivariant_with_invariant_attention(kw, reflect):
    att = layer(**kw)
    h, x, e = inputs()
    rot = orthogonal(1, reflect)
    out, alpha = att(h, x, EDGES, e, return_attention=True)
    out_rot, alpha_rot = att(h @ wigner(IRREPS, rot).T, x @ rot.T, EDGES, e, return_attention=True)
    torch.testing.assert_close(out_rot, out @ wigner(att.irreps_out, rot).T, atol=1e-10, rtol=0)
    scalars = scalar_columns(att.irreps_out)
    torch.testing.assert_close(out_rot[..., scalars], out[..., scalars], atol=1e-10, rtol=0)
    torch.testing.assert_close(alpha_rot, alpha, atol=1e-12, rtol=0)
    assert out.abs().max() > 1e-3


def test_translation_invariant_and_permutation_equivariant():
    att = layer(heads=2)
    h, x, e = inputs()
    out, alpha = att(h, x, EDGES, e, return_attention=True)
    torch.testing.assert_close(att(h, x - torch.tensor([1.0, 4.0, -2.0], dtype=torch.float64), EDGES, e), out)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(2))
    new_label = torch.argsort(perm)
    shuffle = torch.randperm(EDGES.shape[1], generator=torch.Generator().manual_seed(3))
    out_p, alpha_p = att(h[perm], x[perm], new_label[EDGES][:, shuffle], e[shuffle], return_attention=True)
    torch.testing.assert_close(out_p, out[perm])
    torch.testing.assert_close(alpha_p, alpha[shuffle])


@pytest.mark.parametrize("heads", [1, 2])
def test_attention_weights_sum_to_one_per_receiver_and_are_not_uniform(heads):
    att = layer(heads=heads)
    h, x, e = inputs()
    _, alpha = att(h, x, EDGES, e, return_attention=True)
    assert alpha.shape == (EDGES.shape[1], h.shape[1], heads)
    assert (alpha > 0).all()
    sums = per_receiver_sums(alpha)
    has_in = torch.bincount(EDGES[0], minlength=N) > 0
    torch.testing.assert_close(sums[has_in], torch.ones_like(sums[has_in]))
    assert (sums[~has_in] == 0).all()
    uniform = 1.0 / torch.bincount(EDGES[0], minlength=N)[EDGES[0]].double()
    assert (alpha - uniform[:, None, None]).abs().max() > 1e-3


def test_the_query_steers_the_attention():
    """Changing only the receivers' features changes the weights over their incoming edges."""
    att = layer()
    h, x, e = inputs()
    _, alpha = att(h, x, EDGES, e, return_attention=True)
    h2 = h.clone()
    h2[0] = torch.randn(h.shape[1:], generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    _, alpha2 = att(h2, x, EDGES, e, return_attention=True)
    into_0 = EDGES[0] == 0
    senders_of_0 = set(EDGES[1, into_0].tolist())
    assert 0 not in senders_of_0  # node 0's own features enter only through the query
    assert (alpha2[into_0] - alpha[into_0]).abs().max() > 1e-4
    # node 0 is also a sender: the softmax of its receivers sees a new key; other receivers see nothing new
    touched = torch.isin(EDGES[0], torch.cat([torch.tensor([0]), EDGES[0, EDGES[1] == 0]]))
    others = ~touched
    assert others.any()
    torch.testing.assert_close(alpha2[others], alpha[others])


def test_node_without_incoming_edges_gets_its_self_interaction():
    att = layer()
    h, x, e = inputs()
    out = att(h, x, EDGES, e)
    alone = att.gate(att.lin_self(h))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[5], alone[5])
    assert (out[0] - alone[0]).abs().max() > 1e-6


def test_segment_softmax_matches_a_dense_softmax_per_receiver_and_survives_large_logits():
    g = torch.Generator().manual_seed(0)
    index = torch.tensor([0, 2, 0, 2, 2, 3])
    logits = torch.randn(6, 4, 2, generator=g, dtype=torch.float64) * 3 + 800.0  # exp would overflow unshifted
    alpha = segment_softmax(logits, index, num_nodes=5)
    assert torch.isfinite(alpha).all()
    for node in range(5):
        rows = index == node
        if rows.any():
            torch.testing.assert_close(alpha[rows], torch.softmax(logits[rows], dim=0))


def test_segment_softmax_gradient_matches_a_dense_softmax():
    index = torch.tensor([1, 1, 0, 1])
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, 3, dtype=torch.float64)
    (g,) = torch.autograd.grad((segment_softmax(logits, index, 2) * weights).sum(), logits)
    ref = logits.detach().clone().requires_grad_()
    dense = torch.cat([torch.softmax(ref[[2]], 0), torch.softmax(ref[[0, 1, 3]], 0)])
    (g_ref,) = torch.autograd.grad((dense * weights[[2, 0, 1, 3]]).sum(), ref)
    torch.testing.assert_close(g, g_ref)


def test_heads_must_divide_the_channels():
    with pytest.raises(ValueError, match="heads"):
        SE3AttentionLayer(IRREPS, IRREPS, heads=3)
