/* The per-edge part of a single-channel EGNN layer, forward and backward (graphdyn.nn.egnn_native).
 *
 * The same function as graphdyn/nn/egnn_fused.py (its docstring has the math and the
 * hand-derived backward), for node-major tensors P, S [N, R, H], x [N, R, D] (R = all batch
 * rows, e.g. B T) and edges e = (i <- j), per row r:
 *
 *     d = x_ir - x_jr    q = |d|^2    z1 = P_ir + S_jr + Wr q    m = act(W2 act(z1) + b2)
 *     phi = Wc2 . act(Wc1 m + bc1)    t = clamp(u phi)  (u = d, or d / |d| with unit)
 *     M_ir += m    X_ir += t
 *
 * Threads own ranges of rows r, so every write to M, X and the input gradients of a row comes
 * from one thread; weight gradients go to per-thread buffers summed in thread order. Weight
 * matrices come in both layouts (W [out, in] and Wt [in, out]) so that every loop runs over
 * contiguous memory. clampv < 0: no clamp. Both functions return 0, 1 when memory ran out, or 2
 * when D > EGNN_MAXD.
 */

#define EGNN_MAXD 8 /* spatial dimension bound (D is 1, 2 or 3) */

/* y[0:H] = b + Wt^T v  (Wt [H_in = H, H_out = H]) */
static inline __attribute__((always_inline)) void F(eg_lin)(real *restrict y, const real *restrict v,
                                                          const real *restrict Wt, const real *restrict b, int64_t H) {
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) y[k] = b ? b[k] : 0;
    for (int64_t q = 0; q < H; ++q) {
        const real vq = v[q], *restrict w = Wt + q * H;
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) y[k] += w[k] * vq;
    }
}

/* Forward values of one edge row; everything the backward needs. */
struct F(eg_row) {
    real d[EGNN_MAXD], q, n, phi;
};

static inline __attribute__((always_inline)) void F(eg_forward_row)(
    const real *restrict Pi, const real *restrict Sj, const real *restrict Qe, const real *restrict xi, const real *restrict xj,
    const real *restrict Wr, const real *restrict W2t, const real *restrict b2, const real *restrict Wc1t,
    const real *restrict bc1, const real *restrict Wc2, int64_t H, int64_t D, int act, int coords, int unit,
    struct F(eg_row) *row, real *restrict z1, real *restrict a1, real *restrict z2, real *restrict m,
    real *restrict z3, real *restrict a3) {
    real q = 0;
    row->phi = 0;
    row->n = 1;
    for (int64_t c = 0; c < D; ++c) {
        row->d[c] = xi[c] - xj[c];
        q += row->d[c] * row->d[c];
    }
    row->q = q;
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) z1[k] = Pi[k] + Sj[k] + Wr[k] * q;
    if (Qe)
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) z1[k] += Qe[k];
    F(act_apply)(a1, z1, H, act);
    F(eg_lin)(z2, a1, W2t, b2, H);
    F(act_apply)(m, z2, H, act);
    if (!coords) return;
    F(eg_lin)(z3, m, Wc1t, bc1, H);
    F(act_apply)(a3, z3, H, act);
    real phi = 0;
#pragma omp simd reduction(+ : phi)
    for (int64_t k = 0; k < H; ++k) phi += Wc2[k] * a3[k];
    row->phi = phi;
    row->n = unit ? SQRT(q) : (real)1;
}

static inline __attribute__((always_inline)) void F(eg_fwd_rows)(
    const real *P, const real *S, const real *Q, int64_t qe, int64_t rep, const real *x, const int64_t *recv, const int64_t *send, const real *Wr,
    const real *W2t, const real *b2, const real *Wc1t, const real *bc1, const real *Wc2, real *aggm, real *aggt,
    int64_t R, int64_t E, int64_t H, int64_t D, int act, int unit, real clampv, int64_t r0, int64_t r1) {
    const int coords = aggt != NULL;
    real z1[H], a1[H], z2[H], m[H], z3[H], a3[H];
    struct F(eg_row) row;
    for (int64_t e = 0; e < E; ++e) {
        const int64_t i = recv[e], j = send[e];
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t ir = i * R + r, jr = j * R + r;
            F(eg_forward_row)(P + ir * H, S + jr * H, Q ? Q + e * qe + r / rep * H : NULL, x + ir * D, x + jr * D, Wr,
                              W2t, b2, Wc1t, bc1, Wc2, H, D, act, coords, unit, &row, z1, a1, z2, m, z3, a3);
            real *restrict am = aggm + ir * H;
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) am[k] += m[k];
            if (coords) {
                real *restrict at = aggt + ir * D;
                for (int64_t c = 0; c < D; ++c) {
                    real t = row.d[c] / row.n * row.phi;
                    if (clampv >= 0) t = t > clampv ? clampv : (t < -clampv ? -clampv : t);
                    at[c] += t;
                }
            }
        }
    }
}

