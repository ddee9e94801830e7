/* The per-edge part of a single-channel EGNN layer, forward and backward (graphdyn.ops.egnn_edges).
 *
 * The function of graphdyn/ops/egnn_edges.py's reference (its docstring has the math), for
 * node-major tensors h [N, R, H], x [N, R, D] (R = all batch rows, e.g. B T) and edges
 * e = (i <- j), per row r:
 *
 *     P = Wi h + b1    S = Wj h                          node level (the first Linear's h blocks)
 *     d = x_ir - x_jr    q = |d|^2    z1 = P_ir + S_jr + Wr q    m = act(W2 act(z1) + b2)
 *     phi = Wc2 . act(Wc1 m + bc1)    t = clamp(u phi)  (u = d, or d / |d| with unit)
 *     M_ir += m    X_ir += t
 *
 * Backward, per edge row (act' at the recomputed pre-activations; G_M, G_X the incoming gradients):
 *
 *     g_t   = G_X[i], zero where the clamp acted     g_phi = <g_t, u>
 *     g_z3  = act'(z3) (Wc2^T g_phi)                 g_m   = G_M[i] + Wc1^T g_z3
 *     g_z2  = act'(z2) g_m                           g_z1  = act'(z1) (W2^T g_z2)  -> g_P at i, g_S at j, g_Q
 *     g_d   = 2 d (Wr . g_z1) + g_u                  (g_u = phi g_t; with unit vectors
 *                                                     (phi g_t - u <u, phi g_t>) / |d| instead)
 *     g_x   = g_d at i, -g_d at j;  g_h = Wi^T g_P + Wj^T g_S;  weight gradients: outer products
 *
 * Threads own ranges of rows r, so every write to M, X and the input gradients of a row comes
 * from one thread; weight gradients go to per-thread buffers summed in thread order. A thread
 * goes through its rows in tiles: it computes P and S of a tile's rows for every node into its
 * scratch (egnn_tiles.c: at most EGNN_TILE_BYTES, so they stay in cache), then runs every edge over those rows.
 * The backward pass likewise collects g_P and g_S of a tile in scratch and turns them into g_h
 * and the gradients of Wi, Wj, b1 before the next tile: no node-level [N, R, H] tensor other than
 * h and g_h is written. Weight matrices come in both layouts (W [out, in] and Wt [in, out]) so
 * that every loop runs over contiguous memory. clampv < 0: no clamp. Only hidden width 16
 * (ESTAG's) is compiled: each width multiplies the compile time. Both functions return 0, 1 when
 * memory ran out, or 2 for another width or D > EGNN_MAXD.
 */

/* EGNN_MAXD: native/__init__.py LIMITS */
#define EG_RB 8         /* edge rows computed together: independent FMA chains, weights loaded once per block */
#define EG_STASH 16     /* edge rows whose weight-gradient outer products are summed together */

/* Forward values of a block of nb <= EG_RB consecutive rows r0.. of edge e = (i <- j). */
struct F(eg_blk) {
    real d[EG_RB][EGNN_MAXD], q[EG_RB], n[EG_RB], phi[EG_RB];
};

