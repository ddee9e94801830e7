/* ESTAG's temporal attention (ETM), forward and backward, one node row at a time
 * (graphdyn.ops.temporal_attention, which registers it as the custom ops graphdyn::temporal_attention[_backward]).
 *
 * The same function as the op's reference (its module docstring has the math). Per row r (one node of one graph) of h [R, T, H] and
 * x [R, T, C, D] (C = 1 for single-channel coordinates), with g = 0, 1, 2 for q, k, v:
 *
 *     [q|k|v]_g(t) = act(W2_g act(W1_g h(t) + b1_g) + b2_g)
 *     alpha(t, s)  = softmax_s(q(t) . k(s))          (s <= t when causal; masked entries are 0)
 *     h'(t)        = h(t) + sum_s alpha(t, s) v(s)
 *     phi(s, c)    = Wc2_c . act(Wc1 v(s) + bc1)
 *     y(t)         = x(t) - x(T-1),   beta_c(t, s) = alpha(t, s) phi(s, c)
 *     x'(t, c)     = x(t, c) + sign (sum_s beta_c(t, s) y(s, c) - y(t, c) sum_s beta_c(t, s))
 *
 * Threads own ranges of rows, so every write to the outputs and input gradients of a row comes
 * from one thread; weight gradients go to per-thread buffers summed in thread order (reruns are
 * bit-identical for a given thread count). A thread keeps one row's intermediates (about 30 T H
 * reals) in its scratch buffer, and the backward recomputes them. Weights come as blocks
 * [3, H, H] in both layouts (W and its per-block transpose Wt) so that every loop reads
 * contiguous memory. Only hidden width 16 (ESTAG's) is compiled. Both functions return 0, 1 when
 * memory ran out, or 2 for another width, or C > AT_MAXC, or D > AT_MAXD.
 */

/* AT_MAXC: native/__init__.py LIMITS */
/* AT_MAXD: native/__init__.py LIMITS */

/* one row's forward values, pointers into the thread's scratch */
struct F(at_row) {
    real *z1, *a1, *z2, *a2; /* [3, T, H]: pre-activations and activations of the two layers */
    real *alpha;             /* [T, T] */
    real *zc, *ac;           /* [T, H]: the coordinate MLP's hidden layer */
    real *phi;               /* [T, C] */
    real *y;                 /* [T, C, D] */
    real *bsum;              /* [C, T]: sum_s beta_c(t, s) */
    real *k1, *k2, *kc;      /* [3, T, H], [3, T, H], [T, H]: the activations' derivative terms
                              * (act_apply_keep), kept by the backward pass's recomputation */
};

static inline int64_t F(at_fwd_size)(int64_t T, int64_t H, int64_t C, int64_t D) {
    return 21 * T * H + T * T + T * C + T * C * D + C * T;
}

static inline void F(at_carve)(struct F(at_row) *w, real *p, int64_t T, int64_t H, int64_t C, int64_t D) {
    w->z1 = p, p += 3 * T * H;
    w->a1 = p, p += 3 * T * H;
    w->z2 = p, p += 3 * T * H;
    w->a2 = p, p += 3 * T * H;
    w->alpha = p, p += T * T;
    w->zc = p, p += T * H;
    w->ac = p, p += T * H;
    w->phi = p, p += T * C;
    w->y = p, p += T * C * D;
    w->bsum = p, p += C * T;
    w->k1 = p, p += 3 * T * H;
    w->k2 = p, p += 3 * T * H;
    w->kc = p;
}