/* aggm [N, R, H] and aggt [N, R, D] (NULL: no coordinate update) are written here. Q (or NULL):
 * edge-attribute projections [Eq, R / rep, H], row r of edge e at Q + e qe + (r / rep) H (qe = 0:
 * shared by all edges); threads own whole groups of rep rows, so gQ needs no locks. */
int F(egnn_edges_fwd)(const real *P, const real *S, const real *Q, int64_t qe, int64_t rep, const real *x, const int64_t *recv, const int64_t *send,
                      const real *Wr, const real *W2t, const real *b2, const real *Wc1t, const real *bc1,
                      const real *Wc2, real *aggm, real *aggt, int64_t N, int64_t R, int64_t E, int64_t H, int64_t D,
                      int act, int unit, real clampv, int nthreads) {
    if (D > EGNN_MAXD) return 2;
    memset(aggm, 0, sizeof(real) * N * R * H);
    if (aggt) memset(aggt, 0, sizeof(real) * N * R * D);
#pragma omp parallel num_threads(nthreads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t nq = R / rep, r0 = nq * t / nt * rep, r1 = nq * (t + 1) / nt * rep;
        switch (H) {
            case 16: F(eg_fwd_rows)(P, S, Q, qe, rep, x, recv, send, Wr, W2t, b2, Wc1t, bc1, Wc2, aggm, aggt, R, E, 16, D, act, unit, clampv, r0, r1); break;
            case 32: F(eg_fwd_rows)(P, S, Q, qe, rep, x, recv, send, Wr, W2t, b2, Wc1t, bc1, Wc2, aggm, aggt, R, E, 32, D, act, unit, clampv, r0, r1); break;
            case 64: F(eg_fwd_rows)(P, S, Q, qe, rep, x, recv, send, Wr, W2t, b2, Wc1t, bc1, Wc2, aggm, aggt, R, E, 64, D, act, unit, clampv, r0, r1); break;
            default: F(eg_fwd_rows)(P, S, Q, qe, rep, x, recv, send, Wr, W2t, b2, Wc1t, bc1, Wc2, aggm, aggt, R, E, H, D, act, unit, clampv, r0, r1);
        }
    }
    return 0;
}

/* g[0:H] += W^T v with W [H_out = H, H_in = H] row-major: rank-1 updates over W's rows */
static inline __attribute__((always_inline)) void F(eg_lin_t)(real *restrict g, const real *restrict v,
                                                            const real *restrict W, int64_t H) {
    for (int64_t k = 0; k < H; ++k) {
        const real vk = v[k], *restrict w = W + k * H;
#pragma omp simd
        for (int64_t q = 0; q < H; ++q) g[q] += w[q] * vk;
    }
}

#define EGNN_ROW_BLOCK 16 /* edge rows whose weight-gradient outer products are summed together */

/* gW [H, H] += sum_b g_b (x) v_b over nb stashed rows (g, v [nb, H]): each gW row is loaded and
 * stored once per block instead of once per edge row */
static inline __attribute__((always_inline)) void F(eg_outer_flush)(real *restrict gW, const real *restrict g,
                                                                  const real *restrict v, int64_t nb, int64_t H) {
    for (int64_t k = 0; k < H; ++k) {
        real acc[H];
#pragma omp simd
        for (int64_t q = 0; q < H; ++q) acc[q] = 0;
        for (int64_t b = 0; b < nb; ++b) {
            const real gk = g[b * H + k], *restrict vb = v + b * H;
#pragma omp simd
            for (int64_t q = 0; q < H; ++q) acc[q] += gk * vb[q];
        }
        real *restrict row = gW + k * H;
#pragma omp simd
        for (int64_t q = 0; q < H; ++q) row[q] += acc[q];
    }
}

