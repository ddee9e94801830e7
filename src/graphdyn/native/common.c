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

#ifndef GRAPHDYN_EXPF_DEFINED
#define GRAPHDYN_EXPF_DEFINED
/* exp for float32, inline so that activation loops vectorise without library calls (every
 * register would be spilled around a call). Range reduction x = n ln2 + r (|r| <= ln2 / 2, ln2
 * split in two parts), a degree-7 polynomial for exp(r) (the Cephes expf coefficients, about
 * 1 ulp), and 2^n built in the exponent bits. graphdyn_expf_arg clamps x to [-87, 88], so the result is never
 * denormal or infinite: below exp(-87) ~ 1.6e-38 it stays there, which leaves silu, softmax and
 * tanh unchanged at float32 resolution. */
static inline float graphdyn_expf_arg(float x) { return x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x); }

/* exp(x) for x already in [-87, 88] */
static inline float graphdyn_expf_unclamped(float x) {
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x / ln2) */
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float graphdyn_expf(float x) { return graphdyn_expf_unclamped(graphdyn_expf_arg(x)); }
#endif

/* sg[0:n] = sigmoid(z[0:n]) = 1 / (1 + exp(-z)). The exp argument is clamped (EXP_ARG) in a loop
 * of its own, then exp and the division run in the next: in one loop, GCC 12 without AVX-512
 * if-converted the clamp after the exp polynomial, with a second division and blends, and silu
 * took twice as long on AVX2. sg may be z. */
static inline __attribute__((always_inline)) void F(sigmoid)(real *sg, const real *z, int64_t n) {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) sg[k] = EXP_ARG(-z[k]);
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) sg[k] = (real)1 / ((real)1 + EXPU(sg[k]));
}

/* silu goes through sigmoids of ACT_CHUNK elements at a time on the stack */
#ifndef ACT_CHUNK
#define ACT_CHUNK 64
#endif

/* s[0:H] += act(z[0:H]) (add = 1) or r[0:H] = act(z[0:H]) (add = 0); the switch sits outside the
 * loops so that they vectorise */
static inline __attribute__((always_inline)) void F(act_into)(real *restrict r, const real *restrict z, int64_t H,
                                                            int act, int add) {
    if (act == 0) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
            const real v = z[k] > 0 ? z[k] : (real)0;
            r[k] = add ? r[k] + v : v;
        }
    } else if (act == 1) {
        for (int64_t k0 = 0; k0 < H; k0 += ACT_CHUNK) {
            const int64_t n = H - k0 < ACT_CHUNK ? H - k0 : ACT_CHUNK;
            real sg[ACT_CHUNK];
            F(sigmoid)(sg, z + k0, n);
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) {
                const real v = z[k0 + k] * sg[k];
                r[k0 + k] = add ? r[k0 + k] + v : v;
            }
        }
    } else if (act == ACT_TANH) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
            const real v = TANH(z[k]);
            r[k] = add ? r[k] + v : v;
        }
    } else { /* ACT_LEAKY_RELU */
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
            const real v = z[k] > 0 ? z[k] : (real)LEAKY_SLOPE * z[k];
            r[k] = add ? r[k] + v : v;
        }
    }
}

static inline __attribute__((always_inline)) void F(act_add)(real *restrict s, const real *restrict z, int64_t H, int act) {
    F(act_into)(s, z, H, act, 1);
}

static inline __attribute__((always_inline)) void F(act_apply)(real *restrict r, const real *restrict z, int64_t H, int act) {
    F(act_into)(r, z, H, act, 0);
}

/* r[0:H] = act(z[0:H]) keeping what the derivative needs in kept[0:H] (silu: the sigmoid; tanh:
 * the value), so that a backward pass that recomputes the forward values calls exp or tanh once
 * per element instead of twice; see act_mul_grad_kept */
