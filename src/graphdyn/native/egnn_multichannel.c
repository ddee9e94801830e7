/* The per-edge part of a multi-channel EGNN layer, forward and backward
 * (graphdyn/ops/egnn_multichannel_native.py).
 *
 * The same function as graphdyn/nn/egnn_fused.py with cfg.channels = C (its docstring has the
 * math and the backward), for node-major tensors h [N, R, H], x [N, R, C, D] (R = all batch
 * rows, e.g. B T) and edges e = (i <- j), per row r:
 *
 *     P = Wi h + b1    S = Wj h                            node level (the first Linear's h blocks)
 *     d = x_ir - x_jr  [C, D]    G = d d^T  [C, C]    s = max(|G|_F, 1e-12)    rad = vec(G) / s
 *     z1 = P_ir + S_jr + Wr rad + q    m = act(W2 act(z1) + b2)
 *     phi = Wc2 act(Wc1 m + bc1)  [C]    t = clamp(diag(phi) d)  [C, D]
 *     M_ir += m    X_ir += t
 *
 * Backward per row (g_t masked where |t| > clamp):
 *
 *     g_phi_c = <g_t_c, d_c>    g_z3 = act'(z3) (Wc2^T g_phi)    g_m = G_M + Wc1^T g_z3
 *     g_z2 = act'(z2) g_m       g_z1 = act'(z1) (W2^T g_z2)       -> g_P (at i), g_S (at j), g_q
 *     g_rad = Wr^T g_z1    g_G = (g_rad - [|G| >= 1e-12] rad <rad, g_rad>) / s
 *     g_d = (g_G + g_G^T) d + diag(phi) g_t     -> g_x at i, -g_x at j
 *
 * Layout and threading follow egnn_edges.c (the single-channel kernel): threads own ranges of
 * rows r (whole groups of `rep` rows, so that gQ needs no locks); a thread computes P and S of a
 * tile of its rows for every node into scratch that stays in cache, then runs every edge over
 * the tile, MC_RB rows at a time with the hidden vectors on the stack. The backward recomputes
 * each block's forward values, collects g_P, g_S of the tile in scratch and turns them into g_h
 * and the gradients of Wi, Wj, b1 before the next tile. Weight gradients go to per-thread
 * buffers summed in thread order (reruns are bit-identical for one thread count); outer
 * products are stashed MC_STASH rows at a time.
 *
 * The node-level projections and the tile size are egnn_tiles.c's, shared with egnn_edges.c.
 * Activations: common.c's (relu, silu, tanh, leaky_relu with LEAKY_SLOPE). clampv < 0: no clamp.
 * Only hidden width 16 (ESTAG's) is compiled; C <= EGNN_MAXC
 * (C C <= LIN_MAXH: g_rad comes out of lin_core), D <= EGNN_MAXD; four channels in 3-D (AdK's
 * backbone) get their own constant-size copy. Both functions return 0, 1 when memory ran out,
 * or 2 for sizes or an activation they do not take.
 */

/* EGNN_MAXD, EGNN_MAXC (C C <= LIN_MAXH), LIN_MAXH: native/__init__.py LIMITS */
#define MC_RB 8          /* edge rows computed together */
#define MC_STASH 16      /* edge rows whose weight-gradient outer products are summed together */
#define MC_EPS ((real)1e-12)       /* the Gram norm's floor */
#define MC_CD (EGNN_MAXC * EGNN_MAXD)
#define MC_CC (EGNN_MAXC * EGNN_MAXC)
#define MC_AI static inline __attribute__((always_inline))

/* a[0:n] = act(z[0:n]); kept (may be NULL in the forward pass) gets the derivative terms */
MC_AI void F(mc_act)(real *restrict a, real *restrict kept, const real *restrict z, int64_t n, int act) {
    if (kept)
        F(act_apply_keep)(a, kept, z, n, act);
    else
        F(act_apply)(a, z, n, act);
}

