"""EGNN's residual node update as one autograd op, evaluated in cache-sized chunks of nodes.

For every node (node-major tensors, ``...`` batch axes)::

    z  = W_h h + W_g g + q + b1          g: aggregated messages, q: projected extra node inputs
    h' = h + W2 act(z) + b2

``q`` may be broadcast over batch axes (e.g. EDFT amplitudes shared by all frames) or absent.

Backward (``g_o`` the incoming gradient)::

    g_z = act'(z) * (W2^T g_o)
    g_h = g_o + W_h^T g_z,   g_g = W_g^T g_z,   g_q = g_z summed over q's broadcast axes
    weight gradients: outer products summed over nodes

Why: with autograd this is about twenty passes over node-sized tensors, each stored for or
read back in the backward pass; chunked, the forward keeps nothing and the backward recomputes
``z`` while the chunk is in cache.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from graphdyn.nn.egnn_fused import ACTS, EdgeConfig, _act, _act_backward, _colsum, _linear, _rows, _sum_to
from graphdyn.nn.node_update_native import node_update_native

# rows (nodes x batch entries) per chunk
CHUNK_ROWS = 32768


def _chunks(n: int, per: int, rows: int):
    step = max(1, rows // max(1, per))
    for r0 in range(0, n, step):
        yield r0, min(n, r0 + step)


def _pre(h, g, q, Wh, Wg, b1, r0, r1):
    z = _linear(_rows(h[r0:r1]), Wh, b1)
    z.addmm_(_rows(g[r0:r1]), Wg.t())
    z = z.view(h[r0:r1].shape)
    if q is not None:
        z += q if q.shape[0] == 1 else q[r0:r1]
    return z


class _NodeUpdate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, g, q, Wh, Wg, b1, W2, b2, cfg: EdgeConfig):
        out = torch.empty_like(h)
        per = h[0].numel() // h.shape[-1]
        for r0, r1 in _chunks(h.shape[0], per, cfg.chunk_rows):
            a = _act(_pre(h, g, q, Wh, Wg, b1, r0, r1), cfg, inplace=True)
            torch.add(h[r0:r1], _linear(_rows(a), W2, b2).view(a.shape), out=out[r0:r1])
        ctx.save_for_backward(h, g, q, Wh, Wg, b1, W2, b2)
        ctx.cfg = cfg
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gO):
        h, g, q, Wh, Wg, b1, W2, b2 = ctx.saved_tensors
        cfg: EdgeConfig = ctx.cfg
        need = ctx.needs_input_grad
        gO = gO.contiguous()
        gh = torch.empty_like(h)
        gg = torch.empty_like(g) if need[1] else None
        gq = torch.zeros_like(q) if q is not None and need[2] else None
        gWh, gWg, gb1, gW2, gb2 = (torch.zeros_like(t) for t in (Wh, Wg, b1, W2, b2))
        per = h[0].numel() // h.shape[-1]
        for r0, r1 in _chunks(h.shape[0], per, cfg.chunk_rows):
            z = _pre(h, g, q, Wh, Wg, b1, r0, r1)
            a = _act(z, cfg)
            go = _rows(gO[r0:r1])
            gW2.addmm_(go.t(), _rows(a))
            gb2 += _colsum(go)
            gz = _act_backward(go @ W2, _rows(z), cfg)
            gWh.addmm_(gz.t(), _rows(h[r0:r1]))
            gWg.addmm_(gz.t(), _rows(g[r0:r1]))
            gb1 += _colsum(gz)
            torch.addmm(go, gz, Wh, out=_rows(gh[r0:r1]))
            if gg is not None:
                torch.mm(gz, Wg, out=_rows(gg[r0:r1]))
            if gq is not None:
                gzv = gz.view(z.shape)
                if q.shape[0] == 1:
                    gq += _sum_to(gzv, q.shape)
                else:
                    gq[r0:r1] = _sum_to(gzv, (r1 - r0,) + q.shape[1:])
        return gh, gg, gq, gWh, gWg, gb1, gW2, gb2, None


def node_update(h, g, q, Wh, Wg, b1, W2, b2, cfg: EdgeConfig) -> torch.Tensor:
    """``h'`` of the module docstring. Shapes: ``h, g [N, ..., H]``, ``q`` broadcastable to
    ``[N, ..., H]`` with the same number of axes (or None), ``Wh, Wg [H, H]``, ``W2 [H, H]``."""
    if cfg.act not in ACTS:
        raise ValueError(f"unsupported activation {cfg.act!r}")
    h, g, q = h.contiguous(), g.contiguous(), None if q is None else q.contiguous()
    out = node_update_native(h, g, q, Wh, Wg, b1, W2, b2, cfg.act) if cfg.native else None
    return out if out is not None else _NodeUpdate.apply(h, g, q, Wh, Wg, b1, W2, b2, cfg)
