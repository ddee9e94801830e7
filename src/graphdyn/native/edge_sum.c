/* Edge MLP first layer + activation + sum over incoming edges, fused (graphdyn.nn.edge_sum_native).
 *
 * For every graph b and directed edge e = (i <- j), with D = 2F + K inputs and H outputs:
 *
 *     z_e   = W [h_bj, h_bi, a_be] + bias          (W stored transposed: Wt [D, H])
 *     S_bi += act(z_e)                              (S [B, N, H])
 *
 * With node features (nf) the output rows are [h_bi, S_bi, deg_i] ([B, N, F + H + 1], deg_i the
 * number of edges into i): the input of a node MLP, assembled without a concatenation pass.
 *
 * and the backward pass for an upstream gradient gS [B, N, H], recomputing z_e:
 *
 *     g_e    = gS_bi * act'(z_e)                    [H]
 *     gWt   += [h_bj, h_bi, a_be] (x) g_e           [D, H]     gbias += g_e
 *     gh_bj += (W^T g_e)[0:F]   gh_bi += (W^T g_e)[F:2F]   ga_be = (W^T g_e)[2F:]
 *
 * Written once over `real` / F(name); the loader emits it for float (_f32) and double (_f64).
 * Graphs are split over OpenMP threads; each thread accumulates the weight gradients (and the
 * gradient of edge attributes shared by all graphs) in its own buffer, and the buffers are
 * summed in thread order afterwards, so results do not depend on scheduling.
 * act: 0 relu, 1 silu, 2 tanh (common.c). Both return 0, or 1 when memory ran out.
 */
/* z[0:H] = bias + Wt^T [h_j, h_i, a] */
static inline __attribute__((always_inline)) void F(edge_pre)(real *restrict z, const real *restrict hj, const real *restrict hi,
                                                            const real *restrict a, const real *restrict Wt,
                                                            const real *restrict bias, int64_t Fd, int64_t K, int64_t H) {
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) z[k] = bias[k];
    for (int64_t d = 0; d < Fd; ++d) {
        const real v = hj[d], *restrict w = Wt + d * H;
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) z[k] += w[k] * v;
    }
    for (int64_t d = 0; d < Fd; ++d) {
        const real v = hi[d], *restrict w = Wt + (Fd + d) * H;
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) z[k] += w[k] * v;
    }
    for (int64_t d = 0; d < K; ++d) {
        const real v = a[d], *restrict w = Wt + (2 * Fd + d) * H;
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) z[k] += w[k] * v;
    }
}

/* One graph's forward pass into its output rows ob [N, ow]: S at columns so..so+H-1 and, with
 * node features (nf), h in columns 0..F-1 and the in-degree in column F+H. Every element of the
 * rows is written here. Inlined into a switch on H below, so that the common widths get loops
 * with a constant trip count (fully unrolled). */
static inline __attribute__((always_inline)) void F(fwd_graph)(const real *hb, const real *eab, const int64_t *recv,
                                                             const int64_t *send, const real *Wt, const real *bias,
                                                             real *ob, int64_t N, int64_t E, int64_t Fd, int64_t K,
                                                             int64_t H, int nf, int act, real *z) {
    const int64_t ow = nf ? Fd + H + 1 : H, so = nf ? Fd : 0;
    for (int64_t n = 0; n < N; ++n) {
        real *row = ob + n * ow;
        if (nf) {
            for (int64_t d = 0; d < Fd; ++d) row[d] = hb[n * Fd + d];
            row[Fd + H] = 0;
        }
        for (int64_t k = 0; k < H; ++k) row[so + k] = 0;
    }
    for (int64_t e = 0; e < E; ++e) {
        const int64_t i = recv[e], j = send[e];
        F(edge_pre)(z, hb + j * Fd, hb + i * Fd, K ? eab + e * K : NULL, Wt, bias, Fd, K, H);
        F(act_add)(ob + i * ow + so, z, H, act);
        if (nf) ob[i * ow + Fd + H] += 1;
    }
}

/* out: [B, N, H] = S, or with nf [B, N, F + H + 1] = [h, S, in-degree]; fully written. */
int F(edge_sum_fwd)(const real *h, const real *ea, int64_t ea_bstride, const int64_t *recv, const int64_t *send,
                    const real *Wt, const real *bias, real *out, int64_t B, int64_t N, int64_t E, int64_t Fd, int64_t K,
                    int64_t H, int nf, int act, int nthreads) {
    const int64_t ow = nf ? Fd + H + 1 : H;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        real *z = malloc(sizeof(real) * H);
        if (!z) failed = 1;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (!z) continue;
            const real *hb = h + b * N * Fd, *eab = K ? ea + b * ea_bstride : NULL;
            real *ob = out + b * N * ow;
            switch (H) {
                case 16: F(fwd_graph)(hb, eab, recv, send, Wt, bias, ob, N, E, Fd, K, 16, nf, act, z); break;
                case 32: F(fwd_graph)(hb, eab, recv, send, Wt, bias, ob, N, E, Fd, K, 32, nf, act, z); break;
                case 64: F(fwd_graph)(hb, eab, recv, send, Wt, bias, ob, N, E, Fd, K, 64, nf, act, z); break;
                default: F(fwd_graph)(hb, eab, recv, send, Wt, bias, ob, N, E, Fd, K, H, nf, act, z);
            }
        }
        free(z);
    }
    return failed;
}