/* gW [O, I] += sum_b g_b (x) v_b over nb rows (g [nb, O], v [nb, I]; I <= LIN_MAXH) */
MC_AI void F(mc_outer)(real *restrict gW, const real *restrict g, const real *restrict v, int64_t nb, int64_t O,
                       int64_t I) {
    for (int64_t o = 0; o < O; ++o) {
        real acc[LIN_MAXH];
#pragma omp simd
        for (int64_t q = 0; q < I; ++q) acc[q] = 0;
        for (int64_t b = 0; b < nb; ++b) {
            const real gk = g[b * O + o];
#pragma omp simd
            for (int64_t q = 0; q < I; ++q) acc[q] += gk * v[b * I + q];
        }
        real *restrict row = gW + o * I;
#pragma omp simd
        for (int64_t q = 0; q < I; ++q) row[q] += acc[q];
    }
}

/* Forward values of nb <= MC_RB consecutive rows r0.. of one edge: d [nb, C D], gn [nb] (Gram
 * norms), rad [nb, C C], phi [nb, C] and the hidden vectors [nb, H]; kept NULL in the forward
 * pass, else the activations' derivative terms [3, MC_RB H]. */
MC_AI void F(mc_forward_blk)(const real *restrict Pi, const real *restrict Sj, const real *Q, int64_t qbase,
                             int64_t rep, int64_t r0, const real *restrict xi, const real *restrict xj,
                             const real *restrict WrT, const real *restrict W2t, const real *restrict b2,
                             const real *restrict Wc1t, const real *restrict bc1, const real *restrict Wc2t,
                             int64_t nb, int64_t H, int64_t C, int64_t D, int act, int coords,
                             real *restrict d, real *restrict gn, real *restrict rad, real *restrict phi,
                             real *restrict z1, real *restrict a1, real *restrict z2, real *restrict m,
                             real *restrict z3, real *restrict a3, real *restrict kept) {
    const int64_t CD = C * D, CC = C * C;
    for (int64_t b = 0; b < nb; ++b) {
        real *restrict db = d + b * CD, *restrict rb = rad + b * CC;
        for (int64_t q = 0; q < CD; ++q) db[q] = xi[b * CD + q] - xj[b * CD + q];
        real ss = 0;
        for (int64_t c = 0; c < C; ++c)
            for (int64_t c2 = c; c2 < C; ++c2) {
                real g = 0;
                for (int64_t k = 0; k < D; ++k) g += db[c * D + k] * db[c2 * D + k];
                rb[c * C + c2] = g;
                rb[c2 * C + c] = g;
                ss += c == c2 ? g * g : 2 * g * g;
            }
        const real n = SQRT(ss), s = (real)1 / (n < MC_EPS ? MC_EPS : n);
        gn[b] = n;
        for (int64_t q = 0; q < CC; ++q) rb[q] *= s;
        const real *restrict Qb = Q ? Q + qbase + (r0 + b) / rep * H : NULL;
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) z1[b * H + k] = Pi[b * H + k] + Sj[b * H + k] + (Qb ? Qb[k] : 0);
    }
    F(lin_core)(z1, z1, H, rad, WrT, nb, CC, H); /* z1 += Wr rad */
    F(mc_act)(a1, kept, z1, nb * H, act);
    F(lin_rows)(z2, a1, W2t, b2, nb, H, H);
    F(mc_act)(m, kept ? kept + MC_RB * H : NULL, z2, nb * H, act);
    if (!coords) return;
    F(lin_rows)(z3, m, Wc1t, bc1, nb, H, H);
    F(mc_act)(a3, kept ? kept + 2 * MC_RB * H : NULL, z3, nb * H, act);
    F(lin_core)(phi, NULL, 0, a3, Wc2t, nb, H, C); /* phi = Wc2 a3 */
}