static inline __attribute__((always_inline)) void F(at_forward_row)(
    const real *restrict h, const real *restrict x, const real *W1t, const real *b1, const real *W2t, const real *b2,
    const real *Wc1t, const real *bc1, const real *Wc2, int64_t T, int64_t H, int64_t C, int64_t D, int act,
    int causal, int keep, const struct F(at_row) *w) {
    const int64_t TH = T * H, CD = C * D;
    for (int g = 0; g < 3; ++g) {
        F(lin_rows)(w->z1 + g * TH, h, W1t + g * H * H, b1 + g * H, T, H, H);
        if (keep) F(act_apply_keep)(w->a1 + g * TH, w->k1 + g * TH, w->z1 + g * TH, TH, act);
        else F(act_apply)(w->a1 + g * TH, w->z1 + g * TH, TH, act);
        F(lin_rows)(w->z2 + g * TH, w->a1 + g * TH, W2t + g * H * H, b2 + g * H, T, H, H);
        if (keep) F(act_apply_keep)(w->a2 + g * TH, w->k2 + g * TH, w->z2 + g * TH, TH, act);
        else F(act_apply)(w->a2 + g * TH, w->z2 + g * TH, TH, act);
    }
    const real *restrict q = w->a2, *restrict k = w->a2 + TH, *restrict v = w->a2 + 2 * TH;
    for (int64_t t = 0; t < T; ++t) {
        const int64_t ns = causal ? t + 1 : T;
        real *restrict al = w->alpha + t * T, mx = 0;
        for (int64_t s = 0; s < ns; ++s) {
            real dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int64_t c = 0; c < H; ++c) dot += q[t * H + c] * k[s * H + c];
            al[s] = dot;
            mx = (s == 0 || dot > mx) ? dot : mx;
        }
        real sum = 0;
        for (int64_t s = 0; s < ns; ++s) {
            al[s] = EXP(al[s] - mx);
            sum += al[s];
        }
        const real inv = (real)1 / sum;
        for (int64_t s = 0; s < ns; ++s) al[s] *= inv;
        for (int64_t s = ns; s < T; ++s) al[s] = 0;
    }
    F(lin_rows)(w->zc, v, Wc1t, bc1, T, H, H);
    if (keep) F(act_apply_keep)(w->ac, w->kc, w->zc, TH, act);
    else F(act_apply)(w->ac, w->zc, TH, act);
    for (int64_t s = 0; s < T; ++s)
        for (int64_t c = 0; c < C; ++c) {
            real p = 0;
#pragma omp simd reduction(+ : p)
            for (int64_t k2 = 0; k2 < H; ++k2) p += Wc2[c * H + k2] * w->ac[s * H + k2];
            w->phi[s * C + c] = p;
        }
    const real *restrict xl = x + (T - 1) * CD;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t e = 0; e < CD; ++e) w->y[t * CD + e] = x[t * CD + e] - xl[e];
    for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < T; ++t) {
            real b = 0;
            for (int64_t s = 0; s < T; ++s) b += w->alpha[t * T + s] * w->phi[s * C + c];
            w->bsum[c * T + t] = b;
        }
}

static inline __attribute__((always_inline)) void F(at_fwd_rows)(
    const real *h, const real *x, const real *W1t, const real *b1, const real *W2t, const real *b2, const real *Wc1t,
    const real *bc1, const real *Wc2, real *hout, real *xout, int64_t T, int64_t H, int64_t C, int64_t D, int act,
    int causal, real sign, real *scratch, int64_t r0, int64_t r1) {
    const int64_t CD = C * D;
    struct F(at_row) w;
    F(at_carve)(&w, scratch, T, H, C, D);
    real *restrict yp = scratch + F(at_fwd_size)(T, H, C, D); /* [T, C, D]: phi(s, c) y(s, c) */
    for (int64_t r = r0; r < r1; ++r) {
        const real *hr = h + r * T * H, *xr = x + r * T * CD;
        F(at_forward_row)(hr, xr, W1t, b1, W2t, b2, Wc1t, bc1, Wc2, T, H, C, D, act, causal, 0, &w);
        const real *restrict v = w.a2 + 2 * T * H;
        real *restrict ho = hout + r * T * H, *restrict xo = xout + r * T * CD;
        F(lin_core)(ho, hr, H, w.alpha, v, T, T, H); /* h' = h + alpha v */
        for (int64_t s = 0; s < T; ++s)
            for (int64_t c = 0; c < C; ++c)
                for (int64_t d = 0; d < D; ++d) yp[s * CD + c * D + d] = w.phi[s * C + c] * w.y[s * CD + c * D + d];
        for (int64_t t = 0; t < T; ++t) { /* sum_s beta_c(t, s) y(s, c) = sum_s alpha(t, s) yp(s, c): rows of C D */
            real *restrict o = xo + t * CD;
#pragma omp simd
            for (int64_t e = 0; e < CD; ++e) o[e] = 0;
            for (int64_t s = 0; s < T; ++s) {
                const real a = w.alpha[t * T + s];
#pragma omp simd
                for (int64_t e = 0; e < CD; ++e) o[e] += a * yp[s * CD + e];
            }
            for (int64_t c = 0; c < C; ++c)
                for (int64_t d = 0; d < D; ++d) {
                    const int64_t e = t * CD + c * D + d;
                    xo[e] = xr[e] + sign * (xo[e] - w.y[e] * w.bsum[c * T + t]);
                }
        }
    }
}

