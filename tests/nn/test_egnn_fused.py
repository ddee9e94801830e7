"""Fused EGNN ops (per-edge part, node update): same values and gradients as plain autograd, gradcheck."""

from __future__ import annotations

import pytest
import torch

from graphdyn.nn import egnn_fused, node_update_fused
from graphdyn.nn.egnn import EGNNLayer
from graphdyn.nn.egnn_fused import EdgeConfig, egnn_edges

N, H = 5, 4
# node 4 sends to 0 but receives nothing; node 2 receives from three nodes
EDGES = torch.tensor([[0, 1, 1, 2, 2, 3, 0, 2], [1, 0, 2, 1, 3, 2, 4, 4]])

CONFIGS = [
    dict(act="silu", unit_vectors=True, clamp=100.0, edge=True, node=True),  # ESTAG single-channel
    dict(act="silu", unit_vectors=True, clamp=0.3, edge=False, node=False),  # clamp active on some edges
    dict(act="leaky_relu", channels=4, edge=True, node=True),  # ESTAG multi-channel (AdK)
    dict(act="tanh", edge=False, node=False),
    dict(act="relu", channels=2, update_coords=False, edge=True, node=False),
    dict(act="gelu", coord_agg="sum", message_agg="mean", coord_weight=0.5, edge=True, node=False),
]


