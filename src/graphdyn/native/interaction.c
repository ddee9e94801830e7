/* The whole interaction layer, forward and backward, graph by graph (graphdyn.nn.interaction_native).
 *
 * For graph b, with x_bn = [h_bn, S_bn, deg_n] (D = F + H + 1) built by F(fwd_graph) of edge_sum.c:
 *
 *     z_bn   = W1 x_bn + bn1          (W1 [H, D], also passed transposed: W1t [D, H])
 *     out_bn = Wn2 act(z_bn) + bn2    (Wn2 [O, H], out [B, N, O])
 *
 * W1 is the node MLP's first layer composed with the edge MLP's last (see message_passing.py).
 * Backward for gout [B, N, O] recomputes x, z per graph in thread-local scratch:
 *
 *     gWn2 += gout (x) act(z)   gbn2 += gout   gz = (Wn2^T gout) * act'(z)
 *     gW1t += x (x) gz          gbn1 += gz     gx = W1^T gz  ->  gh += gx[0:F], gS = gx[F:F+H]
 *
 * and then the edge part's backward of edge_sum.c with gS. Per-thread gradient blocks (padded to
 * cache lines) are summed in thread order. The gradient block is
 * [gWe1t (De H), gbe1 (H), gW1t (D H), gbn1 (H), gWn2 (O H), gbn2 (O)], De = 2F + K.
 * Only hidden width 32 is compiled (each width multiplies the compile time): both functions
 * return 0, 1 when memory ran out, 2 for another width.
 */

#ifndef NODE_BLOCK
#define NODE_BLOCK 4 /* nodes whose node-MLP rows are processed together */
#endif

/* The node part's forward for nb consecutive rows at once (nb <= NODE_BLOCK; see F(node_bwd_block)) */
static inline __attribute__((always_inline)) void F(node_fwd_block)(const real *restrict xb, const real *restrict W1t,
                                                                  const real *restrict bn1, const real *restrict Wn2,
                                                                  const real *restrict bn2, real *restrict outb, int64_t nb,
                                                                  int64_t D, int64_t H, int64_t O, int act) {
    real z[NODE_BLOCK][H];
    F(lin_rows)(&z[0][0], xb, W1t, bn1, nb, D, H);
    for (int64_t b = 0; b < nb; ++b) {
        real r[H];
        F(act_apply)(r, z[b], H, act);
        for (int64_t o = 0; o < O; ++o) {
            const real *restrict w = Wn2 + o * H;
            real acc = 0;
#pragma omp simd reduction(+ : acc)
            for (int64_t k = 0; k < H; ++k) acc += w[k] * r[k];
            outb[b * O + o] = acc + bn2[o];
        }
    }
}

static inline __attribute__((always_inline)) void F(layer_fwd_graph)(const real *hb, const real *eab, const int64_t *recv,
                                                                   const int64_t *send, const real *We1t, const real *be1,
                                                                   const real *W1t, const real *bn1, const real *Wn2,
                                                                   const real *bn2, real *outb, int64_t N, int64_t E,
                                                                   int64_t Fd, int64_t K, int64_t H, int64_t O, int act,
                                                                   real *x, real *z) {
    const int64_t D = Fd + H + 1;
    F(fwd_graph)(hb, eab, recv, send, We1t, be1, x, N, E, Fd, K, H, 1, act, z);
    for (int64_t n = 0; n < N; n += NODE_BLOCK) {
        const real *xb = x + n * D;
        real *ob = outb + n * O;
        switch (N - n < NODE_BLOCK ? N - n : NODE_BLOCK) {
            case 4: F(node_fwd_block)(xb, W1t, bn1, Wn2, bn2, ob, 4, D, H, O, act); break;
            case 3: F(node_fwd_block)(xb, W1t, bn1, Wn2, bn2, ob, 3, D, H, O, act); break;
            case 2: F(node_fwd_block)(xb, W1t, bn1, Wn2, bn2, ob, 2, D, H, O, act); break;
            default: F(node_fwd_block)(xb, W1t, bn1, Wn2, bn2, ob, 1, D, H, O, act);
        }
    }
}