MC_AI void F(mc_fwd_blk_acc)(const real *Pi, const real *Sj, const real *Q, int64_t qe, int64_t rep, const real *x,
                             int64_t i, int64_t j, int64_t e, int64_t r, const real *WrT, const real *W2t,
                             const real *b2, const real *Wc1t, const real *bc1, const real *Wc2t, real *aggm,
                             real *aggt, int64_t R, int64_t nb, int64_t H, int64_t C, int64_t D, int act,
                             real clampv, real *z1, real *a1, real *z2, real *m, real *z3, real *a3) {
    const int coords = aggt != NULL;
    const int64_t CD = C * D, ir = i * R + r, jr = j * R + r;
    real d[MC_RB * MC_CD], gn[MC_RB], rad[MC_RB * MC_CC], phi[MC_RB * EGNN_MAXC];
    F(mc_forward_blk)(Pi, Sj, Q, e * qe, rep, r, x + ir * CD, x + jr * CD, WrT, W2t, b2, Wc1t, bc1, Wc2t, nb, H, C,
                      D, act, coords, d, gn, rad, phi, z1, a1, z2, m, z3, a3, NULL);
    real *restrict am = aggm + ir * H;
#pragma omp simd
    for (int64_t k = 0; k < nb * H; ++k) am[k] += m[k];
    if (!coords) return;
    real *restrict at = aggt + ir * CD;
    for (int64_t b = 0; b < nb; ++b)
        for (int64_t c = 0; c < C; ++c)
            for (int64_t k = 0; k < D; ++k) {
                real t = phi[b * C + c] * d[b * CD + c * D + k];
                if (clampv >= 0) t = t > clampv ? clampv : (t < -clampv ? -clampv : t);
                at[b * CD + c * D + k] += t;
            }
}

MC_AI void F(mc_fwd_rows)(const real *h, const real *W1it, const real *W1jt, const real *b1, real *Pt, real *St,
                          const real *Q, int64_t qe, int64_t rep, const real *x, const int64_t *recv,
                          const int64_t *send, const real *WrT, const real *W2t, const real *b2, const real *Wc1t,
                          const real *bc1, const real *Wc2t, real *aggm, real *aggt, int64_t N, int64_t R, int64_t E,
                          int64_t H, int64_t C, int64_t D, int act, real clampv, int64_t r0, int64_t r1, int64_t RT) {
    real z1[MC_RB * H], a1[MC_RB * H], z2[MC_RB * H], m[MC_RB * H], z3[MC_RB * H], a3[MC_RB * H];
    F(egnn_zero_rows)(aggm, N, R, H, r0, r1);
    if (aggt) F(egnn_zero_rows)(aggt, N, R, C * D, r0, r1);
    for (int64_t ra = r0; ra < r1; ra += RT) {
        const int64_t rb = ra + RT < r1 ? ra + RT : r1;
        F(egnn_project)(Pt, St, h, W1it, W1jt, b1, N, R, RT, ra, rb - ra, H);
        for (int64_t e = 0; e < E; ++e) {
            const int64_t i = recv[e], j = send[e];
            for (int64_t r = ra; r < rb; r += MC_RB) {
                const int64_t nb = rb - r < MC_RB ? rb - r : MC_RB;
                const real *Pi = Pt + (i * RT + r - ra) * H, *Sj = St + (j * RT + r - ra) * H;
                if (nb == MC_RB) /* the full block with a constant count: its loops unroll */
                    F(mc_fwd_blk_acc)(Pi, Sj, Q, qe, rep, x, i, j, e, r, WrT, W2t, b2, Wc1t, bc1, Wc2t, aggm, aggt,
                                      R, MC_RB, H, C, D, act, clampv, z1, a1, z2, m, z3, a3);
                else
                    F(mc_fwd_blk_acc)(Pi, Sj, Q, qe, rep, x, i, j, e, r, WrT, W2t, b2, Wc1t, bc1, Wc2t, aggm, aggt,
                                      R, nb, H, C, D, act, clampv, z1, a1, z2, m, z3, a3);
            }
        }
    }
}

static int F(mc_bad_sizes)(int64_t H, int64_t C, int64_t D, int act) {
    return H != 16 || C < 1 || C > EGNN_MAXC || C * C > LIN_MAXH || D < 1 || D > EGNN_MAXD || act < 0 || act > ACT_LEAKY_RELU;
}

/* aggm [N, R, H] and aggt [N, R, C, D] (NULL: no coordinate update) are written here. h [N, R, H];
 * W1it, W1jt [H, H]: the first message Linear's receiver and sender blocks transposed ([in, out]),
 * b1 [H] its bias; WrT [C C, H] (Wr transposed), W2t, Wc1t [H, H] transposed, Wc2t [H, C] (Wc2
 * transposed). Q (or NULL): edge-attribute projections [Eq, R / rep, H], row r of edge e at
 * Q + e qe + (r / rep) H (qe = 0: shared by all edges). */