static inline __attribute__((always_inline)) void F(eg_forward_blk)(
    const real *restrict Pi, const real *restrict Sj, const real *Q, int64_t qbase, int64_t rep, int64_t r0,
    const real *restrict xi, const real *restrict xj, const real *restrict Wr, const real *restrict W2t,
    const real *restrict b2, const real *restrict Wc1t, const real *restrict bc1, const real *restrict Wc2, int64_t nb,
    int64_t H, int64_t D, int act, int coords, int unit, struct F(eg_blk) *blk, real *restrict z1, real *restrict a1,
    real *restrict z2, real *restrict m, real *restrict z3, real *restrict a3, real *restrict kept) {
    for (int64_t b = 0; b < nb; ++b) {
        real q = 0;
        for (int64_t c = 0; c < D; ++c) {
            const real dc = xi[b * D + c] - xj[b * D + c];
            blk->d[b][c] = dc;
            q += dc * dc;
        }
        blk->q[b] = q;
        blk->n[b] = unit ? SQRT(q) : (real)1;
        blk->phi[b] = 0;
        const real *restrict Qb = Q ? Q + qbase + (r0 + b) / rep * H : NULL;
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) z1[b * H + k] = Pi[b * H + k] + Sj[b * H + k] + Wr[k] * q + (Qb ? Qb[k] : 0);
    }
    /* kept (NULL in the forward pass): the activations' derivative terms [3, EG_RB H] */
    if (kept) F(act_apply_keep)(a1, kept, z1, nb * H, act);
    else F(act_apply)(a1, z1, nb * H, act);
    F(lin_rows)(z2, a1, W2t, b2, nb, H, H);
    if (kept) F(act_apply_keep)(m, kept + EG_RB * H, z2, nb * H, act);
    else F(act_apply)(m, z2, nb * H, act);
    if (!coords) return;
    F(lin_rows)(z3, m, Wc1t, bc1, nb, H, H);
    if (kept) F(act_apply_keep)(a3, kept + 2 * EG_RB * H, z3, nb * H, act);
    else F(act_apply)(a3, z3, nb * H, act);
    for (int64_t b = 0; b < nb; ++b) {
        real phi = 0;
#pragma omp simd reduction(+ : phi)
        for (int64_t k = 0; k < H; ++k) phi += Wc2[k] * a3[b * H + k];
        blk->phi[b] = phi;
    }
}

static inline __attribute__((always_inline)) void F(eg_fwd_blk_acc)(
    const real *Pi, const real *Sj, const real *Q, int64_t qe, int64_t rep, const real *x, int64_t i, int64_t j,
    int64_t e, int64_t r, const real *Wr, const real *W2t, const real *b2, const real *Wc1t, const real *bc1,
    const real *Wc2, real *aggm, real *aggt, int64_t R, int64_t nb, int64_t H, int64_t D, int act, int unit,
    real clampv, real *z1, real *a1, real *z2, real *m, real *z3, real *a3) {
    const int coords = aggt != NULL;
    const int64_t ir = i * R + r, jr = j * R + r;
    struct F(eg_blk) blk;
    F(eg_forward_blk)(Pi, Sj, Q, e * qe, rep, r, x + ir * D, x + jr * D, Wr, W2t, b2, Wc1t, bc1, Wc2,
                      nb, H, D, act, coords, unit, &blk, z1, a1, z2, m, z3, a3, NULL);
    real *restrict am = aggm + ir * H;
#pragma omp simd
    for (int64_t k = 0; k < nb * H; ++k) am[k] += m[k];
    if (coords)
        for (int64_t b = 0; b < nb; ++b)
            for (int64_t c = 0; c < D; ++c) {
                real t = blk.d[b][c] / blk.n[b] * blk.phi[b];
                if (clampv >= 0) t = t > clampv ? clampv : (t < -clampv ? -clampv : t);
                aggt[(ir + b) * D + c] += t;
            }
}