int F(interaction_fwd)(const real *h, const real *ea, int64_t ea_bstride, const int64_t *recv, const int64_t *send,
                       const real *We1t, const real *be1, const real *W1t, const real *bn1, const real *Wn2,
                       const real *bn2, real *out, int64_t B, int64_t N, int64_t E, int64_t Fd, int64_t K, int64_t H,
                       int64_t O, int act, int nthreads) {
    const int64_t D = Fd + H + 1;
    if (H != 32) return 2; /* compiled for the notebook's width only (see interaction_native.WIDTHS) */
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        real *x = malloc(sizeof(real) * (N * D + H)), *z = x + N * D;
        if (!x) failed = 1;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (!x) continue;
            const real *hb = h + b * N * Fd, *eab = K ? ea + b * ea_bstride : NULL;
            real *outb = out + b * N * O;
            switch (H) {
                case 32: F(layer_fwd_graph)(hb, eab, recv, send, We1t, be1, W1t, bn1, Wn2, bn2, outb, N, E, Fd, K, 32, O, act, x, z); break;
            }
        }
        free(x);
    }
    return failed;
}

/* The node part's backward for nb consecutive nodes at once (nb <= NODE_BLOCK, a constant where
 * inlined, like H): each row of W1t, W1 and of the weight-gradient buffer is loaded once per
 * block, and the nb nodes' accumulators are independent chains that stay in registers. */
static inline __attribute__((always_inline)) void F(node_bwd_block)(
    const real *restrict xb, const real *restrict gob, real *restrict gxb, real *restrict ghn, const real *restrict W1t,
    const real *restrict W1, const real *restrict bn1, const real *restrict Wn2, real *restrict tW1, real *restrict tbn1,
    real *restrict tWn2, real *restrict tbn2, int64_t nb, int64_t D, int64_t Fd, int64_t H, int64_t O, int act) {
    real z[NODE_BLOCK][H], gz[NODE_BLOCK][H];
    F(lin_rows)(&z[0][0], xb, W1t, bn1, nb, D, H);  /* recomputed, as in the forward pass */
    for (int64_t b = 0; b < nb; ++b) {
        real r[H], gr[H];
        F(act_apply)(r, z[b], H, act);
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) gr[k] = 0;
        for (int64_t o = 0; o < O; ++o) {
            const real gv = gob[b * O + o], *restrict w = Wn2 + o * H;
            real *restrict gw = tWn2 + o * H;
            tbn2[o] += gv;
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) {
                gw[k] += gv * r[k];
                gr[k] += gv * w[k];
            }
        }
        F(act_mul_grad)(gz[b], gr, z[b], H, act);
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) tbn1[k] += gz[b][k];
    }
    for (int64_t d = 0; d < D; ++d) {  /* gW1t[d] += sum_b x_b[d] gz_b */
        real *restrict gw = tW1 + d * H;
        for (int64_t b = 0; b < nb; ++b) {
            const real v = xb[b * D + d];
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) gw[k] += v * gz[b][k];
        }
    }
    /* gS_b = (W1^T gz_b)[F:F+H]: H rank-1 updates over the rows of W1 [H, D], one pass for the block */
    real gs[NODE_BLOCK][H];
    for (int64_t b = 0; b < nb; ++b)
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) gs[b][k] = 0;
    for (int64_t q = 0; q < H; ++q) {
        const real *restrict w = W1 + q * D + Fd;
        for (int64_t b = 0; b < nb; ++b) {
            const real g = gz[b][q];
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) gs[b][k] += g * w[k];
        }
    }
    for (int64_t b = 0; b < nb; ++b) {
#pragma omp simd
        for (int64_t k = 0; k < H; ++k) gxb[b * D + Fd + k] = gs[b][k];
        if (ghn)  /* gh gets (W1^T gz)[0:F]; the degree column needs nothing */
            for (int64_t d = 0; d < Fd; ++d) {
                real acc = 0;
                for (int64_t k = 0; k < H; ++k) acc += W1[k * D + d] * gz[b][k];
                ghn[b * Fd + d] += acc;
            }
    }
}