int F(egnn_mc_fwd)(const real *h, const real *W1it, const real *W1jt, const real *b1, const real *Q, int64_t qe,
                   int64_t rep, const real *x, const int64_t *recv, const int64_t *send, const real *WrT,
                   const real *W2t, const real *b2, const real *Wc1t, const real *bc1, const real *Wc2t, real *aggm,
                   real *aggt, int64_t N, int64_t R, int64_t E, int64_t H, int64_t C, int64_t D, int act,
                   real clampv, int nthreads) {
    if (F(mc_bad_sizes)(H, C, D, act) || rep < 1) return 2;
    if (nthreads < 1) nthreads = 1;
    const int64_t RT = F(egnn_tile_rows)(N, H, R, rep, nthreads, MC_RB);
    const int64_t tile = 2 * N * RT * H, per = F(padded)(tile);
    real *buf = aligned_alloc(128, sizeof(real) * (size_t)(per * nthreads > 0 ? per * nthreads : 1));
    if (!buf) return 1;
#pragma omp parallel num_threads(nthreads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t nq = R / rep, r0 = nq * t / nt * rep, r1 = nq * (t + 1) / nt * rep;
        real *Pt = buf + t * per, *St = Pt + tile / 2;
        if (C == 4 && D == 3) /* AdK's backbone: the channel and coordinate loops unroll */
            F(mc_fwd_rows)(h, W1it, W1jt, b1, Pt, St, Q, qe, rep, x, recv, send, WrT, W2t, b2, Wc1t, bc1, Wc2t, aggm,
                           aggt, N, R, E, 16, 4, 3, act, clampv, r0, r1, RT);
        else
            F(mc_fwd_rows)(h, W1it, W1jt, b1, Pt, St, Q, qe, rep, x, recv, send, WrT, W2t, b2, Wc1t, bc1, Wc2t, aggm,
                           aggt, N, R, E, 16, C, D, act, clampv, r0, r1, RT);
    }
    free(buf);
    return 0;
}

/* The stash of one thread: rows of the weight-gradient outer products, collected MC_STASH at a time */
struct F(mc_stash) {
    real *g2, *v2;   /* g_z2, a1 [MC_STASH, H]:   W2 */
    real *gc, *vc;   /* g_z3, m [MC_STASH, H]:    Wc1 */
    real *gr, *vr;   /* g_z1 [MC_STASH, H], rad [MC_STASH, C C]:  Wr */
    real *gp, *vp;   /* g_phi [MC_STASH, C], a3 [MC_STASH, H]:   Wc2 */
    int64_t n;
};

MC_AI void F(mc_flush)(struct F(mc_stash) *st, real *tWr, real *tW2, real *tWc1, real *tWc2, int coords, int64_t H,
                       int64_t C) {
    F(outer_rows)(tW2, st->g2, st->v2, st->n, H);
    F(mc_outer)(tWr, st->gr, st->vr, st->n, H, C * C);
    if (coords) {
        F(outer_rows)(tWc1, st->gc, st->vc, st->n, H);
        F(mc_outer)(tWc2, st->gp, st->vp, st->n, C, H);
    }
    st->n = 0;
}