static inline __attribute__((always_inline)) void F(act_apply_keep)(real *restrict r, real *restrict kept,
                                                                  const real *restrict z, int64_t H, int act) {
    if (act == 0) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) r[k] = z[k] > 0 ? z[k] : (real)0;
    } else if (act == 1) {
        F(sigmoid)(kept, z, H);
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) r[k] = z[k] * kept[k];
    } else if (act == ACT_TANH) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
            kept[k] = TANH(z[k]);
            r[k] = kept[k];
        }
    } else { /* ACT_LEAKY_RELU: nothing to keep */
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) r[k] = z[k] > 0 ? z[k] : (real)LEAKY_SLOPE * z[k];
    }
}

/* g[0:H] = gs[0:H] * act'(z[0:H]) from what act_apply_keep kept (silu' = s (1 + z (1 - s)), tanh' = 1 - t^2) */
static inline __attribute__((always_inline)) void F(act_mul_grad_kept)(real *restrict g, const real *restrict gs,
                                                                     const real *restrict z,
                                                                     const real *restrict kept, int64_t H, int act) {
    if (act == 0) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) g[k] = z[k] > 0 ? gs[k] : (real)0;
    } else if (act == 1) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) g[k] = gs[k] * kept[k] * ((real)1 + z[k] * ((real)1 - kept[k]));
    } else if (act == ACT_TANH) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) g[k] = gs[k] * ((real)1 - kept[k] * kept[k]);
    } else { /* ACT_LEAKY_RELU, PyTorch's convention at 0: the left slope */
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) g[k] = z[k] > 0 ? gs[k] : (real)LEAKY_SLOPE * gs[k];
    }
}

/* g[0:H] = gs[0:H] * act'(z[0:H]), the derivative terms computed here, ACT_CHUNK at a time */
static inline __attribute__((always_inline)) void F(act_mul_grad)(real *restrict g, const real *restrict gs, const real *restrict z, int64_t H, int act) {
    for (int64_t k0 = 0; k0 < H; k0 += ACT_CHUNK) {
        const int64_t n = H - k0 < ACT_CHUNK ? H - k0 : ACT_CHUNK;
        real kept[ACT_CHUNK];
        if (act == 1)
            F(sigmoid)(kept, z + k0, n);
        else if (act == 2)
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) kept[k] = TANH(z[k0 + k]);
        F(act_mul_grad_kept)(g + k0, gs + k0, z + k0, kept, n, act);
    }
}

/* Per-thread gradient buffers: each thread's block is padded to whole cache lines (n rounded up
 * to 128 bytes), so that two threads never write the same line (false sharing). */
static inline int64_t F(padded)(int64_t n) {
    const int64_t line = 128 / (int64_t)sizeof(real);
    return (n + line - 1) / line * line;
}

/* gblock[0:n] = sum over threads t, in thread order, of buf[t per : t per + n] (per-thread weight
 * gradients; the fixed order makes reruns bit-identical for a given thread count) */
static inline void F(sum_threads)(real *restrict gblock, const real *restrict buf, int64_t per, int64_t n, int nthreads) {
    memset(gblock, 0, sizeof(real) * n);
    for (int t = 0; t < nthreads; ++t)
        for (int64_t q = 0; q < n; ++q) gblock[q] += buf[t * per + q];
}

/* n zeroed reals, 128-byte aligned (free with free()) */
static inline real *F(zeroed)(int64_t n) {
    const size_t bytes = ((size_t)n * sizeof(real) + 127) / 128 * 128;
    real *p = aligned_alloc(128, bytes > 0 ? bytes : 128);
    if (p) memset(p, 0, bytes);
    return p;
}

/* LIN_MAXH: native/__init__.py LIMITS */

/* One block of lin_core: rows b .. b + nv of y (nv <= RB, RB a constant 4 or 5 after inlining).
 * The RB sums stay in registers: each row of Wt is loaded once per block and the accumulators are
 * RB independent FMA chains. A short last block repeats its last row in the missing places and
 * stores only the real ones (GCC kept the sums of a two- or one-row remainder in memory, a chain
 * through the store buffer that cost more than a whole block). */
