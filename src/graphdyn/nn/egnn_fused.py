"""The per-edge part of an EGNN layer as one autograd op, evaluated in cache-sized edge chunks.

For every directed edge e = (i <- j) and every batch entry (node-major tensors, edges first)::

    d_e   = x_i - x_j                                     [D] or [C, D]
    r_e   = ||d_e||^2                                     single-channel (R = 1)
          | vec(d_e d_e^T) / max(||d_e d_e^T||, 1e-12)     multi-channel (R = C*C)
    z1_e  = P_i + S_j + W_r r_e + q_e                     P = W_i h + b1, S = W_j h (node level)
    m_e   = act(W2 act(z1_e) + b2)                        message
    phi_e = Wc2 act(Wc1 m_e + bc1)                        [1] or [C]
    t_e   = clamp(u_e phi_e, -c, c)                       single-channel, u = d or d / ||d||
          | clamp(diag(phi_e) d_e, -c, c)                 multi-channel
    out:  M_n = sum_{e: i_e = n} m_e,   X_n = sum_{e: i_e = n} t_e

``q_e`` (the edge-attribute projection) is optional and may be broadcast over batch axes.

Why a custom op: written with autograd, every step above is a pass over an ``[E, ..., H]``
tensor that is stored for the backward pass, which then makes about as many passes again,
each through main memory. Here the forward pass keeps nothing edge-sized: it runs chunk by
chunk over the edge list (each chunk fits in the core's cache) and saves only its node-level
inputs; the backward pass recomputes each chunk's forward values and applies the hand-derived
gradients below while they are still in cache. Same arithmetic, a fraction of the memory
traffic and of the peak memory.

Backward, per edge (``act'`` evaluated at the saved pre-activation; ``g`` = incoming gradient)::

    g_t    = G_X[i]                     (masked where |u phi| > c)
    g_phi  = <g_t, u>  |  <g_t, d> per channel
    g_z3   = act'(z3) * (Wc2^T g_phi)
    g_m    = G_M[i] + Wc1^T g_z3
    g_z2   = act'(z2) * g_m
    g_z1   = act'(z1) * (W2^T g_z2)     -> P (index_add at i), S (at j), q (sum over broadcast axes)
    g_d    = 2 d (W_r^T g_z1) + (g_u - u <u, g_u>) / ||d||    (unit vectors; g_u = g_t phi)
           | (g_G + g_G^T) d + diag(phi) g_t,  g_G from the normalised Gram (multi-channel)
    g_x    = index_add(g_d at i) - index_add(g_d at j)

Weight gradients are sums over edges of outer products, accumulated chunk by chunk. First-order
only: a double backward raises (use the layer's ``fused=False`` for higher derivatives).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable
import torch.nn.functional as F

from graphdyn.nn.egnn_native import egnn_edges_native

# rows (edges x batch entries) per chunk: eight [rows, 16] float32 tensors of this size fit in
# a 2 MiB L2 cache with room to spare
CHUNK_ROWS = 32768
# below this many bytes of edge-sized intermediates (about eight [rows, H] tensors) the forward
# pass keeps them for the backward pass instead of recomputing: small graphs fit in cache anyway
STORE_BYTES = 48 << 20

ACTS = ("silu", "leaky_relu", "relu", "tanh", "gelu")


@dataclass(frozen=True)
class EdgeConfig:
    """Static options of :func:`egnn_edges`."""

    act: str = "silu"
    slope: float = 0.2  # leaky_relu only
    channels: int | None = None
    unit_vectors: bool = False
    clamp: float | None = None
    update_coords: bool = True
    chunk_rows: int = CHUNK_ROWS
    store_bytes: int = STORE_BYTES
    native: bool = True  # the C kernels of graphdyn.nn.egnn_native (single-channel edges) and node_update_native


def _act(z: torch.Tensor, cfg: EdgeConfig, inplace: bool = False) -> torch.Tensor:
    if cfg.act == "silu":
        return F.silu(z, inplace=inplace)
    if cfg.act == "leaky_relu":
        return F.leaky_relu(z, cfg.slope, inplace=inplace)
    if cfg.act == "relu":
        return F.relu(z, inplace=inplace)
    if cfg.act == "tanh":
        return z.tanh_() if inplace else z.tanh()
    return F.gelu(z)


def _act_backward(g: torch.Tensor, z: torch.Tensor, cfg: EdgeConfig) -> torch.Tensor:
    """g * act'(z), with PyTorch's own fused backward kernels."""
    if cfg.act == "silu":
        return torch.ops.aten.silu_backward(g, z)
    if cfg.act == "leaky_relu":
        return torch.ops.aten.leaky_relu_backward(g, z, cfg.slope, False)
    if cfg.act == "relu":
        return torch.ops.aten.threshold_backward(g, z, 0)
    if cfg.act == "tanh":
        return torch.ops.aten.tanh_backward(g, z.tanh())
    return torch.ops.aten.gelu_backward(g, z)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """View ``[..., F]`` as ``[rows, F]``."""
    return t.reshape(-1, t.shape[-1])


def _linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x W^T + b for ``x [rows, in]``: a plain GEMM then an in-place bias add is faster on CPU
    than ``addmm`` with a broadcast bias for these skinny shapes."""
    return (x @ W.t()).add_(b)