static inline __attribute__((always_inline)) void F(eg_fwd_rows)(
    const real *h, const real *W1it, const real *W1jt, const real *b1, real *Pt, real *St, const real *Q, int64_t qe,
    int64_t rep, const real *x, const int64_t *recv, const int64_t *send, const real *Wr, const real *W2t,
    const real *b2, const real *Wc1t, const real *bc1, const real *Wc2, real *aggm, real *aggt, int64_t N, int64_t R,
    int64_t E, int64_t H, int64_t D, int act, int unit, real clampv, int64_t r0, int64_t r1, int64_t RT) {
    real z1[EG_RB * H], a1[EG_RB * H], z2[EG_RB * H], m[EG_RB * H], z3[EG_RB * H], a3[EG_RB * H];
    F(egnn_zero_rows)(aggm, N, R, H, r0, r1);
    if (aggt) F(egnn_zero_rows)(aggt, N, R, D, r0, r1);
    for (int64_t ra = r0; ra < r1; ra += RT) {
        const int64_t rb = ra + RT < r1 ? ra + RT : r1;
        F(egnn_project)(Pt, St, h, W1it, W1jt, b1, N, R, RT, ra, rb - ra, H);
        for (int64_t e = 0; e < E; ++e) {
            const int64_t i = recv[e], j = send[e];
            int64_t r = ra;
            for (; r < rb; r += EG_RB) {
                const int64_t nb = rb - r < EG_RB ? rb - r : EG_RB;
                const real *Pi = Pt + (i * RT + r - ra) * H, *Sj = St + (j * RT + r - ra) * H;
                if (nb == EG_RB) /* the full block with a constant count: its loops unroll */
                    F(eg_fwd_blk_acc)(Pi, Sj, Q, qe, rep, x, i, j, e, r, Wr, W2t, b2, Wc1t, bc1, Wc2, aggm, aggt, R,
                                      EG_RB, H, D, act, unit, clampv, z1, a1, z2, m, z3, a3);
                else
                    F(eg_fwd_blk_acc)(Pi, Sj, Q, qe, rep, x, i, j, e, r, Wr, W2t, b2, Wc1t, bc1, Wc2, aggm, aggt, R,
                                      nb, H, D, act, unit, clampv, z1, a1, z2, m, z3, a3);
            }
        }
    }
}

/* aggm [N, R, H] and aggt [N, R, D] (NULL: no coordinate update) are written here. h [N, R, H];
 * W1it, W1jt [H, H]: the first message Linear's receiver and sender blocks, transposed ([in, out]);
 * b1 [H] its bias. Q (or NULL): edge-attribute projections [Eq, R / rep, H], row r of edge e at
 * Q + e qe + (r / rep) H (qe = 0: shared by all edges); threads own whole groups of rep rows, so
 * gQ needs no locks. */
int F(egnn_edges_fwd)(const real *h, const real *W1it, const real *W1jt, const real *b1, const real *Q, int64_t qe,
                      int64_t rep, const real *x, const int64_t *recv, const int64_t *send, const real *Wr,
                      const real *W2t, const real *b2, const real *Wc1t, const real *bc1, const real *Wc2, real *aggm,
                      real *aggt, int64_t N, int64_t R, int64_t E, int64_t H, int64_t D, int act, int unit,
                      real clampv, int nthreads) {
    if (D > EGNN_MAXD || H != 16) return 2;
    if (nthreads < 1) nthreads = 1;
    const int64_t RT = F(egnn_tile_rows)(N, H, R, rep, nthreads, EG_RB);
    const int64_t tile = 2 * N * RT * H, per = F(padded)(tile);
    real *buf = aligned_alloc(128, sizeof(real) * (size_t)(per * nthreads > 0 ? per * nthreads : 1));
    if (!buf) return 1;
#pragma omp parallel num_threads(nthreads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t nq = R / rep, r0 = nq * t / nt * rep, r1 = nq * (t + 1) / nt * rep;
        real *Pt = buf + t * per, *St = Pt + tile / 2;
        switch (H) {
            case 16: /* 3-D coordinates get their own constant-size copy: the D loops unroll */
                if (D == 3)
                    F(eg_fwd_rows)(h, W1it, W1jt, b1, Pt, St, Q, qe, rep, x, recv, send, Wr, W2t, b2, Wc1t, bc1, Wc2, aggm, aggt, N, R, E, 16, 3, act, unit, clampv, r0, r1, RT);
                else
                    F(eg_fwd_rows)(h, W1it, W1jt, b1, Pt, St, Q, qe, rep, x, recv, send, Wr, W2t, b2, Wc1t, bc1, Wc2, aggm, aggt, N, R, E, 16, D, act, unit, clampv, r0, r1, RT);
                break;
        }
    }
    free(buf);
    return 0;
}

