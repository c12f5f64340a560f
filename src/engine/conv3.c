/*
 * conv3.c - 3x3 convolutions of the VAE decoder (see conv3.h).
 *
 * Winograd F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2016, interpolation points 0, +-1, +-2): each 4x4 block
 * of outputs ("tile") comes from the 6x6 block of inputs around it. V = B^T
 * d B per tile and input channel, U = G g G^T per filter, then for each of
 * the 36 points xi of the transform domain one product M[xi] (tiles, Cout) =
 * V[xi] (tiles, Cin) . U[xi]^T, and the outputs A^T m A: 36 multiplications
 * per tile and channel pair instead of 144. Tiles are processed in chunks of
 * whole tile rows, so a chunk's V and M stay a few MB.
 *
 * Direct method (small maps): the input is activated once into a
 * zero-bordered copy, and each output pixel is the sum over the 9 taps and
 * the input channels of the copy's pixel at the tap times the weight row.
 *
 * Both run the same register-blocked kernel: 6 pixels or tiles x 16 output
 * channels held in 12 AVX2 registers while the input channels go by, one
 * weight row loaded and each row's value broadcast per channel. The weights
 * are stored in panels of 16 outputs (conv3_pack_weights, at load) that the
 * direct method reads in place and the filter transform turns into U
 * panels of the same shape; the input transform writes V as plain rows:
 * nothing is packed at run time. Each
 * output is summed in one fixed order whatever its row in the block, the
 * chunk or the thread.
 *
 * Filters are transformed at every call rather than kept transformed: U is
 * four times the size of the 3x3 weights, and the model's resident memory
 * stays at the size of its weights. That costs a few percent at 32x32 and
 * above; below WINO_MIN_TILES tiles the direct method is cheaper.
 */
#include "conv3.h"

#include <string.h>

#include "conv3_dnn.h"

#include "ops.h"
#include "team.h"
#include "vec8.h"

#define PTS 36             /* points of the 6x6 transform domain */
#define SEG 8              /* tiles per row segment: one transform task */
#define MR 6               /* kernel block: pixels or tiles */
#define NR CONV3_PANEL      /* kernel block: output channels (one panel) */
#define PANELS 4           /* panels per product task */
#define DIRECT_BLOCKS 8    /* kernel blocks of pixels per direct product task */
#define CHUNK_FLOATS (1 << 22) /* V and M of one chunk of tiles, about */
#define WINO_MIN_TILES 24

static inline size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

static inline int min_int(int a, int b)
{
    return a < b ? a : b;
}

static int panels(int Cout)
{
    return (Cout + NR - 1) / NR;
}

int conv3_winograd(int H, int W, int Cin, int Cout)
{
    (void)Cin;
    (void)Cout;
    return ((H + 3) / 4) * ((W + 3) / 4) >= WINO_MIN_TILES;
}

/* Tile rows per Winograd chunk. */
static int chunk_rows(int H, int W, int Cin, int Cout)
{
    const int rows = CHUNK_FLOATS / (PTS * (Cin + Cout) * ((W + 3) / 4));
    return rows < 1 ? 1 : min_int(rows, (H + 3) / 4);
}

size_t conv3_weight_floats(int Cin, int Cout)
{
    return (size_t)9 * panels(Cout) * NR * Cin;
}

void conv3_pack_weights(float *w9, const float *w, int Cin, int Cout)
{
    const int P = panels(Cout);
    for (int tap = 0; tap < 9; tap++)
        for (int q = 0; q < P; q++)
            for (int i = 0; i < Cin; i++)
                for (int l = 0; l < NR; l++) {
                    const int o = q * NR + l;
                    w9[(((size_t)tap * P + q) * Cin + i) * NR + l] =
                        o < Cout ? w[((size_t)o * Cin + i) * 9 + tap] : 0.0f;
                }
}

