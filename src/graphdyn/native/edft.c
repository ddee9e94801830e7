/* EDFT's edge features (ESTAG's cross-spectrum), forward and backward (graphdyn.nn.edft_native).
 *
 * For spectra f = fr + i fi of shape [N, R, K, D] (node-major, R batch rows, K frequencies,
 * D dimensions), gates w [N, R, K] (NULL: all 1) and directed edges e = (i <- j), per row r:
 *
 *     a_k  = |sum_d conj(f_i,d(k)) f_j,d(k)|          (no gradient: the spectra come from data)
 *     u_k  = a_k w_i(k) w_j(k)
 *     A_k  = u_k / (sum_k' u_k' + eps)                 -> A [E, R, K]
 *
 * Backward, for the gates only (g = dL/dA):
 *
 *     g_u_k = (g_k - sum_k' g_k' A_k') / (sum_k' u_k' + eps)
 *     g_w_i(k) += g_u_k a_k w_j(k),   g_w_j(k) += g_u_k a_k w_i(k)
 *
 * Threads own ranges of rows r, so the scattered gate gradients of a row have one writer. The
 * backward recomputes a_k. Both functions return 0, or 2 for K > EDFT_MAXK.
 */

/* EDFT_MAXK: native/__init__.py LIMITS */

/* u[0:K] = |<f_i(k), f_j(k)>| over d, for one row */
static inline __attribute__((always_inline)) void F(edft_cross)(real *restrict a, const real *restrict ar,
                                                              const real *restrict ai, const real *restrict br,
                                                              const real *restrict bi, int64_t K, int64_t D) {
    for (int64_t k = 0; k < K; ++k) {
        real re = 0, im = 0;
        for (int64_t d = 0; d < D; ++d) {
            const int64_t q = k * D + d;
            re += ar[q] * br[q] + ai[q] * bi[q];
            im += ar[q] * bi[q] - ai[q] * br[q];
        }
        a[k] = SQRT(re * re + im * im);
    }
}

int F(edft_edges_fwd)(const real *fr, const real *fi, const real *w, const int64_t *recv, const int64_t *send,
                      real *A, int64_t N, int64_t R, int64_t E, int64_t K, int64_t D, real eps, int nthreads) {
    if (K > EDFT_MAXK) return 2;
    (void)N;
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel num_threads(nthreads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t r0 = R * t / nt, r1 = R * (t + 1) / nt;
        real a[EDFT_MAXK];
        for (int64_t e = 0; e < E; ++e) {
            const int64_t i = recv[e], j = send[e];
            for (int64_t r = r0; r < r1; ++r) {
                const int64_t fi_off = (i * R + r) * K * D, fj_off = (j * R + r) * K * D;
                F(edft_cross)(a, fr + fi_off, fi + fi_off, fr + fj_off, fi + fj_off, K, D);
                real *restrict out = A + (e * R + r) * K;
                real sum = 0;
                if (w) {
                    const real *wi = w + (i * R + r) * K, *wj = w + (j * R + r) * K;
                    for (int64_t k = 0; k < K; ++k) {
                        out[k] = a[k] * wi[k] * wj[k];
                        sum += out[k];
                    }
                } else
                    for (int64_t k = 0; k < K; ++k) {
                        out[k] = a[k];
                        sum += a[k];
                    }
                const real den = sum + eps;
                for (int64_t k = 0; k < K; ++k) out[k] /= den;
            }
        }
    }
    return 0;
}

/* gw [N, R, K] (zeroed by the caller) receives the gate gradients; A is the forward output. */
int F(edft_edges_bwd)(const real *fr, const real *fi, const real *w, const int64_t *recv, const int64_t *send,
                      const real *A, const real *gA, real *gw, int64_t N, int64_t R, int64_t E, int64_t K, int64_t D,
                      real eps, int nthreads) {
    if (K > EDFT_MAXK) return 2;
    (void)N;
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel num_threads(nthreads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t r0 = R * t / nt, r1 = R * (t + 1) / nt;
        real a[EDFT_MAXK];
        for (int64_t e = 0; e < E; ++e) {
            const int64_t i = recv[e], j = send[e];
            for (int64_t r = r0; r < r1; ++r) {
                const int64_t fi_off = (i * R + r) * K * D, fj_off = (j * R + r) * K * D;
                F(edft_cross)(a, fr + fi_off, fi + fi_off, fr + fj_off, fi + fj_off, K, D);
                const real *wi = w + (i * R + r) * K, *wj = w + (j * R + r) * K;
                const real *Ar = A + (e * R + r) * K, *g = gA + (e * R + r) * K;
                real sum = 0, ga = 0;
                for (int64_t k = 0; k < K; ++k) {
                    sum += a[k] * wi[k] * wj[k];
                    ga += g[k] * Ar[k];
                }
                const real inv = (real)1 / (sum + eps);
                real *gwi = gw + (i * R + r) * K, *gwj = gw + (j * R + r) * K;
                for (int64_t k = 0; k < K; ++k) {
                    const real gu = (g[k] - ga) * inv * a[k];
                    gwi[k] += gu * wj[k];
                    gwj[k] += gu * wi[k];
                }
            }
        }
    }
    return 0;
}
