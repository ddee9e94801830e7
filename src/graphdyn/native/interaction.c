/* The whole interaction layer, forward and backward, graph by graph (graphdyn.ops.interaction).
 *
 * For graph b, with x_bn = [h_bn, S_bn, deg_n] (D = F + H + 1) built by F(fwd_graph) of edge_sum.c:
 *
 *     z_bn   = W1 x_bn + bn1          (W1 [H, D], also used transposed: W1t [D, H])
 *     out_bn = Wn2 act(z_bn) + bn2    (Wn2 [O, H], out [B, N, O])
 *
 * The exported functions take the layer's own parameters and compose W1 from the node MLP's first
 * layer and the edge MLP's last (F(compose); see graphdyn/ops/interaction.py), and map the gradients back
 * to those parameters (F(uncompose)). The forward pass writes x [B, N, D] and z [B, N, H] to xs,
 * zs when they are given (a pass that will be differentiated); the backward pass reads them
 * there, or recomputes them per graph in thread-local scratch when they are NULL. Backward for
 * gout [B, N, O]:
 *
 *     gWn2 += gout (x) act(z)   gbn2 += gout   gz = (Wn2^T gout) * act'(z)
 *     gW1t += x (x) gz          gbn1 += gz     gx = W1^T gz  ->  gh += gx[0:F], gS = gx[F:F+H]
 *
 * and then the edge part's backward of edge_sum.c with gS. Per-thread gradient blocks (padded to
 * cache lines, [gWe1t (De H), gbe1 (H), gW1t (D H), gbn1 (H), gWn2 (O H), gbn2 (O)], De = 2F + K)
 * are summed in thread order. Only hidden width LIN_MAXH (native/__init__.py LIMITS: 32, the
 * notebook's) is compiled (each width multiplies the compile time): both functions return 0, 1 when
 * memory ran out, 2 for another width.
 */

#ifndef NODE_BLOCK
#define NODE_BLOCK 4 /* nodes whose node-MLP rows are processed together */
#endif

/* The node part's forward for nb consecutive rows at once (nb <= NODE_BLOCK; see F(node_bwd_block)) */
static inline __attribute__((always_inline)) void F(node_fwd_block)(const real *restrict xb, const real *restrict W1t,
                                                                  const real *restrict bn1, const real *restrict Wn2,
                                                                  const real *restrict bn2, real *restrict outb,
                                                                  real *restrict zsb, int64_t nb, int64_t D, int64_t H,
                                                                  int64_t O, int act) {
    real z[NODE_BLOCK][H];
    F(lin_rows)(&z[0][0], xb, W1t, bn1, nb, D, H);
    if (zsb) memcpy(zsb, &z[0][0], sizeof(real) * nb * H); /* kept for the backward pass */
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
                                                                   real *x, real *zsb) {
    const int64_t D = Fd + H + 1;
    F(fwd_graph)(hb, eab, recv, send, We1t, be1, x, N, E, Fd, K, H, 1, act);
    for (int64_t n = 0; n < N; n += NODE_BLOCK) {
        const real *xb = x + n * D;
        real *ob = outb + n * O, *zb = zsb ? zsb + n * H : NULL;
        switch (N - n < NODE_BLOCK ? N - n : NODE_BLOCK) {
            case 4: F(node_fwd_block)(xb, W1t, bn1, Wn2, bn2, ob, zb, 4, D, H, O, act); break;
            case 3: F(node_fwd_block)(xb, W1t, bn1, Wn2, bn2, ob, zb, 3, D, H, O, act); break;
            case 2: F(node_fwd_block)(xb, W1t, bn1, Wn2, bn2, ob, zb, 2, D, H, O, act); break;
            default: F(node_fwd_block)(xb, W1t, bn1, Wn2, bn2, ob, zb, 1, D, H, O, act);
        }
    }
}

