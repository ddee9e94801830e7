/* The node-level part shared by both EGNN edge kernels (egnn_edges.c, single-channel, and
 * egnn_multichannel.c): the first message Linear's receiver and sender blocks applied per node
 * (P = Wi h + b1, S = Wj h) for a tile of batch rows, its backward, and the tile size.
 *
 * A thread goes through its rows in tiles: it computes P and S of a tile's rows for every node
 * into scratch that stays in cache, runs every edge over the tile, and (backward) turns the
 * tile's g_P, g_S into g_h and the gradients of Wi, Wj, b1 before the next tile. */

#define EGNN_TILE_BYTES (2048 * 1024) /* a tile's P and S rows of every node (g_P, g_S in the backward) */

/* rows per tile: a multiple of rb (the kernel's rows per edge block) whose P and S rows of all N
 * nodes fill about EGNN_TILE_BYTES, and no more than a thread's share of the R rows (nthreads
 * threads, whole groups of rep rows) needs */
static inline int64_t F(egnn_tile_rows)(int64_t N, int64_t H, int64_t R, int64_t rep, int nthreads, int64_t rb) {
    const int64_t rt = EGNN_TILE_BYTES / (2 * (N > 0 ? N : 1) * H * (int64_t)sizeof(real)) / rb * rb;
    const int64_t share = ((R / rep + nthreads - 1) / nthreads * rep + rb - 1) / rb * rb;
    const int64_t n = rt < share ? rt : share;
    return n > rb ? n : rb;
}

/* Pt, St [N, RT, H] (first nt rows of each node) = b1 + Wi h and Wj h of rows ra .. ra + nt of every node */
static inline __attribute__((always_inline)) void F(egnn_project)(real *Pt, real *St, const real *h, const real *W1it,
                                                                const real *W1jt, const real *b1, int64_t N, int64_t R,
                                                                int64_t RT, int64_t ra, int64_t nt, int64_t H) {
    for (int64_t n = 0; n < N; ++n) {
        const real *hn = h + (n * R + ra) * H;
        F(lin_rows)(Pt + n * RT * H, hn, W1it, b1, nt, H, H);
        F(lin_core)(St + n * RT * H, NULL, 0, hn, W1jt, nt, H, H);
    }
}

/* g_h of a tile's rows of every node (gh NULL: not wanted) and the gradients of Wi, Wj, b1 from
 * the tile's g_P, g_S [N, RT, H] (first nt rows of each node) */
static inline __attribute__((always_inline)) void F(egnn_unproject)(real *gh, const real *gPt, const real *gSt,
                                                                  const real *h, const real *W1i, const real *W1j,
                                                                  real *tW1i, real *tW1j, real *tb1, int64_t N,
                                                                  int64_t R, int64_t RT, int64_t ra, int64_t nt,
                                                                  int64_t H) {
    for (int64_t n = 0; n < N; ++n) {
        const real *gPn = gPt + n * RT * H, *gSn = gSt + n * RT * H, *hn = h + (n * R + ra) * H;
        if (gh) {
            real *ghn = gh + (n * R + ra) * H;
            F(lin_core)(ghn, NULL, 0, gPn, W1i, nt, H, H); /* g_h = Wi^T g_P + Wj^T g_S */
            F(lin_core)(ghn, ghn, H, gSn, W1j, nt, H, H);
        }
        F(outer_rows)(tW1i, gPn, hn, nt, H);
        F(outer_rows)(tW1j, gSn, hn, nt, H);
        for (int64_t b = 0; b < nt; ++b)
#pragma omp simd
            for (int64_t k = 0; k < H; ++k) tb1[k] += gPn[b * H + k];
    }
}

/* zero rows r0 .. r1 of every node of a node-major [N, R, W] tensor (a thread's own rows) */
static inline void F(egnn_zero_rows)(real *t, int64_t N, int64_t R, int64_t W, int64_t r0, int64_t r1) {
    for (int64_t n = 0; n < N; ++n) memset(t + (n * R + r0) * W, 0, sizeof(real) * (r1 - r0) * W);
}