/* Backward of one block of nb rows of edge e = (i <- j) */
MC_AI void F(mc_bwd_blk)(const real *Pi, const real *Sj, const real *Q, real *gQ, int64_t qe, int64_t rep,
                         const real *x, int64_t i, int64_t j, int64_t e, int64_t r, const real *Wr, const real *WrT,
                         const real *W2t, const real *W2, const real *b2, const real *Wc1t, const real *Wc1,
                         const real *bc1, const real *Wc2, const real *Wc2t, const real *Gm, const real *Gt,
                         real *gPi, real *gSj, real *gx, real *tWr, real *tW2, real *tb2, real *tWc1, real *tbc1,
                         real *tWc2, int64_t R, int64_t nb, int64_t H, int64_t C, int64_t D, int act,
                         real clampv, real *z1, real *z2, real *z3, real *gm, real *ga, real *kept,
                         struct F(mc_stash) *st) {
    const int coords = Gt != NULL;
    const int64_t CD = C * D, CC = C * C, ir = i * R + r, jr = j * R + r;
    if (st->n + nb > MC_STASH) F(mc_flush)(st, tWr, tW2, tWc1, tWc2, coords, H, C);
    const int64_t s = st->n;
    /* forward values straight into the stash rows of the outer products, and so do the gradients */
    real *restrict a1 = st->v2 + s * H, *restrict gz2 = st->g2 + s * H, *restrict m = st->vc + s * H,
                   *restrict gz3 = st->gc + s * H, *restrict gz1 = st->gr + s * H, *restrict rad = st->vr + s * CC,
                   *restrict gphi = st->gp + s * C, *restrict a3 = st->vp + s * H;
    real d[MC_RB * MC_CD], gn[MC_RB], phi[MC_RB * EGNN_MAXC], gd[MC_RB * MC_CD];
    F(mc_forward_blk)(Pi, Sj, Q, e * qe, rep, r, x + ir * CD, x + jr * CD, WrT, W2t, b2, Wc1t, bc1, Wc2t, nb, H, C, D,
                      act, coords, d, gn, rad, phi, z1, a1, z2, m, z3, a3, kept);
    const real *gmr = Gm + ir * H; /* g_m: the incoming gradient, plus Wc1^T g_z3 with coordinates */
    if (coords) {
        const real *gt = Gt + ir * CD;
        for (int64_t b = 0; b < nb; ++b)
            for (int64_t c = 0; c < C; ++c) {
                const real p = phi[b * C + c];
                real g = 0;
                for (int64_t k = 0; k < D; ++k) {
                    const int64_t q = b * CD + c * D + k;
                    const real t = p * d[q];
                    const real gk = (clampv >= 0 && (t > clampv || t < -clampv)) ? (real)0 : gt[q]; /* |t| <= c */
                    g += gk * d[q];
                    gd[q] = p * gk; /* diag(phi) g_t */
                }
                gphi[b * C + c] = g;
            }
        F(lin_core)(ga, NULL, 0, gphi, Wc2, nb, C, H); /* g_a3 = Wc2^T g_phi */
        F(act_mul_grad_kept)(gz3, ga, z3, kept + 2 * MC_RB * H, nb * H, act);
        for (int64_t b = 0; b < nb; ++b)
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) tbc1[k] += gz3[b * H + k];
        F(lin_core)(gm, gmr, H, gz3, Wc1, nb, H, H);
        gmr = gm;
    } else {
        for (int64_t q = 0; q < nb * CD; ++q) gd[q] = 0;
    }
    F(act_mul_grad_kept)(gz2, gmr, z2, kept + MC_RB * H, nb * H, act);
    for (int64_t b = 0; b < nb; ++b)
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) tb2[k] += gz2[b * H + k];
    F(lin_core)(ga, NULL, 0, gz2, W2, nb, H, H); /* g_a1 = W2^T g_z2 */
    F(act_mul_grad_kept)(gz1, ga, z1, kept, nb * H, act);
    st->n += nb;
#pragma omp simd
    for (int64_t k = 0; k < nb * H; ++k) gPi[k] += gz1[k];
#pragma omp simd
    for (int64_t k = 0; k < nb * H; ++k) gSj[k] += gz1[k];
    if (gQ)
        for (int64_t b = 0; b < nb; ++b) {
            real *restrict g = gQ + e * qe + (r + b) / rep * H;
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) g[k] += gz1[b * H + k];
        }
    if (!gx) return;
    real gr[MC_RB * MC_CC];
    F(lin_core)(gr, NULL, 0, gz1, Wr, nb, H, CC); /* g_rad = Wr^T g_z1 */
    for (int64_t b = 0; b < nb; ++b) {
        const real *rb = rad + b * CC, *grb = gr + b * CC, *db = d + b * CD;
        const real n = gn[b], sinv = (real)1 / (n < MC_EPS ? MC_EPS : n);
        real dot = 0;
        if (n >= MC_EPS)
            for (int64_t q = 0; q < CC; ++q) dot += rb[q] * grb[q];
        real gG[MC_CC];
        for (int64_t q = 0; q < CC; ++q) gG[q] = (grb[q] - rb[q] * dot) * sinv;
        real *gxi = gx + (ir + b) * CD, *gxj = gx + (jr + b) * CD;
        for (int64_t c = 0; c < C; ++c)
            for (int64_t k = 0; k < D; ++k) {
                real g = gd[b * CD + c * D + k];
                for (int64_t c2 = 0; c2 < C; ++c2) g += (gG[c * C + c2] + gG[c2 * C + c]) * db[c2 * D + k];
                gxi[c * D + k] += g;
                gxj[c * D + k] -= g;
            }
    }
}

