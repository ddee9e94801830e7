"""AGL-STAN: shapes in both layouts (any token width), absolute coordinates, and the axes:
frames stay frames (the authors' reshape-not-permute bug is absent), each frame is convolved
alone, attention stays within a sample."""

from __future__ import annotations

import pytest
import torch

from graphdyn.data.windows import Batch
from graphdyn.errors import GraphdynError
from graphdyn.models.aglstan import frames_to_tokens, tokens_to_frames
from graphdyn.models.base import DataInfo
from graphdyn.models.registry import build_model
from graphdyn.nn.node_features import frame_features

B, T = 3, 10
EDGES = torch.tensor([[0, 1], [1, 0]])  # unused by the model: it learns its graph


def make(channels=None, params=None, seed=0, N=5):
    g = torch.Generator().manual_seed(seed)
    node = (N,) + ((channels,) if channels else ()) + (3,)
    batch = Batch(
        x=torch.randn(B, T, *node, generator=g, dtype=torch.float64),
        target_x=torch.randn(B, *node, generator=g, dtype=torch.float64),
        node_attr=torch.randn(B, N, 2, generator=g, dtype=torch.float64),
        edge_index=EDGES,
        dt=1.0,
    )
    info = DataInfo(dim=3, channels=channels, node_attr_dim=2, edge_attr_dim=0, T=T, n_nodes=N, has_velocities=False)
    torch.manual_seed(seed)
    return build_model("aglstan", params or {}, info).double(), batch


@pytest.mark.parametrize("channels,N", [(None, 13), (None, 5), (4, 5)])
def test_shapes_for_any_token_width(channels, N):
    model, batch = make(channels, N=N)  # 13 nodes x 3 = 39: not divisible by 6 heads
    assert model(batch).shape == batch.x[:, -1].shape
    d = N * 3 * (channels or 1)
    assert model.encoders[0].heads == 6 and model.encoders[0].head_dim == d // 6
    assert model.symmetries == () and not model.equivariant


def test_predicts_absolute_coordinates():
    model, batch = make()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(0.25)
    assert torch.equal(model(batch), torch.full_like(batch.x[:, -1], 0.25))  # no x(T-1) added


def test_tokens_are_frames_of_nodes_in_order():
    b, t, n, f = torch.meshgrid(torch.arange(2), torch.arange(T), torch.arange(5), torch.arange(3), indexing="ij")
    h = (10000 * b + 1000 * n + 100 * t + f).double()  # [B, T, N, F] tagged
    z = frames_to_tokens(h)
    assert z.shape == (2, T, 15)
    assert z[1, 7, 3 * 4 + 2].item() == 10000 + 4000 + 700 + 2  # token (b, t) = nodes 0..N-1 of frame t
    assert torch.equal(tokens_to_frames(z, 5), h)


def test_tagged_inputs_reach_the_layers_in_place():
    model, batch = make(4)
    seen = {}
    model.gconvs[0].register_forward_pre_hook(lambda m, args: seen.__setitem__("u", args[0].clone()))
    model.gconvs[0].register_forward_hook(lambda m, args, out: seen.__setitem__("h", out.detach().clone()))
    model.encoders[0].register_forward_pre_hook(lambda m, args: seen.__setitem__("z", args[0].detach().clone()))
    model(batch)
    assert torch.equal(seen["u"], frame_features(batch.x, batch.node_attr))  # [B, T, N, A + C*D]
    # the first encoder sees token (b, t) = frame t's node features in node order, plus PE(t)
    for b, t in ((0, 0), (2, 9), (1, 4)):
        torch.testing.assert_close(seen["z"][b, t] - model.pos_enc[t], seen["h"][b, t].flatten())


@pytest.mark.parametrize("t", [0, 6])
def test_one_node_frame_and_sample_changes_only_what_it_may(t):
    model, batch = make(seed=1)
    model.eval()
    b, n = 1, 2
    x2 = batch.x.clone()
    x2[b, t, n] += 0.5
    runs = []
    for x in (batch.x, x2):
        seen = {}
        hooks = [
            model.gconvs[0].register_forward_hook(lambda m, a, out, s=seen: s.__setitem__("gc", out.detach().clone())),
            model.encoders[0].register_forward_hook(lambda m, a, out, s=seen: s.__setitem__("enc", out.detach().clone())),
        ]
        seen["y"] = model(Batch(**{**batch.__dict__, "x": x}))
        for h in hooks:
            h.remove()
        runs.append(seen)
    diff = {k: (runs[1][k] - runs[0][k]).abs() for k in runs[0]}
    # per-frame graph conv [B, T, N, F]: frame t of sample b only (the learned graph is dense)
    expect = torch.zeros(B, T, dtype=torch.bool)
    expect[b, t] = True
    assert torch.equal(diff["gc"].amax((-1, -2)) > 0, expect)
    # attention over time [B, T, N*F]: every frame of sample b, no other sample
    assert (diff["enc"][b].amax(-1) > 0).all()
    assert diff["enc"][[0, 2]].max() == 0
    # prediction: sample b only
    changed = diff["y"].amax((-1)) > 0
    assert changed[b].any() and not changed[[0, 2]].any()


def test_fixed_graph_size_and_odd_kernel():
    model, batch = make()
    with pytest.raises(GraphdynError, match="n_nodes"):
        model(Batch(**{**batch.__dict__, "x": batch.x[:, :, :4], "node_attr": batch.node_attr[:, :4]}))
    with pytest.raises(GraphdynError, match="kernel"):
        make(params={"kernel": 4})