/* Backward of one block; stash arrays (capacity EG_STASH rows) collect the outer products. */
static inline __attribute__((always_inline)) void F(eg_bwd_blk)(
    const real *Pi, const real *Sj, const real *Q, real *gQ, int64_t qe, int64_t rep, const real *x, int64_t i,
    int64_t j, int64_t e, int64_t r, const real *Wr, const real *W2t, const real *W2, const real *b2, const real *Wc1t,
    const real *Wc1, const real *bc1, const real *Wc2, const real *Gm, const real *Gt, real *gPi, real *gSj, real *gx,
    real *tWr, real *tW2, real *tb2, real *tWc1, real *tbc1, real *tWc2, int64_t R, int64_t nb, int64_t H, int64_t D,
    int act, int unit, real clampv, real *z1, real *z2, real *z3, real *a3, real *gm, real *ga,
    real *gz, real *kept, real *s2g, real *s2v, real *scg, real *scv, int64_t *ns) {
    const int coords = Gt != NULL;
    const int64_t ir = i * R + r, jr = j * R + r;
    struct F(eg_blk) blk;
    if (*ns + nb > EG_STASH) {
        F(outer_rows)(tW2, s2g, s2v, *ns, H);
        if (coords) F(outer_rows)(tWc1, scg, scv, *ns, H);
        *ns = 0;
    }
    /* a1 and m go straight into the stash rows of the outer products, and so do g_z2 and g_z3 */
    real *restrict a1 = s2v + *ns * H, *restrict m = scv + *ns * H, *restrict gz2 = s2g + *ns * H,
                   *restrict gz3 = scg + *ns * H;
    F(eg_forward_blk)(Pi, Sj, Q, e * qe, rep, r, x + ir * D, x + jr * D, Wr, W2t, b2, Wc1t, bc1, Wc2,
                      nb, H, D, act, coords, unit, &blk, z1, a1, z2, m, z3, a3, kept);
    const real *gmr = Gm + ir * H; /* g_m: the incoming gradient, plus Wc1^T g_z3 with coordinates */
    real gd[EG_RB][EGNN_MAXD];
    for (int64_t b = 0; b < nb; ++b)
        for (int64_t c = 0; c < D; ++c) gd[b][c] = 0;
    if (coords) {
        for (int64_t b = 0; b < nb; ++b) {
            const real *gt = Gt + (ir + b) * D;
            real gtm[EGNN_MAXD], gphi = 0;
            for (int64_t c = 0; c < D; ++c) {
                const real u = blk.d[b][c] / blk.n[b], t = u * blk.phi[b];
                gtm[c] = (clampv >= 0 && (t > clampv || t < -clampv)) ? (real)0 : gt[c];  /* kept where |t| <= c */
                gphi += gtm[c] * u;
            }
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) {
                tWc2[k] += gphi * a3[b * H + k];
                ga[b * H + k] = gphi * Wc2[k];
            }
            if (gx) {
                real gu[EGNN_MAXD], ug = 0;
                for (int64_t c = 0; c < D; ++c) {
                    gu[c] = gtm[c] * blk.phi[b];
                    ug += blk.d[b][c] / blk.n[b] * gu[c];
                }
                for (int64_t c = 0; c < D; ++c)
                    gd[b][c] = unit ? (gu[c] - blk.d[b][c] / blk.n[b] * ug) / blk.n[b] : gu[c];
            }
        }
        F(act_mul_grad_kept)(gz3, ga, z3, kept + 2 * EG_RB * H, nb * H, act);
        for (int64_t b = 0; b < nb; ++b)
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) tbc1[k] += gz3[b * H + k];
        F(lin_core)(gm, gmr, H, gz3, Wc1, nb, H, H);
        gmr = gm;
    }
    F(act_mul_grad_kept)(gz2, gmr, z2, kept + EG_RB * H, nb * H, act);
    *ns += nb;
    for (int64_t b = 0; b < nb; ++b)
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) tb2[k] += gz2[b * H + k];
    F(lin_core)(ga, NULL, 0, gz2, W2, nb, H, H);  /* g_a1 = W2^T g_z2 */
    F(act_mul_grad_kept)(gz, ga, z1, kept, nb * H, act);  /* g_z1 */
#pragma omp simd
    for (int64_t k = 0; k < nb * H; ++k) gPi[k] += gz[k];