/* One graph's backward; t* are this thread's gradient buffers, x/gx [N, D] and z/g [H] scratch. */
static inline __attribute__((always_inline)) void F(layer_bwd_graph)(
    const real *hb, const real *eab, const int64_t *recv, const int64_t *send, const real *We1t, const real *be1,
    const real *W1t, const real *W1, const real *bn1, const real *Wn2, const real *goutb, real *ghb, real *geab,
    int shared_ea, real *tWe1, real *tbe1, real *tW1, real *tbn1, real *tWn2, real *tbn2, real *tea, int64_t N, int64_t E,
    int64_t Fd, int64_t K, int64_t H, int64_t O, int act, real *x, real *gx, real *z, real *g) {
    const int64_t D = Fd + H + 1;
    F(fwd_graph)(hb, eab, recv, send, We1t, be1, x, N, E, Fd, K, H, 1, act, z);
    for (int64_t n = 0; n < N; n += NODE_BLOCK) {
        const real *xb = x + n * D, *gob = goutb + n * O;
        real *gxb = gx + n * D, *ghn = ghb ? ghb + n * Fd : NULL;
        switch (N - n < NODE_BLOCK ? N - n : NODE_BLOCK) {
            case 4: F(node_bwd_block)(xb, gob, gxb, ghn, W1t, W1, bn1, Wn2, tW1, tbn1, tWn2, tbn2, 4, D, Fd, H, O, act); break;
            case 3: F(node_bwd_block)(xb, gob, gxb, ghn, W1t, W1, bn1, Wn2, tW1, tbn1, tWn2, tbn2, 3, D, Fd, H, O, act); break;
            case 2: F(node_bwd_block)(xb, gob, gxb, ghn, W1t, W1, bn1, Wn2, tW1, tbn1, tWn2, tbn2, 2, D, Fd, H, O, act); break;
            default: F(node_bwd_block)(xb, gob, gxb, ghn, W1t, W1, bn1, Wn2, tW1, tbn1, tWn2, tbn2, 1, D, Fd, H, O, act);
        }
    }
    F(bwd_graph)(hb, eab, recv, send, We1t, be1, gx, D, Fd, ghb, geab, shared_ea, tWe1, tbe1, tea, E, Fd, K, H, act, z, g);
}

/* gh [B, N, F] (zeroed by the caller) and gea may be NULL; the weight gradients are written into
 * gblock (layout in the header comment). */
int F(interaction_bwd)(const real *h, const real *ea, int64_t ea_bstride, const int64_t *recv, const int64_t *send,
                       const real *We1t, const real *be1, const real *W1t, const real *W1, const real *bn1,
                       const real *Wn2, const real *gout, real *gh, real *gea, real *gblock, int64_t B, int64_t N,
                       int64_t E, int64_t Fd, int64_t K, int64_t H, int64_t O, int act, int nthreads) {
    const int64_t De = 2 * Fd + K, D = Fd + H + 1;
    if (H != 32) return 2;
    const int shared_ea = gea && ea_bstride == 0;
    const int64_t nblock = De * H + H + D * H + H + O * H + O;
    const int64_t per = F(padded)(nblock + (shared_ea ? E * K : 0));
    if (nthreads < 1) nthreads = 1;
    if (nthreads > B) nthreads = B > 0 ? (int)B : 1;
    real *buf = F(zeroed)(per * nthreads);
    if (!buf) return 1;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        const int t = omp_get_thread_num();
        real *tWe1 = buf + t * per, *tbe1 = tWe1 + De * H, *tW1 = tbe1 + H, *tbn1 = tW1 + D * H, *tWn2 = tbn1 + H,
             *tbn2 = tWn2 + O * H, *tea = tbn2 + O;
        real *x = malloc(sizeof(real) * (2 * N * D + 2 * H)), *gx = x + N * D, *z = gx + N * D, *g = z + H;
        if (!x) failed = 1;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (!x) continue;
            const real *hb = h + b * N * Fd, *eab = K ? ea + b * ea_bstride : NULL, *goutb = gout + b * N * O;
            real *ghb = gh ? gh + b * N * Fd : NULL, *geab = gea && !shared_ea ? gea + b * ea_bstride : NULL;
            switch (H) {
                case 32: F(layer_bwd_graph)(hb, eab, recv, send, We1t, be1, W1t, W1, bn1, Wn2, goutb, ghb, geab, shared_ea, tWe1, tbe1, tW1, tbn1, tWn2, tbn2, tea, N, E, Fd, K, 32, O, act, x, gx, z, g); break;
            }
        }
        free(x);
    }
    if (failed) {
        free(buf);
        return 1;
    }
    memset(gblock, 0, sizeof(real) * nblock);
    if (shared_ea) memset(gea, 0, sizeof(real) * E * K);
    for (int t = 0; t < nthreads; ++t) {
        const real *tb = buf + t * per;
        for (int64_t q = 0; q < nblock; ++q) gblock[q] += tb[q];
        if (shared_ea)
            for (int64_t q = 0; q < E * K; ++q) gea[q] += tb[nblock + q];
    }
    free(buf);
    return 0;
}