/* The weights the loops use, from the layer's own parameters, into wk [De H + 2 H D]:
 *
 *     We1t [De, H] = We1^T      W1 [H, D] = [Wn1[:, :F], Wn1[:, F:] W2, Wn1[:, F:] b2]      W1t = W1^T
 *
 * (We1 [H, De] the edge MLP's first weight, W2 [H, H], b2 [H] its last layer, Wn1 [H, F + H] the
 * node MLP's first weight). A few thousand multiply-adds, done once per call on one thread: six
 * PyTorch ops with their autograd nodes cost more than the whole kernel does on small graphs. */
static void F(compose)(const real *We1, const real *W2, const real *b2, const real *Wn1, real *wk, int64_t De, int64_t Fd,
                       int64_t H) {
    const int64_t D = Fd + H + 1, Dn = Fd + H;
    real *We1t = wk, *W1 = wk + De * H, *W1t = W1 + H * D;
    for (int64_t k = 0; k < H; ++k)
        for (int64_t d = 0; d < De; ++d) We1t[d * H + k] = We1[k * De + d];
    for (int64_t q = 0; q < H; ++q) {
        const real *wn = Wn1 + q * Dn, *wm = wn + Fd;
        real *w1 = W1 + q * D, cb = 0;
        for (int64_t d = 0; d < Fd; ++d) w1[d] = wn[d];
        for (int64_t c = 0; c < H; ++c) w1[Fd + c] = 0;
        for (int64_t m = 0; m < H; ++m) {
            const real a = wm[m], *w2 = W2 + m * H;
            for (int64_t c = 0; c < H; ++c) w1[Fd + c] += a * w2[c];
            cb += a * b2[m];
        }
        w1[Fd + H] = cb;
    }
    for (int64_t q = 0; q < H; ++q)
        for (int64_t d = 0; d < D; ++d) W1t[d * H + q] = W1[q * D + d];
}

/* out [B, N, O]; wk receives the composed weights (F(compose)) for the backward pass; xs, zs as in
 * the header comment (NULL: not kept) */