size_t conv3_scratch_floats(int H, int W, int Cin, int Cout)
{
    if (!conv3_winograd(H, W, Cin, Cout))
        return round16((size_t)(H + 2) * (W + 2) * Cin);
    const size_t t = (size_t)chunk_rows(H, W, Cin, Cout) * ((W + 3) / 4);
    return round16((size_t)PTS * panels(Cout) * NR * Cin) + round16((size_t)PTS * t * Cin) +
           round16((size_t)PTS * t * Cout);
}

/* The affine of channels c0 .. c0 + n: center, scale, shift. */
V8_INLINE void input_affine(const struct conv3_input *in, int c0, int n, v8 ab[3])
{
    for (int i = 0; i < 3; i++)
        ab[i] = (v8){ 0 };
    if (in->scale) {
        v8_load(&ab[0], in->center + c0, n);
        v8_load(&ab[1], in->scale + c0, n);
        v8_load(&ab[2], in->shift + c0, n);
    }
}

/* *v = the input value at (y, x) of the convolution's (upsampled) input,
 * activated, rounded to bf16 for bf16 weights; (y, x) inside the map. */
V8_INLINE void input_at(v8 *v, const struct conv3_input *in, int bf16, int W, int Cin, int y,
                        int x, int c0, int n, const v8 ab[3])
{
    const int sh = in->up2 ? 1 : 0, Ws = W >> sh;
    v8_load(v, in->x + ((size_t)(y >> sh) * Ws + (x >> sh)) * Cin + c0, n);
    if (in->scale) {
        *v = (*v - ab[0]) * ab[1] + ab[2];
        if (in->silu)
            v8_silu(v);
    }
    if (bf16)
        v8_bf16_round(v);
}

VECTOR_CLONES
static void input_row(const struct conv3_input *in, int W, int Cin, int y, enum conv3_row mode,
                      void *dst)
{
    for (int c0 = 0; c0 < Cin; c0 += VEC8) {
        const int n = min_int(Cin - c0, VEC8);
        v8 ab[3];
        input_affine(in, c0, n, ab);
        for (int x = 0; x < W; x++) {
            const size_t at = (size_t)x * Cin + c0;
            v8 v;
            input_at(&v, in, mode != CONV3_F32, W, Cin, y, x, c0, n, ab);
            if (mode != CONV3_BF16) {
                v8_store((float *)dst + at, &v, n);
            } else {
                v8w u;
                memcpy(&u, &v, sizeof(u));
                for (int k = 0; k < n; k++)
                    ((uint16_t *)dst)[at + k] = (uint16_t)(u[k] >> 16);
            }
        }
    }
}

void conv3_input_row(const struct conv3_input *in, int W, int Cin, int y, enum conv3_row mode,
                     void *dst)
{
    input_row(in, W, Cin, y, mode, dst);
}

/* ---------------------------------------------------------------------------
 * The kernel: c (rows, cols) = sum over taps and k < K of
 * a[r][toff[tap] + k] * b[tap * bstep + k * 16 + col] (+ bias + res), b a
 * panel of 16 columns, float32 (b) or bf16 (b16, widened as it is read).
 * Rows past `rows` must still point at readable memory; they are not stored.
 */
