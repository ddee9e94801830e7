"""Graph convolution with a normalised adjacency: the receiver convention, the normalisation,
the authors' A + A^2 and distance adjacencies, node relabelling, locality, bad input."""

from __future__ import annotations

import pytest
import torch

from graphdyn.errors import GraphdynError
from graphdyn.nn.graph_conv import GraphConv, adjacency_matrix, dataset_adjacency, normalize_adjacency, normalized_adjacency, two_hop_matrix


def both_ways(pairs):
    e = torch.tensor(pairs).T
    return torch.cat([e, e.flip(0)], 1)


def test_row_is_the_receiver_and_duplicates_add():
    W = adjacency_matrix(torch.tensor([[0, 0], [1, 1]]), 3, torch.tensor([0.5, 2.0]))
    want = torch.zeros(3, 3)
    want[0, 1] = 2.5  # both edges 1 -> 0
    assert torch.equal(W, want)


def test_normalisation_of_a_path_by_hand():
    A = normalized_adjacency(both_ways([(0, 1), (1, 2)]), 4, dtype=torch.float64)  # node 3 isolated
    s = 2**-0.5
    want = torch.tensor([[0, s, 0, 0], [s, 0, s, 0], [0, s, 0, 0], [0, 0, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(A, want)
    assert torch.isfinite(A).all()


def test_hop_adjacency_is_a_plus_a_squared_of_the_one_hop_edges():
    # a 4-cycle: 2-hop pairs have two common neighbours, A^2's diagonal holds the degrees
    one = both_ways([(0, 1), (1, 2), (2, 3), (3, 0)])
    two = both_ways([(0, 2), (1, 3)])
    edges = torch.cat([one, two], 1)
    hop = torch.cat([torch.ones(one.shape[1]), 2 * torch.ones(two.shape[1])]).double()
    attr = torch.stack([torch.randn(len(hop)).double(), hop], 1)  # hop in the last column
    A1 = adjacency_matrix(one, 4, dtype=torch.float64)
    W = two_hop_matrix(A1)
    assert W[0, 2] == 2 and W[0, 0] == 2 and W[0, 1] == 1
    got = dataset_adjacency(edges, 4, "hop", attr, column=-1)
    torch.testing.assert_close(got, normalize_adjacency(W))
    # the edge list alone: 1 per listed edge, no diagonal
    plain = dataset_adjacency(edges, 4, "edges", dtype=torch.float64)
    assert plain.diagonal().abs().max() == 0 and plain[0, 2] > 0


def test_attr_adjacency_weights_edges_by_the_column():
    edges = both_ways([(0, 1), (1, 2)])
    d = torch.tensor([3.0, 5.0, 3.0, 5.0], dtype=torch.float64)
    got = dataset_adjacency(edges, 3, "attr", d[:, None], column=0)
    torch.testing.assert_close(got, normalized_adjacency(edges, 3, d))
    assert got[1, 2] / got[1, 0] == pytest.approx(5 / 3 * (3 / 5) ** 0.5)  # D_0 = 3, D_2 = 5


def test_relabelling_nodes_and_shuffling_edges_commutes():
    g = torch.Generator().manual_seed(0)
    edges = both_ways([(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2)])
    w = torch.rand(edges.shape[1], generator=g, dtype=torch.float64)
    perm, shuffle = torch.randperm(5, generator=g), torch.randperm(edges.shape[1], generator=g)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(5)
    A = normalized_adjacency(edges, 5, w)
    A2 = normalized_adjacency(inv[edges][:, shuffle], 5, w[shuffle])
    torch.testing.assert_close(A2, A[perm][:, perm])


def test_layer_matches_its_formula_in_both_layouts_and_stays_local():
    torch.manual_seed(0)
    edges = both_ways([(0, 1), (1, 2), (2, 3), (3, 4)])  # a path: node 0 is 2 hops from node 2
    adj = normalized_adjacency(edges, 5, dtype=torch.float64)
    layer = GraphConv(4, 3, bias=True).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64)  # [B, T, N, F]
    y = layer(x, adj, node_dim=2)
    want = torch.einsum("ij,btjf,of->btio", adj, x, layer.linear.weight) + layer.bias
    torch.testing.assert_close(y, want)
    torch.testing.assert_close(layer(x.movedim(2, 0), adj, node_dim=0).movedim(0, 2), y)
    x2 = x.clone()
    x2[1, 3, 2] += 1.0  # sample 1, frame 3, node 2
    changed = (layer(x2, adj, node_dim=2) - y).abs().amax(-1) > 0
    expect = torch.zeros_like(changed)
    expect[1, 3, [1, 3]] = True  # its neighbours only (no self loop), same sample and frame
    assert torch.equal(changed, expect)


def test_bad_input_names_the_field():
    edges = both_ways([(0, 1)])
    with pytest.raises(GraphdynError, match="edge_index.*\\[0, 2\\)"):
        adjacency_matrix(torch.tensor([[0], [2]]), 2)
    with pytest.raises(GraphdynError, match="edge_attr.*one weight per edge"):
        adjacency_matrix(edges, 2, torch.ones(3))
    with pytest.raises(GraphdynError, match="edge_attr.*no edge attributes"):
        dataset_adjacency(edges, 2, "hop", None)
    with pytest.raises(GraphdynError, match="adjacency_column.*out of range"):
        dataset_adjacency(edges, 2, "attr", torch.ones(2, 1), column=1)
    with pytest.raises(GraphdynError, match="no edge with hop 1"):
        dataset_adjacency(edges, 2, "hop", torch.full((2, 1), 2.0))