/* hout [R, T, H] and xout [R, T, C, D] are written here. W1t, W2t: the three blocks W1_g^T,
 * W2_g^T [3, H, H]; b1, b2 [3 H]; Wc1t [H, H] (transposed); bc1 [H]; Wc2 [C, H]. */
int F(attention_fwd)(const real *h, const real *x, const real *W1t, const real *b1, const real *W2t, const real *b2,
                     const real *Wc1t, const real *bc1, const real *Wc2, real *hout, real *xout, int64_t R, int64_t T,
                     int64_t H, int64_t C, int64_t D, int act, int causal, real sign, int nthreads) {
    if (H != 16 || C < 1 || C > AT_MAXC || D < 1 || D > AT_MAXD || T < 1) return 2;
    if (nthreads < 1) nthreads = 1;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t r0 = R * t / nt, r1 = R * (t + 1) / nt;
        real *scratch = F(zeroed)(F(at_fwd_size)(T, H, C, D) + T * C * D);
        if (!scratch)
            failed = 1;
        else {
            switch (H) {
                case 16: /* single-channel 3-D coordinates get their own constant-size copy */
                    if (C == 1 && D == 3)
                        F(at_fwd_rows)(h, x, W1t, b1, W2t, b2, Wc1t, bc1, Wc2, hout, xout, T, 16, 1, 3, act, causal, sign, scratch, r0, r1);
                    else if (C == 4 && D == 3)
                        F(at_fwd_rows)(h, x, W1t, b1, W2t, b2, Wc1t, bc1, Wc2, hout, xout, T, 16, 4, 3, act, causal, sign, scratch, r0, r1);
                    else
                        F(at_fwd_rows)(h, x, W1t, b1, W2t, b2, Wc1t, bc1, Wc2, hout, xout, T, 16, C, D, act, causal, sign, scratch, r0, r1);
                    break;
            }
            free(scratch);
        }
    }
    return failed ? 1 : 0;
}