MC_AI void F(mc_bwd_rows)(const real *h, const real *W1it, const real *W1jt, const real *W1i, const real *W1j,
                          const real *b1, real *Pt, real *St, real *gPt, real *gSt, const real *Q, real *gQ, int64_t qe,
                          int64_t rep, const real *x, const int64_t *recv, const int64_t *send, const real *Wr,
                          const real *WrT, const real *W2t, const real *W2, const real *b2, const real *Wc1t,
                          const real *Wc1, const real *bc1, const real *Wc2, const real *Wc2t, const real *Gm,
                          const real *Gt, real *gh, real *gx, real *tWr, real *tW2, real *tb2, real *tWc1, real *tbc1,
                          real *tWc2, real *tW1i, real *tW1j, real *tb1, int64_t N, int64_t R, int64_t E, int64_t H,
                          int64_t C, int64_t D, int act, real clampv, int64_t r0, int64_t r1, int64_t RT) {
    real z1[MC_RB * H], z2[MC_RB * H], z3[MC_RB * H], gm[MC_RB * H], ga[MC_RB * H], kept[3 * MC_RB * H];
    real g2[MC_STASH * H], v2[MC_STASH * H], gc[MC_STASH * H], vc[MC_STASH * H], gr[MC_STASH * H],
        vr[MC_STASH * MC_CC], gp[MC_STASH * EGNN_MAXC], vp[MC_STASH * H];
    struct F(mc_stash) st = {g2, v2, gc, vc, gr, vr, gp, vp, 0};
    if (gx) F(egnn_zero_rows)(gx, N, R, C * D, r0, r1);
    if (gQ) /* this thread's rows of gQ [Eq, R / rep, H] */
        for (int64_t e = 0; e < (qe ? E : 1); ++e) memset(gQ + e * qe + r0 / rep * H, 0, sizeof(real) * (r1 - r0) / rep * H);
    for (int64_t ra = r0; ra < r1; ra += RT) {
        const int64_t rb = ra + RT < r1 ? ra + RT : r1;
        F(egnn_project)(Pt, St, h, W1it, W1jt, b1, N, R, RT, ra, rb - ra, H);
        memset(gPt, 0, sizeof(real) * N * RT * H);
        memset(gSt, 0, sizeof(real) * N * RT * H);
        for (int64_t e = 0; e < E; ++e) {
            const int64_t i = recv[e], j = send[e];
            for (int64_t r = ra; r < rb; r += MC_RB) {
                const int64_t nb = rb - r < MC_RB ? rb - r : MC_RB, it = (i * RT + r - ra) * H,
                              jt = (j * RT + r - ra) * H;
                if (nb == MC_RB)
                    F(mc_bwd_blk)(Pt + it, St + jt, Q, gQ, qe, rep, x, i, j, e, r, Wr, WrT, W2t, W2, b2, Wc1t, Wc1, bc1,
                                  Wc2, Wc2t, Gm, Gt, gPt + it, gSt + jt, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, R, MC_RB,
                                  H, C, D, act, clampv, z1, z2, z3, gm, ga, kept, &st);
                else
                    F(mc_bwd_blk)(Pt + it, St + jt, Q, gQ, qe, rep, x, i, j, e, r, Wr, WrT, W2t, W2, b2, Wc1t, Wc1, bc1,
                                  Wc2, Wc2t, Gm, Gt, gPt + it, gSt + jt, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, R, nb, H,
                                  C, D, act, clampv, z1, z2, z3, gm, ga, kept, &st);
            }
        }
        F(egnn_unproject)(gh, gPt, gSt, h, W1i, W1j, tW1i, tW1j, tb1, N, R, RT, ra, rb - ra, H);
    }
    F(mc_flush)(&st, tWr, tW2, tWc1, tWc2, Gt != NULL, H, C);
}