static inline __attribute__((always_inline)) void F(eg_bwd_rows)(
    const real *P, const real *S, const real *Q, real *gQ, int64_t qe, int64_t rep, const real *x, const int64_t *recv, const int64_t *send, const real *Wr,
    const real *W2t, const real *W2, const real *b2, const real *Wc1t, const real *Wc1, const real *bc1,
    const real *Wc2, const real *Gm, const real *Gt, real *gP, real *gS, real *gx, real *tWr, real *tW2, real *tb2,
    real *tWc1, real *tbc1, real *tWc2, int64_t R, int64_t E, int64_t H, int64_t D, int act, int unit, real clampv,
    int64_t r0, int64_t r1) {
    const int coords = Gt != NULL;
    real z1[H], a1[H], z2[H], m[H], z3[H], a3[H], gm[H], ga[H], gz[H];
    /* stashed (gradient, input) rows of the two H x H weights, flushed every EGNN_ROW_BLOCK rows */
    real s2g[EGNN_ROW_BLOCK * H], s2v[EGNN_ROW_BLOCK * H], scg[EGNN_ROW_BLOCK * H], scv[EGNN_ROW_BLOCK * H];
    int64_t ns = 0;
    struct F(eg_row) row;
    for (int64_t e = 0; e < E; ++e) {
        const int64_t i = recv[e], j = send[e];
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t ir = i * R + r, jr = j * R + r;
            const int64_t qo = e * qe + r / rep * H;
            if (ns == EGNN_ROW_BLOCK) {
                F(eg_outer_flush)(tW2, s2g, s2v, ns, H);
                if (coords) F(eg_outer_flush)(tWc1, scg, scv, ns, H);
                ns = 0;
            }
            F(eg_forward_row)(P + ir * H, S + jr * H, Q ? Q + qo : NULL, x + ir * D, x + jr * D, Wr, W2t, b2, Wc1t, bc1,
                              Wc2, H, D, act, coords, unit, &row, z1, a1, z2, m, z3, a3);
            const real *restrict gmi = Gm + ir * H;
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) gm[k] = gmi[k];
            real gd[EGNN_MAXD];
            for (int64_t c = 0; c < D; ++c) gd[c] = 0;
            if (coords) {
                const real *gt = Gt + ir * D;
                real gtm[EGNN_MAXD], gphi = 0;
                for (int64_t c = 0; c < D; ++c) {
                    const real u = row.d[c] / row.n;
                    const real t = u * row.phi;
                    gtm[c] = (clampv >= 0 && (t > clampv || t < -clampv)) ? (real)0 : gt[c];  /* kept where |t| <= c */
                    gphi += gtm[c] * u;
                }
#pragma omp simd
                for (int64_t k = 0; k < H; ++k) {
                    tWc2[k] += gphi * a3[k];
                    ga[k] = gphi * Wc2[k];
                }
                F(act_mul_grad)(gz, ga, z3, H, act);
#pragma omp simd
                for (int64_t k = 0; k < H; ++k) {
                    scg[ns * H + k] = gz[k];
                    scv[ns * H + k] = m[k];
                }
#pragma omp simd
                for (int64_t k = 0; k < H; ++k) tbc1[k] += gz[k];
                F(eg_lin_t)(gm, gz, Wc1, H);
                if (gx) {
                    real gu[EGNN_MAXD], ug = 0;
                    for (int64_t c = 0; c < D; ++c) {
                        gu[c] = gtm[c] * row.phi;
                        ug += row.d[c] / row.n * gu[c];
                    }
                    for (int64_t c = 0; c < D; ++c) gd[c] = unit ? (gu[c] - row.d[c] / row.n * ug) / row.n : gu[c];
                }
            }
            F(act_mul_grad)(gz, gm, z2, H, act);  /* g_z2 */
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) {
                s2g[ns * H + k] = gz[k];
                s2v[ns * H + k] = a1[k];
            }
            ++ns;
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) {
                tb2[k] += gz[k];
                ga[k] = 0;
            }
            F(eg_lin_t)(ga, gz, W2, H);  /* g_a1 = W2^T g_z2 */
            F(act_mul_grad)(gz, ga, z1, H, act);  /* g_z1 */
            real gq = 0;