def build(cfg, seed=0, B=2, T=3):
    cfg = dict(cfg)
    edge, node = cfg.pop("edge"), cfg.pop("node")
    torch.manual_seed(seed)
    layer = EGNNLayer(H, coord_gain=1.0, edge_attr_dim=3 if edge else 0, node_attr_dim=2 if node else 0, **cfg).double()
    g = torch.Generator().manual_seed(seed + 1)
    C = cfg.get("channels")
    node_shape = (C, 3) if C else (3,)
    h = torch.randn(N, B, T, H, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(N, B, T, *node_shape, generator=g, dtype=torch.float64, requires_grad=True)
    e = torch.randn(EDGES.shape[1], B, 1, 3, generator=g, dtype=torch.float64, requires_grad=True) if edge else None
    a = torch.randn(N, B, 1, 2, generator=g, dtype=torch.float64) if node else None
    return layer, h, x, e, a


def run(layer, h, x, e, a, fused):
    layer.fused = fused
    h1, x1 = layer(h, x, EDGES, e, a, node_dim=0)
    return h1, x1


@pytest.mark.parametrize("store", [False, True], ids=["recompute", "store"])
@pytest.mark.parametrize("chunk_rows", [1, 7, 10_000])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_fused_layer_matches_plain_autograd_values_and_gradients(cfg, chunk_rows, store, monkeypatch):
    monkeypatch.setattr(egnn_fused, "STORE_BYTES", 1 << 40 if store else 0)
    monkeypatch.setattr(egnn_fused, "CHUNK_ROWS", chunk_rows)  # 1 and 7: many chunks, ragged last one
    monkeypatch.setattr(node_update_fused, "CHUNK_ROWS", chunk_rows)
    layer, h, x, e, a = build(cfg)
    g = torch.Generator().manual_seed(9)
    outs = {}
    for fused in (False, True):
        h1, x1 = run(layer, h, x, e, a, fused)
        wh, wx = torch.randn(h1.shape, generator=g, dtype=h1.dtype), torch.randn(x1.shape, generator=g, dtype=x1.dtype)
        g = torch.Generator().manual_seed(9)  # same projection weights both times
        loss = (h1 * wh).sum() + (x1 * wx).sum()
        wrt = [h, x] + ([e] if e is not None else []) + list(layer.parameters())
        grads = torch.autograd.grad(loss, wrt, allow_unused=True)
        outs[fused] = (h1.detach(), x1.detach(), grads)
    (hp, xp, gp), (hf, xf, gf) = outs[False], outs[True]
    torch.testing.assert_close(hf, hp, rtol=0, atol=1e-12)
    torch.testing.assert_close(xf, xp, rtol=0, atol=1e-12)
    names = ["h", "x"] + (["e"] if e is not None else []) + [n for n, _ in layer.named_parameters()]
    for name, a_, b_ in zip(names, gf, gp):
        if b_ is None:
            assert a_ is None or not a_.abs().any(), name
            continue
        torch.testing.assert_close(a_, b_, rtol=1e-10, atol=1e-12, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("cfg", [CONFIGS[0], {**CONFIGS[2], "channels": 2}], ids=["single", "multi"])
def test_gradcheck_float64(cfg, monkeypatch):
    monkeypatch.setattr(egnn_fused, "CHUNK_ROWS", 5)
    layer, h, x, e, _ = build({**cfg, "node": False}, B=1, T=2)
    H_ = H
    lin = layer.message[0]
    R = layer.radial_dim
    hn = torch.randn(N, 1, 2, H_, dtype=torch.float64, requires_grad=True)
    W1 = (0.3 * torch.randn(H_, 2 * H_, dtype=torch.float64)).requires_grad_()
    b1 = torch.randn(H_, dtype=torch.float64, requires_grad=True)
    Q = torch.randn(EDGES.shape[1], 1, 1, H_, dtype=torch.float64, requires_grad=True)
    weights = [lin.weight[:, 2 * H_ : 2 * H_ + R], layer.message[2].weight, layer.message[2].bias,
               layer.coord[0].weight, layer.coord[0].bias, layer.coord[2].weight]
    weights = [w.detach().clone().requires_grad_(True) for w in weights]
    ecfg = EdgeConfig(act=layer.act, channels=layer.channels, unit_vectors=layer.unit_vectors, clamp=layer.clamp, chunk_rows=5)

    def f(hn, W1, b1, x, Q, *w):
        return egnn_edges(hn, W1, b1, x, Q, *w, EDGES, ecfg)

    assert torch.autograd.gradcheck(f, (hn, W1, b1, x.detach().requires_grad_(True), Q, *weights), eps=1e-6, atol=1e-6)


def test_first_layer_input_without_gradient_is_skipped():
    layer, h, _, e, a = build(CONFIGS[0])
    x = torch.randn(N, 2, 3, 3, dtype=torch.float64)  # data: no gradient wanted
    h1, x1 = layer(h, x, EDGES, e, a, node_dim=0)
    (h1.sum() + x1.sum()).backward()
    assert x.grad is None and h.grad is not None and torch.isfinite(h.grad).all()


def test_other_layout_uses_plain_path():
    """Batch-major input (node axis not first) still works and agrees with node-major fused."""
    layer, h, x, e, a = build(CONFIGS[0])
    hf, xf = layer(h, x, EDGES, e, a, node_dim=0)
    hb, xb = layer(h.movedim(0, 2), x.movedim(0, 2), EDGES, e.movedim(0, 2), a.movedim(0, 2))
    torch.testing.assert_close(hb.movedim(2, 0), hf)
    torch.testing.assert_close(xb.movedim(2, 0), xf)


def test_node_update_gradcheck_float64():
    from graphdyn.nn.node_update_fused import node_update

    g = torch.Generator().manual_seed(0)
    h = torch.randn(N, 2, 3, H, generator=g, dtype=torch.float64, requires_grad=True)
    m = torch.randn(N, 2, 3, H, generator=g, dtype=torch.float64, requires_grad=True)
    q = torch.randn(N, 2, 1, H, generator=g, dtype=torch.float64, requires_grad=True)  # broadcast over frames
    w = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True) for s in [(H, H), (H, H), (H,), (H, H), (H,)]]
    cfg = EdgeConfig(act="silu", chunk_rows=12)
    assert torch.autograd.gradcheck(lambda *a: node_update(*a, cfg), (h, m, q, *w), eps=1e-6, atol=1e-6)