/* Gt NULL: no coordinate update. gh, gx, gQ (written here) may be NULL. W1i, W1j [H, H] are the
 * first Linear's receiver and sender blocks ([out, in]), W1it, W1jt their transposes; Wr [H, C C]
 * and WrT; W2, Wc1 [H, H] and their transposes; Wc2 [C, H] and Wc2t. Weight gradients are
 * written into gblock = [gWr (H C C), gW2 (H H), gb2 (H), gWc1 (H H), gbc1 (H), gWc2 (C H),
 * gW1i (H H), gW1j (H H), gb1 (H)]. */
int F(egnn_mc_bwd)(const real *h, const real *W1it, const real *W1jt, const real *W1i, const real *W1j,
                   const real *b1, const real *Q, real *gQ, int64_t qe, int64_t rep, const real *x,
                   const int64_t *recv, const int64_t *send, const real *Wr, const real *WrT, const real *W2t,
                   const real *W2, const real *b2, const real *Wc1t, const real *Wc1, const real *bc1, const real *Wc2,
                   const real *Wc2t, const real *Gm, const real *Gt, real *gh, real *gx, real *gblock, int64_t N,
                   int64_t R, int64_t E, int64_t H, int64_t C, int64_t D, int act, real clampv,
                   int nthreads) {
    if (F(mc_bad_sizes)(H, C, D, act) || rep < 1) return 2;
    const int64_t nblock = H * C * C + 4 * H * H + 3 * H + C * H, per = F(padded)(nblock);
    if (nthreads < 1) nthreads = 1;
    const int64_t RT = F(egnn_tile_rows)(N, H, R, rep, nthreads, MC_RB);
    const int64_t tile = 2 * N * RT * H, tper = F(padded)(2 * tile);
    real *buf = F(zeroed)(per * nthreads);
    real *scratch = aligned_alloc(128, sizeof(real) * (size_t)(tper * nthreads > 0 ? tper * nthreads : 1));
    if (!buf || !scratch) {
        free(buf);
        free(scratch);
        return 1;
    }
#pragma omp parallel num_threads(nthreads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t nq = R / rep, r0 = nq * t / nt * rep, r1 = nq * (t + 1) / nt * rep;
        real *tWr = buf + t * per, *tW2 = tWr + H * C * C, *tb2 = tW2 + H * H, *tWc1 = tb2 + H, *tbc1 = tWc1 + H * H,
             *tWc2 = tbc1 + H, *tW1i = tWc2 + C * H, *tW1j = tW1i + H * H, *tb1 = tW1j + H * H;
        real *Pt = scratch + t * tper, *St = Pt + tile / 2, *gPt = Pt + tile, *gSt = gPt + tile / 2;
        if (C == 4 && D == 3)
            F(mc_bwd_rows)(h, W1it, W1jt, W1i, W1j, b1, Pt, St, gPt, gSt, Q, gQ, qe, rep, x, recv, send, Wr, WrT, W2t,
                           W2, b2, Wc1t, Wc1, bc1, Wc2, Wc2t, Gm, Gt, gh, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, tW1i,
                           tW1j, tb1, N, R, E, 16, 4, 3, act, clampv, r0, r1, RT);
        else
            F(mc_bwd_rows)(h, W1it, W1jt, W1i, W1j, b1, Pt, St, gPt, gSt, Q, gQ, qe, rep, x, recv, send, Wr, WrT, W2t,
                           W2, b2, Wc1t, Wc1, bc1, Wc2, Wc2t, Gm, Gt, gh, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, tW1i,
                           tW1j, tb1, N, R, E, 16, C, D, act, clampv, r0, r1, RT);
    }
    F(sum_threads)(gblock, buf, per, nblock, nthreads);
    free(buf);
    free(scratch);
    return 0;
}