static inline __attribute__((always_inline)) void F(at_bwd_rows)(
    const real *h, const real *x, const real *W1t, const real *W1, const real *b1, const real *W2t, const real *W2,
    const real *b2, const real *Wc1t, const real *Wc1, const real *bc1, const real *Wc2, const real *gH,
    const real *gX, real *gh, real *gx, real *tW1, real *tb1, real *tW2, real *tb2, real *tWc1, real *tbc1,
    real *tWc2, int64_t T, int64_t H, int64_t C, int64_t D, int act, int causal, real sign, real *scratch, int64_t r0,
    int64_t r1) {
    const int64_t TH = T * H, CD = C * D;
    struct F(at_row) w;
    F(at_carve)(&w, scratch, T, H, C, D);
    real *p = scratch + F(at_fwd_size)(T, H, C, D);
    real *ga2 = p; p += 3 * TH; /* g_q, g_k, g_v */
    real *gz = p; p += 3 * TH;  /* g_z2, then g_z1 */
    real *ga1 = p; p += 3 * TH;
    real *gac = p; p += TH;
    real *gzc = p; p += TH;
    real *galpha = p; p += T * T;
    real *gphi = p; p += T * C;
    real *gy = p; p += T * CD;
    real *gd = p; p += T * CD;
    real *at = p; p += T * T; /* alpha^T */
    real *gst = p; p += T * T; /* g_S^T */
    real *yp = p; p += T * CD;
    real *ag = p; p += T * CD;
    real *dd = p; p += T * C;
    real *ad = p;
    for (int64_t r = r0; r < r1; ++r) {
        const real *restrict hr = h + r * TH, *restrict xr = x + r * T * CD;
        const real *restrict gHr = gH ? gH + r * TH : NULL, *restrict gXr = gX + r * T * CD; /* gH NULL: g_h' = 0 */
        F(at_forward_row)(hr, xr, W1t, b1, W2t, b2, Wc1t, bc1, Wc2, T, H, C, D, act, causal, 1, &w);
        const real *restrict q = w.a2, *restrict k = w.a2 + TH, *restrict v = w.a2 + 2 * TH;
        const real *restrict alpha = w.alpha, *restrict phi = w.phi, *restrict y = w.y;
        /* with yp(s) = phi(s, c) y(s, c), dd(t, c) = g_delta(t, c) . y(t, c) and g_delta = sign g_x':
         * g_alpha(t, s) = g_h'(t) . v(s) + sum_c g_beta_c(t, s) phi(s, c)
         *               = g_h'(t) . v(s) + g_delta(t) . yp(s) - phi(s) . dd(t);
         * with ag(s) = sum_t alpha(t, s) g_delta(t), ad(s, c) = sum_t alpha(t, s) dd(t, c):
         * g_phi(s, c) = y(s, c) . ag(s, c) - ad(s, c),  g_y(s, c) = phi(s, c) ag(s, c) - g_delta(s, c) bsum_c(s) */
        for (int64_t e = 0; e < T * CD; ++e) gd[e] = sign * gXr[e];
        for (int64_t s = 0; s < T; ++s)
            for (int64_t c = 0; c < C; ++c) {
                real g = 0;
                for (int64_t d = 0; d < D; ++d) {
                    const int64_t e = s * CD + c * D + d;
                    yp[e] = phi[s * C + c] * y[e];
                    g += gd[e] * y[e];
                }
                dd[s * C + c] = g;
            }
        for (int64_t t = 0; t < T; ++t) {
            const int64_t ns = causal ? t + 1 : T;
            for (int64_t s = 0; s < ns; ++s) {
                real ga = 0;
                if (gHr)
#pragma omp simd reduction(+ : ga)
                    for (int64_t c = 0; c < H; ++c) ga += gHr[t * H + c] * v[s * H + c];
                for (int64_t e = 0; e < CD; ++e) ga += gd[t * CD + e] * yp[s * CD + e];
                for (int64_t c = 0; c < C; ++c) ga -= phi[s * C + c] * dd[t * C + c];
                galpha[t * T + s] = ga;
            }
            for (int64_t s = ns; s < T; ++s) galpha[t * T + s] = 0;
        }
        for (int64_t s = 0; s < T; ++s) {
            real *restrict ags = ag + s * CD, *restrict ads = ad + s * C;
#pragma omp simd
            for (int64_t e = 0; e < CD; ++e) ags[e] = 0;
            for (int64_t c = 0; c < C; ++c) ads[c] = 0;
            for (int64_t t = 0; t < T; ++t) {
                const real a = alpha[t * T + s];
#pragma omp simd
                for (int64_t e = 0; e < CD; ++e) ags[e] += a * gd[t * CD + e];
                for (int64_t c = 0; c < C; ++c) ads[c] += a * dd[t * C + c];
            }
            for (int64_t c = 0; c < C; ++c) {
                real g = -ads[c];
                for (int64_t d = 0; d < D; ++d) {
                    const int64_t e = s * CD + c * D + d;
                    g += y[e] * ags[c * D + d];
                    gy[e] = phi[s * C + c] * ags[c * D + d] - gd[e] * w.bsum[c * T + s];
                }
                gphi[s * C + c] = g;
            }
        }
        if (gx) {
            real *restrict gxr = gx + r * T * CD;
            for (int64_t e = 0; e < T * CD; ++e) gxr[e] = gXr[e] + gy[e];
            for (int64_t t = 0; t < T; ++t)
                for (int64_t e = 0; e < CD; ++e) gxr[(T - 1) * CD + e] -= gy[t * CD + e];
        }
        /* softmax backward, in place: g_S = alpha (g_alpha - rowsum(g_alpha alpha)) */
        for (int64_t t = 0; t < T; ++t) {
            real dot = 0;
            for (int64_t s = 0; s < T; ++s) dot += galpha[t * T + s] * alpha[t * T + s];
            for (int64_t s = 0; s < T; ++s) galpha[t * T + s] = alpha[t * T + s] * (galpha[t * T + s] - dot);
        }
        /* coordinate MLP on v */
        for (int64_t s = 0; s < T; ++s) {
#pragma omp simd
            for (int64_t k2 = 0; k2 < H; ++k2) gac[s * H + k2] = 0;
            for (int64_t c = 0; c < C; ++c) {
                const real g = gphi[s * C + c];
#pragma omp simd
                for (int64_t k2 = 0; k2 < H; ++k2) {
                    gac[s * H + k2] += g * Wc2[c * H + k2];
                    tWc2[c * H + k2] += g * w.ac[s * H + k2];
                }
            }
        }
        F(act_mul_grad_kept)(gzc, gac, w.zc, w.kc, TH, act);
        F(outer_rows)(tWc1, gzc, v, T, H);
        real *restrict gq = ga2, *restrict gk = ga2 + TH, *restrict gv = ga2 + 2 * TH;
        for (int64_t s = 0; s < T; ++s)
#pragma omp simd
            for (int64_t k2 = 0; k2 < H; ++k2) tbc1[k2] += gzc[s * H + k2];
        F(lin_core)(gv, NULL, 0, gzc, Wc1, T, H, H); /* g_v = Wc1^T g_zc */
        for (int64_t t = 0; t < T; ++t)
            for (int64_t s = 0; s < T; ++s) {
                at[s * T + t] = alpha[t * T + s];
                gst[s * T + t] = galpha[t * T + s];
            }
        if (gHr) F(lin_core)(gv, gv, H, at, gHr, T, T, H); /* g_v += alpha^T g_h' */
        F(lin_core)(gq, NULL, 0, galpha, k, T, T, H); /* g_q = g_S k */
        F(lin_core)(gk, NULL, 0, gst, q, T, T, H);    /* g_k = g_S^T q */
        real *restrict ghr = gh ? gh + r * TH : NULL;
        for (int g = 0; g < 3; ++g) {
            real *gz2 = gz + g * TH, *ga1g = ga1 + g * TH;
            F(act_mul_grad_kept)(gz2, ga2 + g * TH, w.z2 + g * TH, w.k2 + g * TH, TH, act);
            F(outer_rows)(tW2 + g * H * H, gz2, w.a1 + g * TH, T, H);
            for (int64_t t = 0; t < T; ++t)
#pragma omp simd
                for (int64_t k2 = 0; k2 < H; ++k2) tb2[g * H + k2] += gz2[t * H + k2];
            F(lin_core)(ga1g, NULL, 0, gz2, W2 + g * H * H, T, H, H); /* g_a1 = W2_g^T g_z2 */
            F(act_mul_grad_kept)(gz2, ga1g, w.z1 + g * TH, w.k1 + g * TH, TH, act); /* now g_z1 of block g */
            F(outer_rows)(tW1 + g * H * H, gz2, hr, T, H);
            for (int64_t t = 0; t < T; ++t)
#pragma omp simd
                for (int64_t k2 = 0; k2 < H; ++k2) tb1[g * H + k2] += gz2[t * H + k2];
            /* g_h = g_h' + sum_g W1_g^T g_z1: the first block starts from g_h' (or from 0) */
            if (ghr) F(lin_core)(ghr, g ? ghr : gHr, H, gz2, W1 + g * H * H, T, H, H);
        }
    }
}

