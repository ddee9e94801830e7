"""ESTAG's temporal attention (ETM) as one autograd op, evaluated in cache-sized chunks of nodes.

Per node (``R`` independent node-graph rows, ``T`` frames; math of
:mod:`graphdyn.nn.temporal_attention`)::

    [q|k|v](t) = act(W2 act(W1 h(t) + b1) + b2)      W1 = [Wq1; Wk1; Wv1] (3H x H),
                                                    W2 = blockdiag(Wq2, Wk2, Wv2) (3H x 3H)
    S(t, s)    = q(t) . k(s)   (+ -inf for s > t when causal)
    alpha      = softmax_s(S)
    h'(t)      = h(t) + sum_s alpha(t, s) v(s)
    phi(s)     = Wc2 act(Wc1 v(s) + bc1)                              [1] or [C]
    y(t)       = x(t) - x(T-1)                    (shift-free: only differences enter)
    beta(t, s) = alpha(t, s) phi(s)               (per channel when multi-channel)
    delta(t)   = sum_s beta(t, s) y(s) - y(t) sum_s beta(t, s)
    x'(t)      = x(t) + sign * delta(t)

The forward pass saves only its inputs; the backward pass recomputes each chunk and applies::

    g_beta  = g_delta y^T - <g_delta(t), y(t)>          g_y = beta^T g_delta - g_delta rowsum(beta)
    g_alpha = g_beta * phi(s) + g_h' v^T                g_phi(s) = sum_t g_beta(t, s) alpha(t, s)
    g_v     = alpha^T g_h' + (coordinate MLP backward)
    g_S     = alpha * (g_alpha - rowsum(g_alpha * alpha))
    g_q = g_S k,  g_k = g_S^T q,  then the two MLP layers; g_x = g_x' + g_y - [t = T-1] sum_t g_y

Why: with autograd every one of these steps stores a node-sized tensor and the backward pass
makes about twice as many passes again; chunked, the work stays in cache and peak memory
does not grow with the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

from graphdyn.nn.attention_native import temporal_attention_native
from graphdyn.nn.egnn_fused import ACTS, EdgeConfig, _act, _act_backward, _colsum, _linear, _rows

# rows (nodes x frames) per chunk
CHUNK_ROWS = 16384
# below this many bytes of intermediates (about sixteen [rows, H] tensors) they are kept for
# the backward pass instead of recomputed
STORE_BYTES = 48 << 20


@dataclass(frozen=True)
class AttentionConfig:
    """Static options of :func:`temporal_attention`."""

    act: str = "silu"
    slope: float = 0.2
    channels: int | None = None
    causal: bool = True
    sign: int = 1
    chunk_rows: int = CHUNK_ROWS
    store_bytes: int = STORE_BYTES
    native: bool = True  # the C kernel of graphdyn.nn.attention_native where it applies

    @property
    def edge(self) -> EdgeConfig:  # carries act and slope for the shared activation helpers
        return EdgeConfig(act=self.act, slope=self.slope)


def _mask(T: int, like: torch.Tensor) -> torch.Tensor:
    upper = torch.ones(T, T, dtype=torch.bool, device=like.device).triu_(1)
    return torch.zeros(T, T, dtype=like.dtype, device=like.device).masked_fill_(upper, float("-inf"))


class _Chunk:
    """Forward values of one chunk of node rows."""

    def __init__(self, h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, mask, cfg: AttentionConfig, keep: bool):
        ecfg = cfg.edge
        R, T, H = h.shape
        self.Z1 = Z1 = _linear(_rows(h), W1, b1)  # [R*T, 3H]
        self.A1 = A1 = _act(Z1, ecfg, inplace=not keep)
        self.Z2 = Z2 = _linear(A1, W2, b2)
        self.A2 = A2 = _act(Z2, ecfg, inplace=not keep)
        q = A2[:, :H].view(R, T, H)
        self.k = k = A2[:, H : 2 * H].view(R, T, H)
        self.v = v = A2[:, 2 * H :].view(R, T, H)
        self.q = q
        scores = torch.bmm(q, k.transpose(1, 2))  # [R, T, S]
        if mask is not None:
            scores = scores + mask
        # softmax over s written out (PyTorch's kernel is slow on an axis this short); the max
        # is a constant shift, so it gets no gradient
        e = (scores - scores.amax(-1, keepdim=True)).exp_()
        self.alpha = alpha = e.div_(e.sum(-1, keepdim=True))
        self.Zc = Zc = _linear(_rows(v), Wc1, bc1)
        self.Ac = Ac = _act(Zc, ecfg, inplace=not keep)
        self.phi = phi = (Ac @ Wc2.t()).view(R, T, Wc2.shape[0])  # [R, S, 1 | C]
        self.y = y = x - x[:, -1:]
        if cfg.channels is None:
            self.beta = beta = alpha * phi.transpose(1, 2)  # [R, T, S]
            self.delta = torch.baddbmm(y * beta.sum(-1, keepdim=True), beta, y, beta=-1)
        else:
            self.beta = beta = alpha.unsqueeze(1) * phi.transpose(1, 2).unsqueeze(-2)  # [R, C, T, S]
            self.yc = yc = y.movedim(-2, 1)  # [R, C, T, D]
            self.delta = (beta @ yc - yc * beta.sum(-1, keepdim=True)).movedim(1, -2)  # [R, T, C, D]


def _chunks(n: int, per: int, rows: int):
    step = max(1, rows // max(1, per))
    for r0 in range(0, n, step):
        yield r0, min(n, r0 + step)


class _TemporalAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, cfg: AttentionConfig):
        R, T, H = h.shape
        mask = _mask(T, h) if cfg.causal else None
        h_out, x_out = torch.empty_like(h), torch.empty_like(x)
        store = h.numel() * h.element_size() * 16 <= cfg.store_bytes
        ctx.chunks = [] if store else None
        for r0, r1 in _chunks(R, T, cfg.chunk_rows):
            hc, xc = h[r0:r1], x[r0:r1]
            c = _Chunk(hc, xc, W1, b1, W2, b2, Wc1, bc1, Wc2, mask, cfg, keep=store)
            if store:
                ctx.chunks.append(c)
            torch.baddbmm(hc, c.alpha, c.v, out=h_out[r0:r1])
            torch.add(xc, c.delta, alpha=cfg.sign, out=x_out[r0:r1])
        ctx.save_for_backward(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2)
        ctx.cfg = cfg
        return h_out, x_out

    @staticmethod
    @once_differentiable
    def backward(ctx, gH, gX):
        h, x, W1, b1, W2, b2, Wc1, bc1, Wc2 = ctx.saved_tensors
        cfg: AttentionConfig = ctx.cfg
        ecfg = cfg.edge
        need = ctx.needs_input_grad
        R, T, H = h.shape
        gH, gX = gH.contiguous(), gX.contiguous()
        mask = _mask(T, h) if cfg.causal else None
        gh = torch.empty_like(h)
        gx = torch.empty_like(x) if need[1] else None
        gW1, gb1, gW2, gb2 = (torch.zeros_like(t) for t in (W1, b1, W2, b2))
        gWc1, gbc1, gWc2 = (torch.zeros_like(t) for t in (Wc1, bc1, Wc2))
        single = cfg.channels is None
        stored, ctx.chunks = ctx.chunks, None
        for k, (r0, r1) in enumerate(_chunks(R, T, cfg.chunk_rows)):
            if stored is not None:
                c, stored[k] = stored[k], None  # free each chunk once used
            else:
                c = _Chunk(h[r0:r1], x[r0:r1], W1, b1, W2, b2, Wc1, bc1, Wc2, mask, cfg, keep=True)
            gHc = gH[r0:r1]
            g_delta = gX[r0:r1] if cfg.sign > 0 else -gX[r0:r1]
            alpha, beta, y = c.alpha, c.beta, c.y
            if single:
                g_beta = torch.bmm(g_delta, y.transpose(1, 2)) - (g_delta * y).sum(-1, keepdim=True)  # [R, T, S]
                g_y = torch.baddbmm(g_delta * beta.sum(-1, keepdim=True), beta.transpose(1, 2), g_delta, beta=-1)
                g_alpha = g_beta * c.phi.transpose(1, 2)
                g_phi = (g_beta * alpha).sum(1).unsqueeze(-1)  # [R, S, 1]
            else:
                gdc = g_delta.movedim(-2, 1)  # [R, C, T, D]
                yc = c.yc
                g_beta = gdc @ yc.transpose(-1, -2) - (gdc * yc).sum(-1, keepdim=True)  # [R, C, T, S]
                g_y = (beta.transpose(-1, -2) @ gdc - gdc * beta.sum(-1, keepdim=True)).movedim(1, -2)
                g_alpha = (g_beta * c.phi.transpose(1, 2).unsqueeze(-2)).sum(1)
                g_phi = (g_beta * alpha.unsqueeze(1)).sum(-2).transpose(1, 2)  # [R, S, C]
            if gx is not None:
                gxc = gx[r0:r1]
                torch.add(gX[r0:r1], g_y, out=gxc)
                gxc[:, -1] -= g_y.sum(1)
            g_alpha.baddbmm_(gHc, c.v.transpose(1, 2))
            g_S = alpha * (g_alpha - (g_alpha * alpha).sum(-1, keepdim=True))
            # coordinate MLP on v
            gp = _rows(g_phi)
            gWc2.addmm_(gp.t(), c.Ac)
            g_Zc = _act_backward(gp * Wc2[0] if Wc2.shape[0] == 1 else gp @ Wc2, c.Zc, ecfg)
            gWc1.addmm_(g_Zc.t(), _rows(c.v))
            gbc1 += _colsum(g_Zc)
            g_v = torch.baddbmm((g_Zc @ Wc1).view(c.v.shape), alpha.transpose(1, 2), gHc)
            g_A2 = torch.cat([torch.bmm(g_S, c.k), torch.bmm(g_S.transpose(1, 2), c.q), g_v], -1)
            g_Z2 = _act_backward(_rows(g_A2), c.Z2, ecfg)
            gW2.addmm_(g_Z2.t(), c.A1)
            gb2 += _colsum(g_Z2)
            g_Z1 = _act_backward(g_Z2 @ W2, c.Z1, ecfg)
            gW1.addmm_(g_Z1.t(), _rows(h[r0:r1]))
            gb1 += _colsum(g_Z1)
            torch.addmm(_rows(gHc), g_Z1, W1, out=_rows(gh[r0:r1]))
        return gh, gx, gW1, gb1, gW2, gb2, gWc1, gbc1, gWc2, None


def temporal_attention(h, x, W1, b1, W2, b2, Wc1, bc1, Wc2, cfg: AttentionConfig):
    """``(h', x')`` of the module docstring for ``h [..., T, H]``, ``x [..., T, (C,) D]``.

    ``W1 [3H, H]``, ``b1 [3H]``: the stacked first layers of the query, key and value MLPs;
    ``W2 [3H, 3H]`` (block diagonal), ``b2 [3H]``: their second layers; ``Wc1 [H, H]``,
    ``bc1 [H]``, ``Wc2 [1 | C, H]``: the coordinate MLP on v.
    """
    if cfg.act not in ACTS:
        raise ValueError(f"unsupported activation {cfg.act!r}")
    T, H = h.shape[-2], h.shape[-1]
    lead = h.shape[:-2]
    tail = x.shape[h.dim() - 2 :]  # [T, (C,) D]
    h3 = h.reshape(-1, T, H).contiguous()
    x3 = x.reshape((-1,) + tuple(tail)).contiguous()
    out = temporal_attention_native(h3, x3, W1, b1, W2, b2, Wc1, bc1, Wc2, cfg) if cfg.native else None
    h_out, x_out = out if out is not None else _TemporalAttention.apply(h3, x3, W1, b1, W2, b2, Wc1, bc1, Wc2, cfg)
    return h_out.view(lead + (T, H)), x_out.view(lead + tuple(tail))
