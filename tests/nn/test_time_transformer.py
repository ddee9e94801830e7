"""PreNormTransformerLayer: equal to torch's pre-LN layer when widths divide, any width otherwise,
attention only within a sequence, order-equivariant over tokens (no position inside)."""

from __future__ import annotations

import torch
from torch import nn

from graphdyn.nn.time_transformer import PreNormTransformerLayer


def test_matches_torch_pre_ln_layer_without_projection_biases():
    torch.manual_seed(0)
    d, h, ffn = 12, 6, 32
    ours = PreNormTransformerLayer(d, h, ffn).double()
    ref = nn.TransformerEncoderLayer(d, h, ffn, dropout=0.0, batch_first=True, norm_first=True, layer_norm_eps=1e-6).double()
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(ours.qkv.weight)
        ref.self_attn.in_proj_bias.zero_()
        ref.self_attn.out_proj.weight.copy_(ours.out.weight)
        ref.self_attn.out_proj.bias.zero_()
        ref.linear1.load_state_dict(ours.ffn[0].state_dict())
        ref.linear2.load_state_dict(ours.ffn[2].state_dict())
        for a, b in ((ref.norm1, ours.norm_attn), (ref.norm2, ours.norm_ffn)):
            b.weight.normal_()
            b.bias.normal_()
            a.load_state_dict(b.state_dict())
    ref.eval()
    z = torch.randn(3, 10, d, dtype=torch.float64)
    torch.testing.assert_close(ours(z), ref(z))


def test_width_not_divisible_by_heads():
    torch.manual_seed(0)
    layer = PreNormTransformerLayer(39, 6, 32).double()  # aspirin: 13 nodes x 3
    assert layer.head_dim == 6 and layer.qkv.out_features == 3 * 36 and layer.out.in_features == 36
    z = torch.randn(2, 10, 39, dtype=torch.float64)
    y = layer(z)
    # by hand: 6 heads of width 6, scores scaled by 1/sqrt(6)
    q, k, v = layer.qkv(layer.norm_attn(z)).split(36, -1)
    heads = lambda t: t.unflatten(-1, (6, 6)).transpose(1, 2)  # noqa: E731
    a = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / 6**0.5, -1) @ heads(v)
    z1 = z + layer.out(a.transpose(1, 2).flatten(-2))
    torch.testing.assert_close(y, z1 + layer.ffn(layer.norm_ffn(z1)))
    assert PreNormTransformerLayer(4, 6).head_dim == 1  # narrower than the head count


def test_sequences_stay_apart_and_token_order_only_permutes():
    torch.manual_seed(0)
    layer = PreNormTransformerLayer(15, 6).double()
    z = torch.randn(3, 8, 15, dtype=torch.float64)
    z2 = z.clone()
    z2[1, 4] += 1.0
    changed = (layer(z2) - layer(z)).abs().amax(-1) > 0
    assert changed[1].all() and not changed[[0, 2]].any()
    perm = torch.randperm(8)
    torch.testing.assert_close(layer(z[:, perm]), layer(z)[:, perm])