int F(interaction_fwd)(const real *h, const real *ea, int64_t ea_bstride, const int64_t *recv, const int64_t *send,
                       const real *We1, const real *be1, const real *W2, const real *b2, const real *Wn1,
                       const real *bn1, const real *Wn2, const real *bn2, real *wk, real *out, real *xs, real *zs,
                       int64_t B, int64_t N, int64_t E, int64_t Fd, int64_t K, int64_t H, int64_t O, int act,
                       int nthreads) {
    const int64_t D = Fd + H + 1, De = 2 * Fd + K;
    if (H != LIN_MAXH) return 2; /* compiled for one width only (graphdyn.ops.interaction.WIDTH) */
    F(compose)(We1, W2, b2, Wn1, wk, De, Fd, H);
    const real *We1t = wk, *W1t = wk + De * H + H * D;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        real *x = malloc(sizeof(real) * (N * D + 1)); /* + 1: never malloc(0) */
        if (!x) failed = 1;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (!x) continue;
            const real *hb = h + b * N * Fd, *eab = K ? ea + b * ea_bstride : NULL;
            real *outb = out + b * N * O, *xb = xs ? xs + b * N * D : x, *zsb = zs ? zs + b * N * H : NULL;
            switch (H) {
                case LIN_MAXH: F(layer_fwd_graph)(hb, eab, recv, send, We1t, be1, W1t, bn1, Wn2, bn2, outb, N, E, Fd, K, LIN_MAXH, O, act, xb, zsb); break;
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
    real *restrict tWn2, real *restrict tbn2, const real *restrict zsb, int64_t nb, int64_t D, int64_t Fd, int64_t H,
    int64_t O, int act) {
    real zl[NODE_BLOCK][H], gz[NODE_BLOCK][H];
    if (!zsb) F(lin_rows)(&zl[0][0], xb, W1t, bn1, nb, D, H); /* recomputed, as in the forward pass */
    const real(*restrict z)[H] = zsb ? (const real(*)[H])zsb : (const real(*)[H])zl;
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
    int64_t Fd, int64_t K, int64_t H, int64_t O, int act, real *x, const real *xsb, const real *zsb, real *gx) {
    const int64_t D = Fd + H + 1;
    if (xsb) x = (real *)xsb; /* the forward pass's rows */
    else F(fwd_graph)(hb, eab, recv, send, We1t, be1, x, N, E, Fd, K, H, 1, act);
    for (int64_t n = 0; n < N; n += NODE_BLOCK) {
        const real *xb = x + n * D, *gob = goutb + n * O, *zb = zsb ? zsb + n * H : NULL;
        real *gxb = gx + n * D, *ghn = ghb ? ghb + n * Fd : NULL;
        switch (N - n < NODE_BLOCK ? N - n : NODE_BLOCK) {
            case 4: F(node_bwd_block)(xb, gob, gxb, ghn, W1t, W1, bn1, Wn2, tW1, tbn1, tWn2, tbn2, zb, 4, D, Fd, H, O, act); break;
            case 3: F(node_bwd_block)(xb, gob, gxb, ghn, W1t, W1, bn1, Wn2, tW1, tbn1, tWn2, tbn2, zb, 3, D, Fd, H, O, act); break;
            case 2: F(node_bwd_block)(xb, gob, gxb, ghn, W1t, W1, bn1, Wn2, tW1, tbn1, tWn2, tbn2, zb, 2, D, Fd, H, O, act); break;
            default: F(node_bwd_block)(xb, gob, gxb, ghn, W1t, W1, bn1, Wn2, tW1, tbn1, tWn2, tbn2, zb, 1, D, Fd, H, O, act);
        }
    }
    F(bwd_graph)(hb, eab, recv, send, We1t, be1, gx, D, Fd, ghb, geab, shared_ea, tWe1, tbe1, tea, E, Fd, K, H, act);
}

/* Gradients of the layer's own parameters from those of the weights the loops use (F(compose)),
 * with G [H, D] = gW1t^T:
 *
 *     gWe1 = gWe1t^T      gWn1 = [G[:, :F], G[:, F:F+H] W2^T + G[:, F+H] b2^T]
 *     gW2 = Wn1[:, F:]^T G[:, F:F+H]      gb2 = Wn1[:, F:]^T G[:, F+H] */
static void F(uncompose)(const real *gWe1t, const real *gW1t, const real *W2, const real *b2, const real *Wn1,
                         real *gWe1, real *gW2, real *gb2, real *gWn1, int64_t De, int64_t Fd, int64_t H) {
    const int64_t Dn = Fd + H;
    for (int64_t k = 0; k < H; ++k)
        for (int64_t d = 0; d < De; ++d) gWe1[k * De + d] = gWe1t[d * H + k];
    memset(gW2, 0, sizeof(real) * H * H);
    memset(gb2, 0, sizeof(real) * H);
    for (int64_t q = 0; q < H; ++q) {
        const real *wm = Wn1 + q * Dn + Fd, gc = gW1t[(Fd + H) * H + q];
        real *gwn = gWn1 + q * Dn;
        real gm[H];
        for (int64_t c = 0; c < H; ++c) gm[c] = gW1t[(Fd + c) * H + q];
        for (int64_t d = 0; d < Fd; ++d) gwn[d] = gW1t[d * H + q];
        for (int64_t m = 0; m < H; ++m) {
            const real *w2 = W2 + m * H, a = wm[m];
            real acc = gc * b2[m];
            for (int64_t c = 0; c < H; ++c) acc += gm[c] * w2[c];
            gwn[Fd + m] = acc;
            real *g2 = gW2 + m * H;
            for (int64_t c = 0; c < H; ++c) g2[c] += a * gm[c];
            gb2[m] += a * gc;
        }
    }
}

/* wk: the composed weights from the forward pass; gh [B, N, F] (zeroed by the caller) and gea may
 * be NULL. gparams[8] point to the gradients of the layer's parameters, each in its own layout:
 * [We1 (H De), be1 (H), W2 (H H), b2 (H), Wn1 (H (F + H)), bn1 (H), Wn2 (O H), bn2 (O)] (separate
 * tensors, so that autograd takes them as they are: splitting one buffer into eight views cost
 * more than this whole function on small batches). */
int F(interaction_bwd)(const real *h, const real *ea, int64_t ea_bstride, const int64_t *recv, const int64_t *send,
                       const real *be1, const real *W2, const real *b2, const real *Wn1, const real *bn1,
                       const real *Wn2, const real *wk, const real *xs, const real *zs, const real *gout, real *gh,
                       real *gea, real *const *gparams, int64_t B, int64_t N, int64_t E, int64_t Fd, int64_t K, int64_t H,
                       int64_t O, int act, int nthreads) {
    const int64_t De = 2 * Fd + K, D = Fd + H + 1;
    if (H != LIN_MAXH) return 2;
    const real *We1t = wk, *W1 = wk + De * H, *W1t = W1 + H * D;
    const int shared_ea = gea && ea_bstride == 0;
    const int64_t nblock = De * H + H + D * H + H + O * H + O;
    const int64_t per = F(padded)(nblock + (shared_ea ? E * K : 0));
    if (nthreads < 1) nthreads = 1;
    if (nthreads > B) nthreads = B > 0 ? (int)B : 1;
    real *buf = F(zeroed)(per * nthreads), *gblock = malloc(sizeof(real) * nblock);
    if (!buf || !gblock) {
        free(buf);
        free(gblock);
        return 1;
    }
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        const int t = omp_get_thread_num();
        real *tWe1 = buf + t * per, *tbe1 = tWe1 + De * H, *tW1 = tbe1 + H, *tbn1 = tW1 + D * H, *tWn2 = tbn1 + H,
             *tbn2 = tWn2 + O * H, *tea = tbn2 + O;
        real *x = malloc(sizeof(real) * (2 * N * D + 1)), *gx = x + N * D;
        if (!x) failed = 1;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (!x) continue;
            const real *hb = h + b * N * Fd, *eab = K ? ea + b * ea_bstride : NULL, *goutb = gout + b * N * O;
            real *ghb = gh ? gh + b * N * Fd : NULL, *geab = gea && !shared_ea ? gea + b * ea_bstride : NULL;
            const real *xsb = xs ? xs + b * N * D : NULL, *zsb = zs ? zs + b * N * H : NULL;
            switch (H) {
                case LIN_MAXH: F(layer_bwd_graph)(hb, eab, recv, send, We1t, be1, W1t, W1, bn1, Wn2, goutb, ghb, geab, shared_ea, tWe1, tbe1, tW1, tbn1, tWn2, tbn2, tea, N, E, Fd, K, LIN_MAXH, O, act, x, xsb, zsb, gx); break;
            }
        }
        free(x);
    }
    if (!failed) {
        F(sum_threads)(gblock, buf, per, nblock, nthreads);
        if (shared_ea) {
            memset(gea, 0, sizeof(real) * E * K);
            for (int t = 0; t < nthreads; ++t)
                for (int64_t q = 0; q < E * K; ++q) gea[q] += buf[t * per + nblock + q];
        }
        /* gblock: [gWe1t (De H), gbe1 (H), gW1t (D H), gbn1 (H), gWn2 (O H), gbn2 (O)] */
        const real *gWe1t = gblock, *gbe1 = gWe1t + De * H, *gW1t = gbe1 + H, *gbn1 = gW1t + D * H, *gWn2 = gbn1 + H,
                   *gbn2 = gWn2 + O * H;
        real *pWe1 = gparams[0], *pbe1 = gparams[1], *pW2 = gparams[2], *pb2 = gparams[3], *pWn1 = gparams[4],
             *pbn1 = gparams[5], *pWn2 = gparams[6], *pbn2 = gparams[7];
        F(uncompose)(gWe1t, gW1t, W2, b2, Wn1, pWe1, pW2, pb2, pWn1, De, Fd, H);
        memcpy(pbe1, gbe1, sizeof(real) * H);
        memcpy(pbn1, gbn1, sizeof(real) * H);
        memcpy(pWn2, gWn2, sizeof(real) * O * H);
        memcpy(pbn2, gbn2, sizeof(real) * O);
    }
    free(buf);
    free(gblock);
    return failed;
}
