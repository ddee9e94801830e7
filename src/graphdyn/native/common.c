/* Shared by every kernel: headers and the activations (0 relu, 1 silu, 2 tanh), each as a loop
 * over a hidden vector with the switch outside, so that the loops vectorise. Written over
 * `real` / F(name) like the kernels (see graphdyn/native/__init__.py). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(GRAPHDYN_MVEC) && !defined(GRAPHDYN_MVEC_DECLARED)
#define GRAPHDYN_MVEC_DECLARED
/* glibc's libmvec has SIMD versions of exp and tanh, but its headers declare them only under
 * -ffast-math; declaring them here lets the activation loops vectorise without fast-math's other
 * licences (libmvec's documented error is a few ulp). Built with -lmvec; see __init__.py. */
__attribute__((simd("notinbranch"))) float expf(float);
__attribute__((simd("notinbranch"))) double exp(double);
__attribute__((simd("notinbranch"))) float tanhf(float);
__attribute__((simd("notinbranch"))) double tanh(double);
#endif

/* s[0:H] += act(z[0:H]); the switch sits outside the loops so that they vectorise */
static inline __attribute__((always_inline)) void F(act_add)(real *restrict s, const real *restrict z, int64_t H, int act) {
    if (act == 0) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) s[k] += z[k] > 0 ? z[k] : (real)0;
    } else if (act == 1) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) s[k] += z[k] / ((real)1 + EXP(-z[k]));
    } else {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) s[k] += TANH(z[k]);
    }
}

/* r[0:H] = act(z[0:H]) */
static inline __attribute__((always_inline)) void F(act_apply)(real *restrict r, const real *restrict z, int64_t H, int act) {
    if (act == 0) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) r[k] = z[k] > 0 ? z[k] : (real)0;
    } else if (act == 1) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) r[k] = z[k] / ((real)1 + EXP(-z[k]));
    } else {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) r[k] = TANH(z[k]);
    }
}

/* g[0:H] = gs[0:H] * act'(z[0:H]) */
static inline __attribute__((always_inline)) void F(act_mul_grad)(real *restrict g, const real *restrict gs, const real *restrict z, int64_t H, int act) {
    if (act == 0) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) g[k] = z[k] > 0 ? gs[k] : (real)0;
    } else if (act == 1) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
            const real sg = (real)1 / ((real)1 + EXP(-z[k]));
            g[k] = gs[k] * sg * ((real)1 + z[k] * ((real)1 - sg));
        }
    } else {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
            const real t = TANH(z[k]);
            g[k] = gs[k] * ((real)1 - t * t);
        }
    }
}

/* Per-thread gradient buffers: each thread's block is padded to whole cache lines (n rounded up
 * to 128 bytes), so that two threads never write the same line (false sharing). */
static inline int64_t F(padded)(int64_t n) {
    const int64_t line = 128 / (int64_t)sizeof(real);
    return (n + line - 1) / line * line;
}

/* n zeroed reals, 128-byte aligned (free with free()) */
static inline real *F(zeroed)(int64_t n) {
    const size_t bytes = ((size_t)n * sizeof(real) + 127) / 128 * 128;
    real *p = aligned_alloc(128, bytes > 0 ? bytes : 128);
    if (p) memset(p, 0, bytes);
    return p;
}

/* y[b] = bias + Wt^T x_b for nb rows (y [nb, H], x [nb, D], Wt [D, H]): each row of Wt is loaded
 * once for the block, and the nb accumulators are independent FMA chains */
static inline __attribute__((always_inline)) void F(lin_rows)(real *restrict y, const real *restrict x,
                                                            const real *restrict Wt, const real *restrict bias,
                                                            int64_t nb, int64_t D, int64_t H) {
    for (int64_t b = 0; b < nb; ++b)
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) y[b * H + k] = bias[k];
    for (int64_t d = 0; d < D; ++d) {
        const real *restrict w = Wt + d * H;
        for (int64_t b = 0; b < nb; ++b) {
            const real v = x[b * D + d];
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) y[b * H + k] += w[k] * v;
        }
    }
}