def _colsum(g: torch.Tensor) -> torch.Tensor:
    """Column sums of ``g [rows, F]`` as a GEMV (multi-threaded, unlike ``sum(0)``)."""
    return g.t() @ g.new_ones(g.shape[0])


def _sum_to(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum ``g`` over the axes that ``shape`` broadcasts (the gradient of a broadcast)."""
    lead = g.dim() - len(shape)
    dims = list(range(lead)) + [lead + k for k, n in enumerate(shape) if n == 1 and g.shape[lead + k] != 1]
    return g.sum(dims, keepdim=True).reshape(shape) if dims else g


class _Chunk:
    """Forward values of one edge chunk (recomputed in the backward pass)."""

    def __init__(self, P, S, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, i, j, e0, e1, cfg: EdgeConfig, keep: bool):
        H = P.shape[-1]
        self.d = d = x.index_select(0, i) - x.index_select(0, j)  # [ec, ..., (C,) D]
        z1 = P.index_select(0, i)
        z1 += S.index_select(0, j)
        if cfg.channels is None:
            self.r = r = (d * d).sum(-1, keepdim=True)  # [ec, ..., 1]
            z1.addcmul_(r, Wr[:, 0])
        else:
            gram = (d @ d.transpose(-1, -2)).flatten(-2)  # [ec, ..., C*C]
            self.gnorm = gnorm = gram.norm(dim=-1, keepdim=True)
            self.r = r = gram / gnorm.clamp_min(1e-12)
            _rows(z1).addmm_(_rows(r), Wr.t())
        if Q is not None:
            z1 += Q if Q.shape[0] == 1 else Q[e0:e1]
        # the forward pass needs no pre-activations: activations then run in place
        self.z1 = z1
        self.a1 = a1 = _act(z1, cfg, inplace=not keep)
        self.z2 = z2 = _linear(_rows(a1), W2, b2).view(z1.shape[:-1] + (H,))
        self.m = m = _act(z2, cfg, inplace=not keep)
        if not cfg.update_coords:
            return
        self.z3 = z3 = _linear(_rows(m), Wc1, bc1).view(m.shape)
        self.a3 = a3 = _act(z3, cfg, inplace=not keep)
        phi = (_rows(a3) @ Wc2.t()).view(m.shape[:-1] + (Wc2.shape[0],))  # [ec, ..., 1 | C]
        self.phi = phi
        if cfg.channels is None:
            if cfg.unit_vectors:
                self.n = n = r.sqrt()
                self.u = u = d / n
            else:
                self.u = u = d
            t = u * phi
        else:
            t = d * phi.unsqueeze(-1)
        if cfg.clamp is not None:
            self.keep_mask = t.abs() <= cfg.clamp if keep else None
            t = t.clamp_(-cfg.clamp, cfg.clamp)
        self.t = t


def _chunks(n_edges: int, rows_per_edge: int, cfg: EdgeConfig):
    step = max(1, cfg.chunk_rows // max(1, rows_per_edge))
    for e0 in range(0, n_edges, step):
        yield e0, min(n_edges, e0 + step)


class _EGNNEdges(torch.autograd.Function):
    @staticmethod
    def forward(ctx, P, S, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, i, j, cfg: EdgeConfig):
        N = P.shape[0]
        per_edge = P[0].numel() // P.shape[-1]
        agg_m = P.new_zeros(P.shape)
        agg_t = x.new_zeros(x.shape) if cfg.update_coords else x.new_zeros(0)
        store = i.numel() * per_edge * P.shape[-1] * P.element_size() * 8 <= cfg.store_bytes
        ctx.chunks = [] if store else None
        for e0, e1 in _chunks(i.numel(), per_edge, cfg):
            ic, jc = i[e0:e1], j[e0:e1]
            c = _Chunk(P, S, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, ic, jc, e0, e1, cfg, keep=store)
            agg_m.index_add_(0, ic, c.m)
            if cfg.update_coords:
                agg_t.index_add_(0, ic, c.t)
            if store:
                ctx.chunks.append(c)
        ctx.save_for_backward(P, S, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, i, j)
        ctx.cfg = cfg
        ctx.n_nodes = N
        if not cfg.update_coords:
            ctx.mark_non_differentiable(agg_t)
        return agg_m, agg_t

    @staticmethod
    @once_differentiable
    def backward(ctx, G_m, G_t):
        P, S, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, i, j = ctx.saved_tensors
        cfg: EdgeConfig = ctx.cfg
        need = ctx.needs_input_grad
        H = P.shape[-1]
        per_edge = P[0].numel() // H
        G_m = G_m.contiguous()
        coords = cfg.update_coords
        if coords:
            G_t = G_t.contiguous()
        gP = torch.zeros_like(P) if need[0] else None
        gS = torch.zeros_like(S) if need[1] else None
        gx = torch.zeros_like(x) if need[2] else None
        gQ = torch.zeros_like(Q) if Q is not None and need[3] else None
        gWr, gW2, gb2 = torch.zeros_like(Wr), torch.zeros_like(W2), torch.zeros_like(b2)
        if coords:
            gWc1, gbc1, gWc2 = torch.zeros_like(Wc1), torch.zeros_like(bc1), torch.zeros_like(Wc2)
        else:
            gWc1 = gbc1 = gWc2 = None
        single = cfg.channels is None
        stored, ctx.chunks = ctx.chunks, None
        for k, (e0, e1) in enumerate(_chunks(i.numel(), per_edge, cfg)):
            ic, jc = i[e0:e1], j[e0:e1]
            if stored is not None:
                c, stored[k] = stored[k], None  # free each chunk once used
            else:
                c = _Chunk(P, S, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, ic, jc, e0, e1, cfg, keep=True)
            g_m = G_m.index_select(0, ic)  # [ec, ..., H]
            g_d = None
            if coords:
                g_t = G_t.index_select(0, ic)
                if cfg.clamp is not None:
                    g_t = g_t * c.keep_mask
                if single:
                    g_phi = (g_t * c.u).sum(-1, keepdim=True)  # [ec, ..., 1]
                else:
                    g_phi = (g_t * c.d).sum(-1)  # [ec, ..., C]
                gp = _rows(g_phi)
                gWc2.addmm_(gp.t(), _rows(c.a3))
                g_a3 = gp * Wc2[0] if Wc2.shape[0] == 1 else gp @ Wc2  # outer product when one output
                g_z3 = _act_backward(g_a3.view(c.z3.shape), c.z3, cfg)
                gz3 = _rows(g_z3)
                gWc1.addmm_(gz3.t(), _rows(c.m))
                gbc1 += _colsum(gz3)
                _rows(g_m).addmm_(gz3, Wc1)
                if gx is not None:
                    if single:
                        g_u = g_t * c.phi
                        if cfg.unit_vectors:
                            g_d = (g_u - c.u * (c.u * g_u).sum(-1, keepdim=True)) / c.n
                        else:
                            g_d = g_u
                    else:
                        g_d = g_t * c.phi.unsqueeze(-1)
            g_z2 = _act_backward(g_m, c.z2, cfg)
            gz2 = _rows(g_z2)
            gW2.addmm_(gz2.t(), _rows(c.a1))
            gb2 += _colsum(gz2)
            g_z1 = _act_backward((gz2 @ W2).view(c.z1.shape), c.z1, cfg)
            gz1 = _rows(g_z1)
            gWr.addmm_(gz1.t(), _rows(c.r))
            if gP is not None:
                gP.index_add_(0, ic, g_z1)
            if gS is not None:
                gS.index_add_(0, jc, g_z1)
            if gQ is not None:
                if Q.shape[0] == 1:
                    gQ += _sum_to(g_z1, Q.shape)
                else:
                    gQ[e0:e1] = _sum_to(g_z1, (e1 - e0,) + Q.shape[1:])
            if gx is not None:
                g_r = (gz1 @ Wr).view(c.r.shape)  # [ec, ..., R]
                if single:
                    g_rad = 2.0 * c.d * g_r
                else:
                    # radial = G / max(|G|, eps): dG = (g - mask * radial <radial, g>) / max(|G|, eps)
                    live = (c.gnorm >= 1e-12).to(g_r.dtype)
                    g_G = (g_r - c.r * (live * (c.r * g_r).sum(-1, keepdim=True))) / c.gnorm.clamp_min(1e-12)
                    C = cfg.channels
                    g_G = g_G.unflatten(-1, (C, C))
                    g_rad = (g_G + g_G.transpose(-1, -2)) @ c.d
                g_d = g_rad if g_d is None else g_d + g_rad
                gx.index_add_(0, ic, g_d)
                gx.index_add_(0, jc, g_d, alpha=-1)
        return gP, gS, gx, gQ, gWr, gW2, gb2, gWc1, gbc1, gWc2, None, None, None


def egnn_edges(
    h: torch.Tensor,
    W1: torch.Tensor,
    b1: torch.Tensor,
    x: torch.Tensor,
    Q: torch.Tensor | None,
    Wr: torch.Tensor,
    W2: torch.Tensor,
    b2: torch.Tensor,
    Wc1: torch.Tensor | None,
    bc1: torch.Tensor | None,
    Wc2: torch.Tensor | None,
    edge_index: torch.Tensor,
    cfg: EdgeConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Aggregated messages and coordinate updates of every node; math in the module docstring.

    Shapes (node-major; ``...`` batch axes shared by all inputs, e.g. ``B, T``)::

        h     [N, ..., H]       node features; P = W1[:, :H] h + b1, S = W1[:, H:] h
        W1    [H, 2H]  b1 [H]   the first message Linear's receiver and sender blocks, its bias
        x     [N, ..., D] or [N, ..., C, D]
        Q     [E, ..., H] or None, batch axes may be 1 (broadcast); E may be 1
        Wr    [H, R]   W2 [H, H]   b2 [H]   Wc1 [H, H]   bc1 [H]   Wc2 [1 | C, H]
        edge_index [2, E]
        -> M [N, ..., H],  X like x (sum of clamped per-edge updates; empty without coordinates)

    The native kernel computes the projections itself (see :mod:`graphdyn.nn.egnn_native`); here
    they are two node-level GEMMs under autograd.
    """
    if cfg.act not in ACTS:
        raise ValueError(f"unsupported activation {cfg.act!r}")
    if cfg.native:
        out = egnn_edges_native(h, W1, b1, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, edge_index, cfg)
        if out is not None:
            return out
    H = h.shape[-1]
    P = F.linear(h, W1[:, :H], b1).contiguous()
    S = F.linear(h, W1[:, H:]).contiguous()
    x = x.contiguous()
    if Q is not None:
        Q = Q.contiguous()
    i, j = edge_index[0].contiguous(), edge_index[1].contiguous()
    return _EGNNEdges.apply(P, S, x, Q, Wr, W2, b2, Wc1, bc1, Wc2, i, j, cfg)
