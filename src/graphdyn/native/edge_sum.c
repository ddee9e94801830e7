/* Edge MLP first layer + activation + sum over incoming edges, one graph at a time: the edge part
 * of interaction.c (graphdyn.ops.interaction).
 *
 * For a graph's directed edges e = (i <- j), with D = 2F + K inputs and H outputs:
 *
 *     z_e  = W [h_j, h_i, a_e] + bias          (W stored transposed: Wt [D, H])
 *     S_i += act(z_e)
 *
 * F(fwd_graph) writes S (or, with nf, the rows [h_i, S_i, deg_i], deg_i the number of edges
 * into i: a node MLP's input, assembled without a concatenation pass). F(bwd_graph) takes the
 * gradient gS and recomputes z_e:
 *
 *     g_e   = gS_i * act'(z_e)                  gWt += [h_j, h_i, a_e] (x) g_e    gbias += g_e
 *     gh_j += (W^T g_e)[0:F]   gh_i += (W^T g_e)[F:2F]   ga_e = (W^T g_e)[2F:]
 *
 * Written once over `real` / F(name); the loader emits it for float (_f32) and double (_f64).
 * The callers own the threads: these helpers work on one graph and accumulate weight gradients
 * into the calling thread's buffers. act: 0 relu, 1 silu, 2 tanh (common.c).
 */
/* z[0:H] = bias + Wt^T [h_j, h_i, a]; the callers pass a local array, which stays in registers */
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
                                                             int64_t H, int nf, int act) {
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
        real ze[H]; /* local (H constant where inlined): kept in registers, not stored and reloaded */
        F(edge_pre)(ze, hb + j * Fd, hb + i * Fd, K ? eab + e * K : NULL, Wt, bias, Fd, K, H);
        F(act_add)(ob + i * ow + so, ze, H, act);
        if (nf) ob[i * ow + Fd + H] += 1;
    }
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
                                                             int64_t K, int64_t H, int act) {
    for (int64_t e = 0; e < E; ++e) {
        const int64_t i = recv[e], j = send[e];
        const real *hj = hb + j * Fd, *hi = hb + i * Fd, *a = K ? eab + e * K : NULL;
        real z[H], g[H]; /* local, as in F(fwd_graph) */
        F(edge_pre)(z, hj, hi, a, Wt, bias, Fd, K, H);
        F(act_mul_grad)(g, gSb + i * gw + go, z, H, act);
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) tb[k] += g[k];
        if (ghb) {
            for (int64_t d = 0; d < Fd; ++d) ghb[j * Fd + d] += F(bwd_row)(hj[d], Wt + d * H, tW + d * H, g, H);
            for (int64_t d = 0; d < Fd; ++d) ghb[i * Fd + d] += F(bwd_row)(hi[d], Wt + (Fd + d) * H, tW + (Fd + d) * H, g, H);
        } else {  /* inputs that need no gradient: weight gradients only, no dot products */
            for (int64_t d = 0; d < Fd; ++d) {
                const real vj = hj[d], vi = hi[d];
                real *restrict gwj = tW + d * H, *restrict gwi = tW + (Fd + d) * H;
#pragma omp simd
                for (int64_t k = 0; k < H; ++k) {
                    gwj[k] += vj * g[k];
                    gwi[k] += vi * g[k];
                }
            }
        }
        for (int64_t d = 0; d < K; ++d) {
            const real acc = F(bwd_row)(a[d], Wt + (2 * Fd + d) * H, tW + (2 * Fd + d) * H, g, H);
            if (shared_ea) tea[e * K + d] += acc;
            else if (geab) geab[e * K + d] = acc;
        }
    }
}
