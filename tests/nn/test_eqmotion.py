"""EqMotion layers: agreement with the equations written one pair at a time, the distances'
gradient, E(3) equivariance of G with invariant h and categories, node relabelling."""

from __future__ import annotations

import torch

from graphdyn.nn.eqmotion import EqMotionLayer, InteractionReasoning, pair_distances, sum_over_senders

B, N, C, H, K = 2, 4, 3, 5, 2


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, H, generator=g, dtype=torch.float64), torch.randn(B, N, C, 3, generator=g, dtype=torch.float64)


def modules(seed=0):
    torch.manual_seed(seed)
    return InteractionReasoning(H, C, K).double(), EqMotionLayer(H, C, K).double()


def pair_net(net, hi, hj, e):
    """A PairMLP evaluated the plain way: its one Linear on the concatenation, then the rest."""
    return net.rest(net.first.linear(torch.cat([hi, hj, e])))


def reference_reasoning(r, h, g):
    p = torch.zeros(B, N, N, K, dtype=torch.float64)
    for b in range(B):
        d = {(i, j): r.dist((g[b, i] - g[b, j]).norm(dim=-1)) for i in range(N) for j in range(N)}
        h2 = []
        for i in range(N):
            agg = sum(pair_net(r.edge, h[b, i], h[b, j], d[i, j]) for j in range(N) if j != i)
            h2.append(r.node(torch.cat([h[b, i], agg])))
        for i in range(N):
            for j in range(N):
                p[b, i, j] = torch.softmax(pair_net(r.category, h2[i], h2[j], d[i, j]) / r.tau, -1)
    return p


def reference_layer(layer, h, g, p):
    h_out, g_out = torch.zeros_like(h), torch.zeros_like(g)
    for b in range(B):
        centre = g[b].mean(dim=(0, 1))
        g_mid = []
        for i in range(N):
            gi = g[b, i] + layer.attention(h[b, i])[:, None] * (g[b, i] - centre)
            msg = torch.zeros(H, dtype=torch.float64)
            for j in range(N):
                if j == i:
                    continue
                d = (g[b, i] - g[b, j]).norm(dim=-1)  # [C]
                msg = msg + pair_net(layer.message, h[b, i], h[b, j], d)
                mixed = sum(p[b, i, j, k] * pair_net(layer.category[k], h[b, i], h[b, j], d) for k in range(K))
                gi = gi + layer.factor(mixed)[:, None] * (g[b, i] - g[b, j])  # receiver i minus sender j
            g_mid.append(gi)
            h_out[b, i] = h[b, i] + layer.node(torch.cat([h[b, i], msg]))
        g_mid = torch.stack(g_mid)  # [N, C, 3]
        centre = g_mid.mean(dim=(0, 1))
        for i in range(N):
            for c in range(C):
                q = sum(layer.query.weight[c, c2] * (g_mid[i, c2] - centre) for c2 in range(C))
                k = sum(layer.key.weight[c, c2] * (g_mid[i, c2] - centre) for c2 in range(C))
                if q @ k < 0:
                    q = q - (q @ k) / (k @ k + layer.eps) * k
                g_out[b, i, c] = centre + q
    return h_out, g_out


def test_reasoning_matches_the_equations_pair_by_pair():
    reasoning, _ = modules()
    h, g = data()
    p = reasoning(h, g)
    assert p.shape == (B, N, N, K)
    torch.testing.assert_close(p.sum(-1), torch.ones(B, N, N, dtype=torch.float64))
    torch.testing.assert_close(p, reference_reasoning(reasoning, h, g), rtol=1e-12, atol=1e-12)


def test_layer_matches_the_equations_pair_by_pair():
    reasoning, layer = modules()
    with torch.no_grad():  # larger coordinate updates than the default init gives, so every term shows
        for prm in layer.factor.parameters():
            prm.mul_(3.0)
    seen = {}
    nonlinearity = layer._nonlinearity

    def spy(x):
        seen["g"] = x
        return nonlinearity(x)

    layer._nonlinearity = spy
    h, g = data()
    p = reasoning(h, g)
    h_out, g_out = layer(h, g, p)
    h_ref, g_ref = reference_layer(layer, h, g, p)
    torch.testing.assert_close(h_out, h_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_out, g_ref, rtol=1e-12, atol=1e-12)
    assert (g_out - g).abs().max() > 1e-2 and (h_out - h).abs().max() > 1e-2
    # both branches of the non-linearity (q kept; q loses its part along k) occur in this draw
    centred = seen["g"] - seen["g"].mean(dim=(1, 2), keepdim=True)
    sign = ((layer.query.weight @ centred) * (layer.key.weight @ centred)).sum(-1)
    assert (sign < 0).any() and (sign >= 0).any()


def test_pair_distances_values_and_gradient():
    _, g = data()
    d = pair_distances(g)
    torch.testing.assert_close(d, (g[:, :, None] - g[:, None]).norm(dim=-1), rtol=0, atol=1e-14)
    g = g[:, :, :2].clone().requires_grad_()
    assert torch.autograd.gradcheck(pair_distances, (g,))


def test_coincident_agents_get_a_finite_gradient():
    _, g = data()
    g = g.clone()
    g[:, 1] = g[:, 0]  # two agents with the same vectors: a zero off-diagonal distance
    g.requires_grad_()
    reasoning, layer = modules()
    h, _ = data(1)
    out = layer(h, g, reasoning(h, g))[1].square().sum()
    out.backward()
    assert torch.isfinite(g.grad).all()


def test_sum_over_senders_leaves_out_the_receiver():
    e = torch.randn(B, N, N, 3, dtype=torch.float64)
    ref = torch.stack([torch.stack([sum(e[b, i, j] for j in range(N) if j != i) for i in range(N)]) for b in range(B)])
    torch.testing.assert_close(sum_over_senders(e), ref, rtol=0, atol=1e-14)


def random_orthogonal(seed):
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q if torch.det(q) < 0 else -q  # a reflection, so both E(3) parts are exercised


def test_e3_equivariant_geometric_and_invariant_pattern_features():
    reasoning, layer = modules()
    h, g = data()
    rot, shift = random_orthogonal(3), torch.tensor([5.0, -2.0, 7.0], dtype=torch.float64)
    p = reasoning(h, g)
    h_out, g_out = layer(h, g, p)
    g2 = g @ rot.T + shift  # the same rotation and shift on every channel of every agent
    p2 = reasoning(h, g2)
    h2, g2_out = layer(h, g2, p2)
    torch.testing.assert_close(p2, p, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h2, h_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g2_out, g_out @ rot.T + shift, rtol=1e-10, atol=1e-10)


def test_relabelling_agents_relabels_the_outputs():
    reasoning, layer = modules()
    h, g = data()
    perm = torch.tensor([2, 0, 3, 1])
    p = reasoning(h, g)
    h_out, g_out = layer(h, g, p)
    p2 = reasoning(h[:, perm], g[:, perm])
    torch.testing.assert_close(p2, p[:, perm][:, :, perm], rtol=1e-12, atol=1e-12)
    h2, g2 = layer(h[:, perm], g[:, perm], p2)
    torch.testing.assert_close(h2, h_out[:, perm], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g2, g_out[:, perm], rtol=1e-12, atol=1e-12)