#pragma omp simd reduction(+ : gq)
            for (int64_t k = 0; k < H; ++k) {
                tWr[k] += gz[k] * row.q;
                gq += gz[k] * Wr[k];
            }
            if (gP) {
                real *restrict g = gP + ir * H;
#pragma omp simd
                for (int64_t k = 0; k < H; ++k) g[k] += gz[k];
            }
            if (gS) {
                real *restrict g = gS + jr * H;
#pragma omp simd
                for (int64_t k = 0; k < H; ++k) g[k] += gz[k];
            }
            if (gQ) {
                real *restrict g = gQ + qo;
#pragma omp simd
                for (int64_t k = 0; k < H; ++k) g[k] += gz[k];
            }
            if (gx)
                for (int64_t c = 0; c < D; ++c) {
                    const real g = gd[c] + 2 * row.d[c] * gq;
                    gx[ir * D + c] += g;
                    gx[jr * D + c] -= g;
                }
        }
    }
    F(eg_outer_flush)(tW2, s2g, s2v, ns, H);
    if (coords) F(eg_outer_flush)(tWc1, scg, scv, ns, H);
}

/* Gt NULL: no coordinate update. gP, gS, gx, gQ (zeroed by the caller) may be NULL. Weight gradients
 * are written into gblock = [gWr (H), gW2 (H H), gb2 (H), gWc1 (H H), gbc1 (H), gWc2 (H)]. */
int F(egnn_edges_bwd)(const real *P, const real *S, const real *Q, real *gQ, int64_t qe, int64_t rep, const real *x, const int64_t *recv, const int64_t *send,
                      const real *Wr, const real *W2t, const real *W2, const real *b2, const real *Wc1t,
                      const real *Wc1, const real *bc1, const real *Wc2, const real *Gm, const real *Gt, real *gP,
                      real *gS, real *gx, real *gblock, int64_t N, int64_t R, int64_t E, int64_t H, int64_t D, int act,
                      int unit, real clampv, int nthreads) {
    if (D > EGNN_MAXD) return 2;
    (void)N;
    const int64_t nblock = 2 * H * H + 4 * H, per = F(padded)(nblock);
    if (nthreads < 1) nthreads = 1;
    real *buf = F(zeroed)(per * nthreads);
    if (!buf) return 1;
#pragma omp parallel num_threads(nthreads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t nq = R / rep, r0 = nq * t / nt * rep, r1 = nq * (t + 1) / nt * rep;
        real *tWr = buf + t * per, *tW2 = tWr + H, *tb2 = tW2 + H * H, *tWc1 = tb2 + H, *tbc1 = tWc1 + H * H,
             *tWc2 = tbc1 + H;
        switch (H) {
            case 16: F(eg_bwd_rows)(P, S, Q, gQ, qe, rep, x, recv, send, Wr, W2t, W2, b2, Wc1t, Wc1, bc1, Wc2, Gm, Gt, gP, gS, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, R, E, 16, D, act, unit, clampv, r0, r1); break;
            case 32: F(eg_bwd_rows)(P, S, Q, gQ, qe, rep, x, recv, send, Wr, W2t, W2, b2, Wc1t, Wc1, bc1, Wc2, Gm, Gt, gP, gS, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, R, E, 32, D, act, unit, clampv, r0, r1); break;
            case 64: F(eg_bwd_rows)(P, S, Q, gQ, qe, rep, x, recv, send, Wr, W2t, W2, b2, Wc1t, Wc1, bc1, Wc2, Gm, Gt, gP, gS, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, R, E, 64, D, act, unit, clampv, r0, r1); break;
            default: F(eg_bwd_rows)(P, S, Q, gQ, qe, rep, x, recv, send, Wr, W2t, W2, b2, Wc1t, Wc1, bc1, Wc2, Gm, Gt, gP, gS, gx, tWr, tW2, tb2, tWc1, tbc1, tWc2, R, E, H, D, act, unit, clampv, r0, r1);
        }
    }
    memset(gblock, 0, sizeof(real) * nblock);
    for (int t = 0; t < nthreads; ++t) {
        const real *tb = buf + t * per;
        for (int64_t q = 0; q < nblock; ++q) gblock[q] += tb[q];
    }
    free(buf);
    return 0;
}