__attribute__((always_inline))
static inline void kernel_block(const float *const a[MR], const long *toff, int taps,
                                const float *b, const uint16_t *b16, size_t bstep, int K,
                                float *c, int ldc, int rows, int cols,
                                const float *bias, const float *res)
{
    v8 acc[MR][2];
    for (int r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = (v8){ 0 };
    for (int tap = 0; tap < taps; tap++) {
        const float *at[MR];
        for (int r = 0; r < MR; r++)
            at[r] = a[r] + toff[tap];
        for (int k = 0; k < K; k++) {
            const size_t o = (size_t)tap * bstep + (size_t)k * NR;
            v8 b0, b1;
            if (b16) {
                v8_from_bf16(&b0, b16 + o);
                v8_from_bf16(&b1, b16 + o + VEC8);
            } else {
                b0 = *(const v8u *)(b + o);
                b1 = *(const v8u *)(b + o + VEC8);
            }
            for (int r = 0; r < MR; r++) {
                const float x = at[r][k];
                acc[r][0] += x * b0;
                acc[r][1] += x * b1;
            }
        }
    }
    const int n0 = min_int(cols, VEC8), n1 = cols - n0;
    for (int r = 0; r < rows; r++) {
        v8 v0 = acc[r][0], v1 = acc[r][1], t;
        if (bias) {
            v8_load(&t, bias, n0);
            v0 += t;
            if (n1 > 0) {
                v8_load(&t, bias + VEC8, n1);
                v1 += t;
            }
        }
        if (res) {
            v8_load(&t, res + (size_t)r * ldc, n0);
            v0 += t;
            if (n1 > 0) {
                v8_load(&t, res + (size_t)r * ldc + VEC8, n1);
                v1 += t;
            }
        }
        v8_store(c + (size_t)r * ldc, &v0, n0);
        if (n1 > 0)
            v8_store(c + (size_t)r * ldc + VEC8, &v1, n1);
    }
}

/* ---------------------------------------------------------------------------
 * Direct method.
 */
struct direct_job {
    float *out;
    const float *residual, *w9, *bias;
    const uint16_t *w16;     /* bf16 weights instead of w9 */
    struct conv3_input in;
    int H, W, Cin, Cout;
    float *pad;              /* (H + 2, W + 2, Cin), zero border */
    long toff[9];            /* tap offsets in pad, floats */
    int pixel_tasks, panel_groups;
};

static void direct_pad_task(void *arg, int y, int thread)
{
    const struct direct_job *j = arg;
    const int W = j->W, Cin = j->Cin;
    float *row = j->pad + (size_t)y * (W + 2) * Cin;
    (void)thread;

    if (y == 0 || y == j->H + 1) {
        memset(row, 0, sizeof(float) * (size_t)(W + 2) * Cin);
        return;
    }
    memset(row, 0, sizeof(float) * (size_t)Cin);
    memset(row + (size_t)(W + 1) * Cin, 0, sizeof(float) * (size_t)Cin);
    conv3_input_row(&j->in, W, Cin, y - 1, j->w16 ? CONV3_ROUNDED : CONV3_F32, row + Cin);
}

KERNEL_CLONES
static void direct_product_task(void *arg, int task, int thread)
{
    const struct direct_job *j = arg;
    const int pixels = j->H * j->W, Cout = j->Cout;
    const int p_begin = (task / j->panel_groups) * DIRECT_BLOCKS * MR;
    const int p_end = min_int(p_begin + DIRECT_BLOCKS * MR, pixels);
    const int q0 = (task % j->panel_groups) * PANELS;
    const int q1 = min_int(q0 + PANELS, panels(Cout));
    const size_t bstep = (size_t)panels(Cout) * j->Cin * NR;
    (void)thread;

    for (int q = q0; q < q1; q++) {
        const int cols = min_int(Cout - q * NR, NR);
        for (int p0 = p_begin; p0 < p_end; p0 += MR) {
            const int rows = min_int(p_end - p0, MR);
            const float *a[MR];
            for (int r = 0; r < MR; r++) {
                const int p = p0 + min_int(r, rows - 1);
                a[r] = j->pad + ((size_t)(p / j->W) * (j->W + 2) + p % j->W) * j->Cin;
            }
            float *c = j->out + (size_t)p0 * Cout + q * NR;
            const float *res = j->residual ? j->residual + (size_t)p0 * Cout + q * NR : NULL;
            const size_t at = (size_t)q * j->Cin * NR;
            if (j->w16)
                kernel_block(a, j->toff, 9, NULL, j->w16 + at, bstep, j->Cin, c, Cout, rows, cols,
                             j->bias + q * NR, res);
            else
                kernel_block(a, j->toff, 9, j->w9 + at, NULL, bstep, j->Cin, c, Cout, rows, cols,
                             j->bias + q * NR, res);
        }
    }
}

static void direct_run(const struct ops_ctx *c, struct direct_job *j)
{
    const int pixels = j->H * j->W;
    for (int tap = 0; tap < 9; tap++)
        j->toff[tap] = ((long)(tap / 3) * (j->W + 2) + tap % 3) * j->Cin;
    j->pixel_tasks = (pixels + DIRECT_BLOCKS * MR - 1) / (DIRECT_BLOCKS * MR);
    j->panel_groups = (panels(j->Cout) + PANELS - 1) / PANELS;
    team_run(c->team, direct_pad_task, j, j->H + 2);
    team_run(c->team, direct_product_task, j, j->pixel_tasks * j->panel_groups);
}

/* ---------------------------------------------------------------------------
 * Winograd.
 */
struct wino_job {
    float *out;
    const float *residual, *w9, *bias;
    const uint16_t *w16;        /* bf16 weights instead of w9 */
    struct conv3_input in;
    int H, W, Cin, Cout;
    int tiles_w, tiles_h, segs; /* tiles per row and column, segments per row */
    int chunk;                  /* tiles per full chunk */
    int row0, nt;               /* this chunk: first tile row, tiles */
    int panels;                 /* of U: ceil(Cout / 16) */
    float *U;                   /* (36, panels, Cin, 16), zero past Cout */
    float *V, *M;               /* (36, chunk, Cin), (36, chunk, Cout) */
};

/* Filters: U[xi] = (G g G^T)[xi] for 8 output channels at a time, from
 * panels of weights to panels of U. G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 * 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]. */
V8_INLINE void g_col(v8 u[6], const v8 *pa, const v8 *pb, const v8 *pc)
{
    const v8 a = *pa, b = *pb, c = *pc;
    u[0] = a * 0.25f;
    u[1] = (a + b + c) * (-1.0f / 6.0f);
    u[2] = (a - b + c) * (-1.0f / 6.0f);
    u[3] = a * (1.0f / 24.0f) + b * (1.0f / 12.0f) + c * (1.0f / 6.0f);
    u[4] = a * (1.0f / 24.0f) - b * (1.0f / 12.0f) + c * (1.0f / 6.0f);
    u[5] = c;
}

VECTOR_CLONES
static void filter_task(void *arg, int panel, int thread)
{
    const struct wino_job *j = arg;
    const int Cin = j->Cin;
    (void)thread;

    for (int i0 = 0; i0 < Cin; i0++) {
        for (int half = 0; half < NR / VEC8; half++) {
            v8 g[9], t[6][3], u[6];
            for (int tap = 0; tap < 9; tap++) {
                const size_t at = (((size_t)tap * j->panels + panel) * Cin + i0) * NR + half * VEC8;
                if (j->w16)
                    v8_from_bf16(&g[tap], j->w16 + at);
                else
                    g[tap] = *(const v8u *)(j->w9 + at);
            }
            for (int kx = 0; kx < 3; kx++) {
                v8 col[6];
                g_col(col, &g[kx], &g[3 + kx], &g[6 + kx]);
                for (int i = 0; i < 6; i++)
                    t[i][kx] = col[i];
            }
            for (int i = 0; i < 6; i++) {
                g_col(u, &t[i][0], &t[i][1], &t[i][2]);
                for (int k = 0; k < 6; k++) {
                    const size_t at = (((size_t)(i * 6 + k) * j->panels + panel) * Cin + i0) * NR;
                    v8_store(j->U + at + half * VEC8, &u[k], VEC8);
                }
            }
        }
    }
}

/* Input tiles: V[xi] (tile, Cin) = (B^T d B)[xi], d the 6x6 inputs around
 * the tile after the on-the-fly affine / SiLU / upsampling, zero outside.
 * B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
 *        0 2 -1 -2 1 0; 0 4 0 -5 0 1]. */
V8_INLINE void bt_col(v8 r[6], const v8 d[6])
{
    r[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    r[1] = d[3] + d[4] - 4.0f * (d[1] + d[2]);
    r[2] = 4.0f * (d[1] - d[2]) + d[4] - d[3];
    r[3] = 2.0f * (d[3] - d[1]) + d[4] - d[2];
    r[4] = 2.0f * (d[1] - d[3]) + d[4] - d[2];
    r[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

/* A task is a segment of up to SEG tiles of one tile row of the chunk. */
static void segment(const struct wino_job *j, int task, int *ty, int *tx0, int *n)
{
    *ty = j->row0 + task / j->segs;
    *tx0 = (task % j->segs) * SEG;
    *n = min_int(SEG, j->tiles_w - *tx0);
}

/* The segment's 6 input rows are activated once per channel block into a
 * strip, which its tiles then share: 1.6 activations per input value
 * instead of 2.25 tile by tile. */
VECTOR_CLONES
static void input_task(void *arg, int task, int thread)
{
    const struct wino_job *j = arg;
    const int H = j->H, W = j->W, Cin = j->Cin;
    int ty, tx0, n;
    (void)thread;

    segment(j, task, &ty, &tx0, &n);
    const int y0 = 4 * ty - 1, x0 = 4 * tx0 - 1, width = 4 * n + 2;
    const int first = (ty - j->row0) * j->tiles_w + tx0;
    for (int c0 = 0; c0 < Cin; c0 += VEC8) {
        const int cn = min_int(Cin - c0, VEC8);
        v8 ab[3], strip[6][4 * SEG + 2];
        input_affine(&j->in, c0, cn, ab);
        for (int i = 0; i < 6; i++) {
            const int y = y0 + i;
            for (int k = 0; k < width; k++) {
                const int x = x0 + k;
                if (y < 0 || y >= H || x < 0 || x >= W)
                    strip[i][k] = (v8){ 0 };
                else
                    input_at(&strip[i][k], &j->in, j->w16 != NULL, W, Cin, y, x, c0, cn, ab);
            }
        }
        for (int t = 0; t < n; t++) {
            v8 tmp[6][6];
            for (int k = 0; k < 6; k++) {
                v8 col[6], r[6];
                for (int i = 0; i < 6; i++)
                    col[i] = strip[i][4 * t + k];
                bt_col(r, col);
                for (int i = 0; i < 6; i++)
                    tmp[i][k] = r[i];
            }
            for (int i = 0; i < 6; i++) {
                v8 r[6];
                bt_col(r, tmp[i]);
                for (int k = 0; k < 6; k++)
                    v8_store(j->V + ((size_t)(i * 6 + k) * j->chunk + first + t) * Cin + c0,
                             &r[k], cn);
            }
        }
    }
}

/* Products: M[xi] = V[xi] . U[xi]^T for a group of panels. */
KERNEL_CLONES
static void product_task(void *arg, int task, int thread)
{
    const struct wino_job *j = arg;
    const int groups = (j->panels + PANELS - 1) / PANELS;
    const int xi = task / groups, q0 = (task % groups) * PANELS;
    const int q1 = min_int(q0 + PANELS, j->panels);
    const float *V = j->V + (size_t)xi * j->chunk * j->Cin;
    float *M = j->M + (size_t)xi * j->chunk * j->Cout;
    static const long no_offset[1] = { 0 };
    (void)thread;

    for (int q = q0; q < q1; q++) {
        const float *b = j->U + ((size_t)xi * j->panels + q) * j->Cin * NR;
        const int cols = min_int(j->Cout - q * NR, NR);
        for (int t0 = 0; t0 < j->nt; t0 += MR) {
            const int rows = min_int(j->nt - t0, MR);
            const float *a[MR];
            for (int r = 0; r < MR; r++)
                a[r] = V + (size_t)(t0 + min_int(r, rows - 1)) * j->Cin;
            kernel_block(a, no_offset, 1, b, NULL, 0, j->Cin, M + (size_t)t0 * j->Cout + q * NR,
                         j->Cout, rows, cols, NULL, NULL);
        }
    }
}

/* Output tiles: out = A^T m A + bias [+ residual].
 * A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]. */
V8_INLINE void at_col(v8 r[4], const v8 m[6])
{
    const v8 s12 = m[1] + m[2], d12 = m[1] - m[2];
    const v8 s34 = m[3] + m[4], d34 = m[3] - m[4];
    r[0] = m[0] + s12 + s34;
    r[1] = d12 + 2.0f * d34;
    r[2] = s12 + 4.0f * s34;
    r[3] = d12 + 8.0f * d34 + m[5];
}

VECTOR_CLONES
static void output_task(void *arg, int task, int thread)
{
    const struct wino_job *j = arg;
    const int H = j->H, W = j->W, Cout = j->Cout;
    int ty, tx0, n;
    (void)thread;

    segment(j, task, &ty, &tx0, &n);
    const int first = (ty - j->row0) * j->tiles_w + tx0;
    for (int c0 = 0; c0 < Cout; c0 += VEC8) {
        const int cn = min_int(Cout - c0, VEC8);
        v8 bias;
        v8_load(&bias, j->bias + c0, cn);
        for (int t = 0; t < n; t++) {
            const int y0 = ty * 4, x0 = (tx0 + t) * 4;
            v8 m[6][6], tmp[4][6];
            for (int xi = 0; xi < PTS; xi++)
                v8_load(&m[xi / 6][xi % 6],
                        j->M + ((size_t)xi * j->chunk + first + t) * Cout + c0, cn);
            for (int k = 0; k < 6; k++) {
                v8 col[6], r[4];
                for (int i = 0; i < 6; i++)
                    col[i] = m[i][k];
                at_col(r, col);
                for (int i = 0; i < 4; i++)
                    tmp[i][k] = r[i];
            }
            for (int i = 0; i < 4 && y0 + i < H; i++) {
                v8 r[4];
                at_col(r, tmp[i]);
                for (int k = 0; k < 4 && x0 + k < W; k++) {
                    const size_t at = ((size_t)(y0 + i) * W + x0 + k) * Cout + c0;
                    v8 v = r[k] + bias, res;
                    if (j->residual) {
                        v8_load(&res, j->residual + at, cn);
                        v += res;
                    }
                    v8_store(j->out + at, &v, cn);
                }
            }
        }
    }
}

static void wino_run(const struct ops_ctx *c, struct wino_job *j, float *scratch)
{
    const int rows = chunk_rows(j->H, j->W, j->Cin, j->Cout);
    j->tiles_w = (j->W + 3) / 4;
    j->tiles_h = (j->H + 3) / 4;
    j->segs = (j->tiles_w + SEG - 1) / SEG;
    j->chunk = rows * j->tiles_w;
    j->panels = panels(j->Cout);
    j->U = scratch;
    j->V = j->U + round16((size_t)PTS * j->panels * NR * j->Cin);
    j->M = j->V + round16((size_t)PTS * j->chunk * j->Cin);

    team_run(c->team, filter_task, j, j->panels);
    for (j->row0 = 0; j->row0 < j->tiles_h; j->row0 += rows) {
        const int nrows = min_int(rows, j->tiles_h - j->row0);
        j->nt = nrows * j->tiles_w;
        team_run(c->team, input_task, j, nrows * j->segs);
        team_run(c->team, product_task, j, PTS * ((j->panels + PANELS - 1) / PANELS));
        team_run(c->team, output_task, j, nrows * j->segs);
    }
}

void conv3_run(const struct ops_ctx *c, float *out, const float *residual,
               const struct conv3_input *in, const struct conv3_weights *wt,
               int H, int W, float *scratch, struct conv3_dnn_ctx *dnn)
{
    const int Cin = wt->cin, Cout = wt->cout;
    if (wt->dnn) {
        conv3_dnn_run(c, dnn, out, residual, in, wt, H, W);
    } else if (conv3_winograd(H, W, Cin, Cout)) {
        struct wino_job j = {
            .out = out, .residual = residual, .w9 = wt->w, .w16 = wt->w16, .bias = wt->b,
            .in = *in, .H = H, .W = W, .Cin = Cin, .Cout = Cout,
        };
        wino_run(c, &j, scratch);
    } else {
        struct direct_job j = {
            .out = out, .residual = residual, .w9 = wt->w, .w16 = wt->w16, .bias = wt->b,
            .in = *in, .H = H, .W = W, .Cin = Cin, .Cout = Cout, .pad = scratch,
        };
        direct_run(c, &j);
    }
}