/* w^T g over H, while accumulating gw += v g */
static inline __attribute__((always_inline)) real F(bwd_row)(real v, const real *restrict w, real *restrict gw,
                                                           const real *restrict g, int64_t H) {
    real acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t k = 0; k < H; ++k) {
        gw[k] += v * g[k];
        acc += w[k] * g[k];
    }
    return acc;
}

/* One graph's backward pass (see F(fwd_graph)). tW, tb, tea: this thread's gradient buffers. */
static inline __attribute__((always_inline)) void F(bwd_graph)(const real *hb, const real *eab, const int64_t *recv,
                                                             const int64_t *send, const real *Wt, const real *bias,
                                                             const real *gSb, int64_t gw, int64_t go, real *ghb,
                                                             real *geab, int shared_ea,
                                                             real *tW, real *tb, real *tea, int64_t E, int64_t Fd,
                                                             int64_t K, int64_t H, int act, real *z, real *g) {
    for (int64_t e = 0; e < E; ++e) {
        const int64_t i = recv[e], j = send[e];
        const real *hj = hb + j * Fd, *hi = hb + i * Fd, *a = K ? eab + e * K : NULL;
        F(edge_pre)(z, hj, hi, a, Wt, bias, Fd, K, H);
        F(act_mul_grad)(g, gSb + i * gw + go, z, H, act);
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) tb[k] += g[k];
        for (int64_t d = 0; d < Fd; ++d) {
            const real acc = F(bwd_row)(hj[d], Wt + d * H, tW + d * H, g, H);
            if (ghb) ghb[j * Fd + d] += acc;
        }
        for (int64_t d = 0; d < Fd; ++d) {
            const real acc = F(bwd_row)(hi[d], Wt + (Fd + d) * H, tW + (Fd + d) * H, g, H);
            if (ghb) ghb[i * Fd + d] += acc;
        }
        for (int64_t d = 0; d < K; ++d) {
            const real acc = F(bwd_row)(a[d], Wt + (2 * Fd + d) * H, tW + (2 * Fd + d) * H, g, H);
            if (shared_ea) tea[e * K + d] += acc;
            else if (geab) geab[e * K + d] = acc;
        }
    }
}

/* gS is the gradient of the forward's output (layout set by nf). Gradients are written (not
 * accumulated) into gWt [D, H], gbias [H]; the edge terms are added to gh [B, N, F], which the
 * caller initialises (zeros, or the gradient of the copied h columns), or NULL: not needed; gea
 * is [B, E, K] (ea_bstride = E K) or [E, K] shared (ea_bstride = 0), or NULL. */
int F(edge_sum_bwd)(const real *h, const real *ea, int64_t ea_bstride, const int64_t *recv, const int64_t *send,
                    const real *Wt, const real *bias, const real *gS, real *gh, real *gea, real *gWt, real *gbias,
                    int64_t B, int64_t N, int64_t E, int64_t Fd, int64_t K, int64_t H, int nf, int act, int nthreads) {
    const int64_t D = 2 * Fd + K, gw = nf ? Fd + H + 1 : H, go = nf ? Fd : 0;
    const int shared_ea = gea && ea_bstride == 0;
    const int64_t per = F(padded)(D * H + H + (shared_ea ? E * K : 0));
    if (nthreads < 1) nthreads = 1;
    if (nthreads > B) nthreads = B > 0 ? (int)B : 1;
    real *buf = F(zeroed)(per * nthreads);
    if (!buf) return 1;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        const int t = omp_get_thread_num();
        real *tW = buf + t * per, *tb = tW + D * H, *tea = tb + H;
        real *z = malloc(sizeof(real) * 2 * H), *g = z + H;
        if (!z) failed = 1;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (!z) continue;
            const real *hb = h + b * N * Fd, *gSb = gS + b * N * gw, *eab = K ? ea + b * ea_bstride : NULL;
            real *ghb = gh ? gh + b * N * Fd : NULL, *geab = gea && !shared_ea ? gea + b * ea_bstride : NULL;
            switch (H) {
                case 16: F(bwd_graph)(hb, eab, recv, send, Wt, bias, gSb, gw, go, ghb, geab, shared_ea, tW, tb, tea, E, Fd, K, 16, act, z, g); break;
                case 32: F(bwd_graph)(hb, eab, recv, send, Wt, bias, gSb, gw, go, ghb, geab, shared_ea, tW, tb, tea, E, Fd, K, 32, act, z, g); break;
                case 64: F(bwd_graph)(hb, eab, recv, send, Wt, bias, gSb, gw, go, ghb, geab, shared_ea, tW, tb, tea, E, Fd, K, 64, act, z, g); break;
                default: F(bwd_graph)(hb, eab, recv, send, Wt, bias, gSb, gw, go, ghb, geab, shared_ea, tW, tb, tea, E, Fd, K, H, act, z, g);
            }
        }
        free(z);
    }
    if (failed) {
        free(buf);
        return 1;
    }
    memset(gWt, 0, sizeof(real) * D * H);
    memset(gbias, 0, sizeof(real) * H);
    if (shared_ea) memset(gea, 0, sizeof(real) * E * K);
    for (int t = 0; t < nthreads; ++t) {
        const real *tW = buf + t * per, *tb = tW + D * H, *tea = tb + H;
        for (int64_t q = 0; q < D * H; ++q) gWt[q] += tW[q];
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) gbias[k] += tb[k];
        if (shared_ea)
            for (int64_t q = 0; q < E * K; ++q) gea[q] += tea[q];
    }
    free(buf);
    return 0;
}