#pragma omp simd
    for (int64_t k = 0; k < nb * H; ++k) gSj[k] += gz[k];
    for (int64_t b = 0; b < nb; ++b) {
        real gq = 0;
#pragma omp simd reduction(+ : gq)
        for (int64_t k = 0; k < H; ++k) {
            tWr[k] += gz[b * H + k] * blk.q[b];
            gq += gz[b * H + k] * Wr[k];
        }
        if (gQ) {
            real *restrict g = gQ + e * qe + (r + b) / rep * H;
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) g[k] += gz[b * H + k];
        }
        if (gx)
            for (int64_t c = 0; c < D; ++c) {
                const real g = gd[b][c] + 2 * blk.d[b][c] * gq;
                gx[(ir + b) * D + c] += g;
                gx[(jr + b) * D + c] -= g;
            }
    }
}

static inline __attribute__((always_inline)) void F(eg_bwd_rows)(
    const real *h, const real *W1it, const real *W1jt, const real *W1i, const real *W1j, const real *b1, real *Pt,
    real *St, real *gPt, real *gSt, const real *Q, real *gQ, int64_t qe, int64_t rep, const real *x,
    const int64_t *recv, const int64_t *send, const real *Wr, const real *W2t, const real *W2, const real *b2,
    const real *Wc1t, const real *Wc1, const real *bc1, const real *Wc2, const real *Gm, const real *Gt, real *gh,
    real *gx, real *tWr, real *tW2, real *tb2, real *tWc1, real *tbc1, real *tWc2, real *tW1i, real *tW1j, real *tb1,
    int64_t N, int64_t R, int64_t E, int64_t H, int64_t D, int act, int unit, real clampv, int64_t r0, int64_t r1, int64_t RT) {
    real z1[EG_RB * H], z2[EG_RB * H], z3[EG_RB * H], a3[EG_RB * H], gm[EG_RB * H],
        ga[EG_RB * H], gz[EG_RB * H], kept[3 * EG_RB * H];
    real s2g[EG_STASH * H], s2v[EG_STASH * H], scg[EG_STASH * H], scv[EG_STASH * H];
    int64_t ns = 0;
    if (gx) F(egnn_zero_rows)(gx, N, R, D, r0, r1);
    if (gQ) /* this thread's rows of gQ [Eq, R / rep, H] */
        for (int64_t e = 0; e < (qe ? E : 1); ++e)
            memset(gQ + e * qe + r0 / rep * H, 0, sizeof(real) * (r1 - r0) / rep * H);
    for (int64_t ra = r0; ra < r1; ra += RT) {
        const int64_t rb = ra + RT < r1 ? ra + RT : r1;
        F(egnn_project)(Pt, St, h, W1it, W1jt, b1, N, R, RT, ra, rb - ra, H);
        memset(gPt, 0, sizeof(real) * N * RT * H);
        memset(gSt, 0, sizeof(real) * N * RT * H);
        for (int64_t e = 0; e < E; ++e) {
            const int64_t i = recv[e], j = send[e];
            for (int64_t r = ra; r < rb; r += EG_RB) {
                const int64_t nb = rb - r < EG_RB ? rb - r : EG_RB, it = (i * RT + r - ra) * H, jt = (j * RT + r - ra) * H;
                if (nb == EG_RB) /* the full block with a constant count: its loops unroll */
                    F(eg_bwd_blk)(Pt + it, St + jt, Q, gQ, qe, rep, x, i, j, e, r, Wr, W2t, W2, b2, Wc1t, Wc1, bc1, Wc2,
                                  Gm, Gt, gPt + it, gSt + jt, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, R, EG_RB, H, D, act,
                                  unit, clampv, z1, z2, z3, a3, gm, ga, gz, kept, s2g, s2v, scg, scv, &ns);
                else
                    F(eg_bwd_blk)(Pt + it, St + jt, Q, gQ, qe, rep, x, i, j, e, r, Wr, W2t, W2, b2, Wc1t, Wc1, bc1, Wc2,
                                  Gm, Gt, gPt + it, gSt + jt, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, R, nb, H, D, act,
                                  unit, clampv, z1, z2, z3, a3, gm, ga, gz, kept, s2g, s2v, scg, scv, &ns);
            }
        }
        F(egnn_unproject)(gh, gPt, gSt, h, W1i, W1j, tW1i, tW1j, tb1, N, R, RT, ra, rb - ra, H);
    }
    F(outer_rows)(tW2, s2g, s2v, ns, H);
    if (Gt) F(outer_rows)(tWc1, scg, scv, ns, H);
}

