/* EGNN's residual node update, forward and backward (graphdyn.ops.node_update).
 *
 * For rows r of h, g [rows, H] (node-major, rows = nodes x batch entries) and projected extra
 * node inputs q [rows / rep, H] (row r reads q row r / rep; NULL: none)::
 *
 *     z  = Wh h + Wg g + q + b1,     h' = h + W2 act(z) + b2
 *
 * Backward (g_o = dL/dh'): g_z = act'(z) (W2^T g_o); g_h = g_o + Wh^T g_z; g_g = Wg^T g_z;
 * g_q = sum of g_z over its rep rows; weight gradients are outer products over rows.
 *
 * Rows go in blocks of NU_RB through the register-blocked lin_core; threads own ranges of
 * whole rep-groups of rows (so each q row has one writer) and sum weight gradients in
 * per-thread buffers, added in thread order. The backward recomputes z. Only hidden width 16
 * (ESTAG's) is compiled: both functions return 0, 1 when memory ran out, or 2 for another width.
 */

#define NU_RB 16

static inline __attribute__((always_inline)) void F(nu_pre)(real *restrict z, const real *h, const real *g,
                                                          const real *q, int64_t rep, int64_t r0, const real *Wht,
                                                          const real *Wgt, const real *b1, int64_t nb, int64_t H) {
    F(lin_core)(z, b1, 0, h, Wht, nb, H, H);
    F(lin_core)(z, z, H, g, Wgt, nb, H, H);
    if (q)
        for (int64_t b = 0; b < nb; ++b) {
            const real *restrict qb = q + (r0 + b) / rep * H;
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) z[b * H + k] += qb[k];
        }
}

static inline __attribute__((always_inline)) void F(nu_fwd_rows)(const real *h, const real *g, const real *q,
                                                               int64_t rep, const real *Wht, const real *Wgt,
                                                               const real *b1, const real *W2t, const real *b2,
                                                               real *out, int64_t H, int act, int64_t r0, int64_t r1) {
    real z[NU_RB * H], a[NU_RB * H];
    for (int64_t r = r0; r < r1; r += NU_RB) {
        const int64_t nb = r1 - r < NU_RB ? r1 - r : NU_RB;
        F(nu_pre)(z, h + r * H, g + r * H, q, rep, r, Wht, Wgt, b1, nb, H);
        F(act_apply)(a, z, nb * H, act);
        real *o = out + r * H;
        F(lin_core)(o, b2, 0, a, W2t, nb, H, H);
        const real *restrict hr = h + r * H;
#pragma omp simd
        for (int64_t k = 0; k < nb * H; ++k) o[k] += hr[k];
    }
}

/* out [rows, H] is written. Wht, Wgt, W2t: the transposed [H, H] weights. */
int F(node_update_fwd)(const real *h, const real *g, const real *q, int64_t rep, const real *Wht, const real *Wgt,
                       const real *b1, const real *W2t, const real *b2, real *out, int64_t rows, int64_t H, int act,
                       int nthreads) {
    if (H != 16 || rep < 1) return 2;
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel num_threads(nthreads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t ng = rows / rep, r0 = ng * t / nt * rep, r1 = ng * (t + 1) / nt * rep;
        switch (H) {
            case 16: F(nu_fwd_rows)(h, g, q, rep, Wht, Wgt, b1, W2t, b2, out, 16, act, r0, r1); break;
        }
    }
    return 0;
}

static inline __attribute__((always_inline)) void F(nu_bwd_rows)(
    const real *h, const real *g, const real *q, int64_t rep, const real *Wht, const real *Wh, const real *Wgt,
    const real *Wg, const real *b1, const real *W2, const real *gO, real *gh, real *gg, real *gq, real *tWh,
    real *tWg, real *tb1, real *tW2, real *tb2, int64_t H, int act, int64_t r0, int64_t r1) {
    real z[NU_RB * H], a[NU_RB * H], ga[NU_RB * H], gz[NU_RB * H], kept[NU_RB * H];
    for (int64_t r = r0; r < r1; r += NU_RB) {
        const int64_t nb = r1 - r < NU_RB ? r1 - r : NU_RB;
        const real *hr = h + r * H, *gr = g + r * H, *gOr = gO + r * H;
        F(nu_pre)(z, hr, gr, q, rep, r, Wht, Wgt, b1, nb, H);
        F(act_apply_keep)(a, kept, z, nb * H, act); /* the derivative reuses the sigmoid (silu) */
        F(outer_rows)(tW2, gOr, a, nb, H);
        F(lin_core)(ga, NULL, 0, gOr, W2, nb, H, H); /* W2^T g_o */
        F(act_mul_grad_kept)(gz, ga, z, kept, nb * H, act);
        F(outer_rows)(tWh, gz, hr, nb, H);
        F(outer_rows)(tWg, gz, gr, nb, H);
        for (int64_t b = 0; b < nb; ++b)
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) {
                tb2[k] += gOr[b * H + k];
                tb1[k] += gz[b * H + k];
            }
        if (gh) F(lin_core)(gh + r * H, gOr, H, gz, Wh, nb, H, H);
        if (gg) F(lin_core)(gg + r * H, NULL, 0, gz, Wg, nb, H, H);
        if (gq)
            for (int64_t b = 0; b < nb; ++b) {
                real *restrict qb = gq + (r + b) / rep * H;
#pragma omp simd
                for (int64_t k = 0; k < H; ++k) qb[k] += gz[b * H + k];
            }
    }
}

/* gh, gg [rows, H] are written (either may be NULL); gq [rows / rep, H] (zeroed by the caller,
 * may be NULL) is accumulated; weight gradients go to gblock = [gWh (H H), gWg (H H), gb1 (H),
 * gW2 (H H), gb2 (H)]. Wh, Wg, W2 [H, H] in the layout of nn.Linear. */
int F(node_update_bwd)(const real *h, const real *g, const real *q, int64_t rep, const real *Wht, const real *Wh,
                       const real *Wgt, const real *Wg, const real *b1, const real *W2, const real *gO, real *gh,
                       real *gg, real *gq, real *gblock, int64_t rows, int64_t H, int act, int nthreads) {
    if (H != 16 || rep < 1) return 2;
    if (nthreads < 1) nthreads = 1;
    const int64_t nblock = 3 * H * H + 2 * H, per = F(padded)(nblock);
    real *buf = F(zeroed)(per * nthreads);
    if (!buf) return 1;
#pragma omp parallel num_threads(nthreads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t ng = rows / rep, r0 = ng * t / nt * rep, r1 = ng * (t + 1) / nt * rep;
        real *tWh = buf + t * per, *tWg = tWh + H * H, *tb1 = tWg + H * H, *tW2 = tb1 + H, *tb2 = tW2 + H * H;
        switch (H) {
            case 16: F(nu_bwd_rows)(h, g, q, rep, Wht, Wh, Wgt, Wg, b1, W2, gO, gh, gg, gq, tWh, tWg, tb1, tW2, tb2, 16, act, r0, r1); break;
        }
    }
    F(sum_threads)(gblock, buf, per, nblock, nthreads);
    free(buf);
    return 0;
}
