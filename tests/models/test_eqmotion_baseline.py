"""EqMotion baseline: every layout conversion keeps nodes, frames and samples apart (the
authors' reshape bug), the centroid counted once, the fully connected graph, defaults, errors."""

from __future__ import annotations

import math

import pytest
import torch

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model
from graphdyn.nn.dct import dct_matrix

B, T, N, A = 3, 6, 5, 2
EDGES = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])


def make(params=None, seed=0):
    info = DataInfo(dim=3, channels=None, node_attr_dim=A, edge_attr_dim=1, T=T, n_nodes=N, has_velocities=False)
    torch.manual_seed(seed)
    return build_model("eqmotion", params or {}, info).double()


def tagged_x() -> torch.Tensor:
    """``x[b, t, n] = (b, n, t)``: every entry names its own sample, node and frame."""
    b, t, n = torch.meshgrid(torch.arange(B), torch.arange(T), torch.arange(N), indexing="ij")
    return torch.stack([b, n, t], dim=-1).to(torch.float64)


def attrs() -> torch.Tensor:
    return torch.randn(B, N, A, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def batch_of(x, node_attr=None, edge_index=EDGES):
    return Batch(
        x=x, target_x=torch.zeros(B, N, 3, dtype=torch.float64), node_attr=attrs() if node_attr is None else node_attr,
        edge_index=edge_index, edge_attr=torch.ones(edge_index.shape[1], 1, dtype=torch.float64), dt=1.0,
    )


def run(model, x, node_attr=None):
    trace: dict[str, torch.Tensor] = {}
    out = model.run(x, attrs() if node_attr is None else node_attr, trace=trace)
    return out, trace


def test_series_and_node_input_keep_nodes_and_frames_apart():
    x = tagged_x()
    _, trace = run(make(), x)
    series = trace["series"]  # [B, N, T, 3]
    assert series.shape == (B, N, T, 3)
    for b in range(B):
        for n in range(N):
            for t in range(T):
                assert series[b, n, t].tolist() == [b, n, t]
    # the authors' reshape of the time-major tensor would not pass this
    authors = x.transpose(0, 1).reshape(T, B * N, 3).reshape(B, N, T, 3)
    assert not torch.equal(authors, series)
    a = attrs()
    for b in range(B):
        for n in range(N):
            assert torch.equal(trace["node_input"][b, n], a[b, n].repeat(T))  # [a, a, ..., a]


def test_dct_holds_each_node_frames_in_time_order():
    x = torch.randn(B, T, N, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _, trace = run(make(), x)
    d = dct_matrix(T, dtype=torch.float64)
    for b in range(B):
        centroid = x[b].mean(dim=(0, 1))  # over frames and nodes of sample b only
        torch.testing.assert_close(trace["centroid"][b], centroid, rtol=0, atol=1e-14)
        for n in range(N):
            torch.testing.assert_close(trace["dct"][b, n], d @ (x[b, :, n] - centroid), rtol=0, atol=1e-13)


def test_perturbing_one_node_moves_only_its_coefficients_and_its_sample():
    model = make()
    x = torch.randn(B, T, N, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out, trace = run(model, x)
    b0, n0, t0, t1, delta = 1, 3, 2, 4, torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    d = dct_matrix(T, dtype=torch.float64)
    # +delta at frame t0, -delta at frame t1: the centroid stays, so only node n0's coefficients change
    y = x.clone()
    y[b0, t0, n0] += delta
    y[b0, t1, n0] -= delta
    out_y, trace_y = run(model, y)
    change = trace_y["dct"] - trace["dct"]
    torch.testing.assert_close(change[b0, n0], torch.outer(d[:, t0] - d[:, t1], delta), rtol=0, atol=1e-13)
    change[b0, n0] = 0
    assert change.abs().max() < 1e-13
    # one entry alone also moves the centroid by delta / (N T): every other node of that sample
    # sees its zero-frequency coefficient shift by -sqrt(T) delta / (N T), and nothing else
    z = x.clone()
    z[b0, t0, n0] += delta
    _, trace_z = run(model, z)
    change = trace_z["dct"] - trace["dct"]
    dc = torch.zeros(T, dtype=torch.float64)
    dc[0] = -math.sqrt(T) / (N * T)
    torch.testing.assert_close(change[b0, n0], torch.outer(d[:, t0] + dc, delta), rtol=0, atol=1e-13)
    others = [n for n in range(N) if n != n0]
    torch.testing.assert_close(change[b0, others, 0], (dc[0] * delta).expand(N - 1, 3), rtol=0, atol=1e-13)
    assert change[b0, others, 1:].abs().max() < 1e-13
    assert change[[b for b in range(B) if b != b0]].abs().max() == 0
    # samples never mix: the prediction of the other samples is untouched, this one's moves
    rest = [b for b in range(B) if b != b0]
    torch.testing.assert_close(out_y[rest], out[rest], rtol=0, atol=1e-14)
    assert (out_y[b0] - out[b0]).abs().max() > 1e-6


def test_centroid_counted_once_the_output_is_a_displacement():
    model = make()
    x = torch.randn(B, T, N, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out, trace = run(model, x)
    torch.testing.assert_close(out, x[:, -1] + trace["displacement"], rtol=0, atol=1e-14)
    shift = torch.tensor([1e3, -2e3, 5e2], dtype=torch.float64)  # the authors' double count would move it by 2 * shift
    out_s, trace_s = run(model, x + shift)
    torch.testing.assert_close(out_s, out + shift, rtol=0, atol=1e-9)
    torch.testing.assert_close(trace_s["displacement"], trace["displacement"], rtol=0, atol=1e-9)


def test_fully_connected_graph_ignores_dataset_edges():
    model = make()
    x = torch.randn(B, T, N, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    out = model(batch_of(x))
    no_edges = model(batch_of(x, edge_index=torch.zeros(2, 0, dtype=torch.long)))
    torch.testing.assert_close(no_edges, out, rtol=0, atol=0)
    # node 4 has no dataset edge, yet moving node 0 changes the prediction of every node
    y = x.clone()
    y[:, :, 0] += torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64)
    moved = (model(batch_of(y)) - out).abs().amax(dim=-1)  # [B, N]
    assert (moved > 1e-8).all()


def test_defaults_and_categories():
    model = make()
    assert (model.params.hidden, model.params.channels, model.params.layers, model.params.categories) == (16, 32, 2, 2)
    assert model.equivariant and model.layouts == ("single",) and model.target == "position"
    x = torch.randn(B, T, N, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    _, trace = run(model, x)
    p = trace["categories"]
    assert p.shape == (B, N, N, 2)
    torch.testing.assert_close(p.sum(-1), torch.ones(B, N, N, dtype=torch.float64))
    feats = model.invariant_features(batch_of(x))
    assert feats["categories"][0].shape == (B, EDGES.shape[1], 2)
    torch.testing.assert_close(feats["categories"][0][:, 1], p[:, 1, 0])  # edge 1 is 1 <- 0


def test_bad_inputs_name_the_field():
    model = make()
    x = torch.randn(B, T, N, 3, dtype=torch.float64)
    with pytest.raises(GraphdynError, match="T=6"):
        model.run(x[:, :-1], attrs())
    with pytest.raises(GraphdynError, match="node_attr"):
        model.run(x, attrs()[..., :1])
    with pytest.raises(GraphdynError, match="x"):
        model.run(x[..., None], attrs())
    with pytest.raises(GraphdynError, match="channels"):
        build_model("eqmotion", {"channels": 0}, model.info)