static inline __attribute__((always_inline)) void F(lin_blk)(real *y, const real *init, int64_t init_stride,
                                                           const real *restrict x, const real *restrict Wt,
                                                           int64_t b, int64_t nv, int64_t D, int64_t H,
                                                           const int RB) {
    const real *xu[5], *iu[5]; /* row u's input and initial value */
    for (int64_t u = 0; u < RB; ++u) {
        const int64_t row = b + (u < nv ? u : nv - 1);
        xu[u] = x + row * D;
        iu[u] = init ? init + row * init_stride : NULL;
    }
    real acc[5][LIN_MAXH];
    if (init)
        for (int64_t u = 0; u < RB; ++u)
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) acc[u][k] = iu[u][k];
    else
        for (int64_t u = 0; u < RB; ++u)
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) acc[u][k] = 0;
    for (int64_t d = 0; d < D; ++d) {
        const real *restrict w = Wt + d * H;
        for (int64_t u = 0; u < RB; ++u) {
            const real v = xu[u][d];
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) acc[u][k] += w[k] * v;
        }
    }
    real tail[5 * LIN_MAXH];
    real *dst = nv == RB ? y + b * H : tail; /* y may be init: no restrict */
    for (int64_t u = 0; u < RB; ++u)
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) dst[u * H + k] = acc[u][k];
    if (nv < RB) memcpy(y + b * H, tail, sizeof(real) * nv * H);
}

/* y[b] = init_b + Wt^T x_b for nb rows (y [nb, H], x [nb, D], Wt [D, H]), where init_b is row b
 * of init [nb, H] (init_stride H), the vector init [H] for every row (init_stride 0), or 0
 * (init NULL); y may be init; H <= LIN_MAXH. Rows go four at a time (lin_blk), or five at a time
 * where that leaves no remainder and four would (ESTAG's T = 10 frames: two blocks instead of three
 * with two rows computed for nothing). Every output is the same sum in the same order either way. */
static inline __attribute__((always_inline)) void F(lin_core)(real *y, const real *init, int64_t init_stride,
                                                            const real *restrict x, const real *restrict Wt,
                                                            int64_t nb, int64_t D, int64_t H) {
    if (nb % 4 != 0 && nb % 5 == 0)
        for (int64_t b = 0; b < nb; b += 5) F(lin_blk)(y, init, init_stride, x, Wt, b, 5, D, H, 5);
    else
        for (int64_t b = 0; b < nb; b += 4)
            F(lin_blk)(y, init, init_stride, x, Wt, b, nb - b < 4 ? nb - b : 4, D, H, 4);
}

/* y[b] = bias + Wt^T x_b for nb rows (y [nb, H], x [nb, D], Wt [D, H]) */
static inline __attribute__((always_inline)) void F(lin_rows)(real *restrict y, const real *restrict x,
                                                            const real *restrict Wt, const real *restrict bias,
                                                            int64_t nb, int64_t D, int64_t H) {
    F(lin_core)(y, bias, 0, x, Wt, nb, D, H);
}

/* gW [H, H] += sum_b g_b (x) v_b over nb rows (g, v [nb, H]): each gW row loaded and stored once.
 * Four rows of gW at a time (H is a multiple of 4 wherever this is used; a remainder goes one by
 * one): four independent FMA chains instead of one latency-bound chain, and each v_b loaded once
 * for the four. */
static inline __attribute__((always_inline)) void F(outer_rows)(real *restrict gW, const real *restrict g,
                                                                  const real *restrict v, int64_t nb, int64_t H) {
    int64_t k = 0;
    for (; k + 4 <= H; k += 4) {
        real acc[4][H];
        for (int64_t u = 0; u < 4; ++u)
#pragma omp simd
            for (int64_t q = 0; q < H; ++q) acc[u][q] = 0;
        for (int64_t b = 0; b < nb; ++b) {
            const real *restrict vb = v + b * H, *restrict gb = g + b * H + k;
            for (int64_t u = 0; u < 4; ++u) {
                const real gk = gb[u];
#pragma omp simd
                for (int64_t q = 0; q < H; ++q) acc[u][q] += gk * vb[q];
            }
        }
        for (int64_t u = 0; u < 4; ++u) {
            real *restrict row = gW + (k + u) * H;
#pragma omp simd
            for (int64_t q = 0; q < H; ++q) row[q] += acc[u][q];
        }
    }
    for (; k < H; ++k) {
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