/* gH NULL: a zero incoming gradient of h'. gh [R, T, H], gx [R, T, C, D] (either may be NULL) are
 * written here; weight gradients into gblock = [gW1 (3 H H), gb1 (3 H), gW2 (3 H H), gb2 (3 H), gWc1 (H H), gbc1 (H), gWc2 (C H)] with
 * gW1 [3 H, H] in W1's layout and gW2 as the three diagonal blocks [3, H, H]. */
int F(attention_bwd)(const real *h, const real *x, const real *W1t, const real *W1, const real *b1, const real *W2t,
                     const real *W2, const real *b2, const real *Wc1t, const real *Wc1, const real *bc1,
                     const real *Wc2, const real *gH, const real *gX, real *gh, real *gx, real *gblock, int64_t R,
                     int64_t T, int64_t H, int64_t C, int64_t D, int act, int causal, real sign, int nthreads) {
    if (H != 16 || C < 1 || C > AT_MAXC || D < 1 || D > AT_MAXD || T < 1) return 2;
    if (nthreads < 1) nthreads = 1;
    const int64_t nblock = 6 * H * H + 6 * H + H * H + H + C * H, per = F(padded)(nblock);
    real *buf = F(zeroed)(per * nthreads);
    if (!buf) return 1;
    const int64_t scratch_n = F(at_fwd_size)(T, H, C, D) + 11 * T * H + 3 * T * T + 3 * T * C + 4 * T * C * D;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t r0 = R * t / nt, r1 = R * (t + 1) / nt;
        real *tW1 = buf + t * per, *tb1 = tW1 + 3 * H * H, *tW2 = tb1 + 3 * H, *tb2 = tW2 + 3 * H * H,
             *tWc1 = tb2 + 3 * H, *tbc1 = tWc1 + H * H, *tWc2 = tbc1 + H;
        real *scratch = F(zeroed)(scratch_n);
        if (!scratch)
            failed = 1;
        else {
            switch (H) {
                case 16:
                    if (C == 1 && D == 3)
                        F(at_bwd_rows)(h, x, W1t, W1, b1, W2t, W2, b2, Wc1t, Wc1, bc1, Wc2, gH, gX, gh, gx, tW1, tb1, tW2, tb2, tWc1, tbc1, tWc2, T, 16, 1, 3, act, causal, sign, scratch, r0, r1);
                    else if (C == 4 && D == 3)
                        F(at_bwd_rows)(h, x, W1t, W1, b1, W2t, W2, b2, Wc1t, Wc1, bc1, Wc2, gH, gX, gh, gx, tW1, tb1, tW2, tb2, tWc1, tbc1, tWc2, T, 16, 4, 3, act, causal, sign, scratch, r0, r1);
                    else
                        F(at_bwd_rows)(h, x, W1t, W1, b1, W2t, W2, b2, Wc1t, Wc1, bc1, Wc2, gH, gX, gh, gx, tW1, tb1, tW2, tb2, tWc1, tbc1, tWc2, T, 16, C, D, act, causal, sign, scratch, r0, r1);
                    break;
            }
            free(scratch);
        }
    }
    if (!failed) {
        F(sum_threads)(gblock, buf, per, nblock, nthreads);
    }
    free(buf);
    return failed ? 1 : 0;
}