/* Gt NULL: no coordinate update. gh, gx, gQ (written here) may be NULL. W1i, W1j [H, H] are the
 * first Linear's receiver and sender blocks ([out, in]), W1it, W1jt their transposes. Weight
 * gradients are written into gblock = [gWr (H), gW2 (H H), gb2 (H), gWc1 (H H), gbc1 (H), gWc2 (H),
 * gW1i (H H), gW1j (H H), gb1 (H)]. */
int F(egnn_edges_bwd)(const real *h, const real *W1it, const real *W1jt, const real *W1i, const real *W1j,
                      const real *b1, const real *Q, real *gQ, int64_t qe, int64_t rep, const real *x,
                      const int64_t *recv, const int64_t *send, const real *Wr, const real *W2t, const real *W2,
                      const real *b2, const real *Wc1t, const real *Wc1, const real *bc1, const real *Wc2,
                      const real *Gm, const real *Gt, real *gh, real *gx, real *gblock, int64_t N, int64_t R,
                      int64_t E, int64_t H, int64_t D, int act, int unit, real clampv, int nthreads) {
    if (D > EGNN_MAXD || H != 16) return 2;
    const int64_t nblock = 4 * H * H + 5 * H, per = F(padded)(nblock);
    if (nthreads < 1) nthreads = 1;
    const int64_t RT = F(egnn_tile_rows)(N, H, R, rep, nthreads, EG_RB);
    const int64_t tile = 2 * N * RT * H, tper = F(padded)(2 * tile);
    real *buf = F(zeroed)(per * nthreads);
    real *scratch = aligned_alloc(128, sizeof(real) * (size_t)(tper * nthreads));
    if (!buf || !scratch) {
        free(buf);
        free(scratch);
        return 1;
    }
#pragma omp parallel num_threads(nthreads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t nq = R / rep, r0 = nq * t / nt * rep, r1 = nq * (t + 1) / nt * rep;
        real *tWr = buf + t * per, *tW2 = tWr + H, *tb2 = tW2 + H * H, *tWc1 = tb2 + H, *tbc1 = tWc1 + H * H,
             *tWc2 = tbc1 + H, *tW1i = tWc2 + H, *tW1j = tW1i + H * H, *tb1 = tW1j + H * H;
        real *Pt = scratch + t * tper, *St = Pt + tile / 2, *gPt = Pt + tile, *gSt = gPt + tile / 2;
        switch (H) {
            case 16: /* as in the forward, 3-D coordinates get their own copy */
                if (D == 3)
                    F(eg_bwd_rows)(h, W1it, W1jt, W1i, W1j, b1, Pt, St, gPt, gSt, Q, gQ, qe, rep, x, recv, send, Wr, W2t, W2, b2, Wc1t, Wc1, bc1, Wc2, Gm, Gt, gh, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, tW1i, tW1j, tb1, N, R, E, 16, 3, act, unit, clampv, r0, r1, RT);
                else
                    F(eg_bwd_rows)(h, W1it, W1jt, W1i, W1j, b1, Pt, St, gPt, gSt, Q, gQ, qe, rep, x, recv, send, Wr, W2t, W2, b2, Wc1t, Wc1, bc1, Wc2, Gm, Gt, gh, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, tW1i, tW1j, tb1, N, R, E, 16, D, act, unit, clampv, r0, r1, RT);
                break;
        }
    }
    F(sum_threads)(gblock, buf, per, nblock, nthreads);
    free(buf);
    free(scratch);
    return 0;
}
