/*
 * ops_bf16.c - the portable bf16 products: bf16 weights, activations
 * rounded to bf16 at the product's input, float32 accumulation, on any
 * x86-64 CPU (no bf16 instructions needed).
 *
 * Every operand is staged: a task widens the bf16 weights it needs and
 * rounds the activation rows it reads into its thread's staging area
 * (ops_ctx.stage), then multiplies with the float32 machinery of the other
 * op files (single-threaded sgemm tiles, the panel kernel, dot products).
 * The products of two bf16 numbers are exact in float32, so the result is
 * what a bf16 multiply-add with float32 accumulation gives; it costs what
 * float32 costs plus the staging, so it is not faster than float32: it is
 * the bf16 numerics where the CPU has no bf16 instructions, and half the
 * weight memory. CPUs with AVX512-BF16 or AMX take ops_dnn.c instead.
 *
 * The tiles and their order depend only on the matrix shape, never on the
 * thread that runs them, so results do not depend on the thread count or
 * on which images share a call (as in float32, docs/engine.md).
 */
#include "ops.h"

#include <cblas.h>
#include <stdint.h>
#include <string.h>

#include "bf16.h"
#include "ops_internal.h"
#include "team.h"

/* Features per sgemm call of a tile: the staged operands of a tile,
 * (TILE_M + TILE_N) x BF16_KC floats = 0.9 MB, stay within L2 + L3 share,
 * and a tile's output is re-read once per chunk only. */
#define BF16_KC 512

VECTOR_CLONES
static void from_f32(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_from_f32(src[i]);
}

void ops_bf16_from_f32(uint16_t *dst, const float *src, size_t n)
{
    from_f32(dst, src, n);
}

VECTOR_CLONES
static void round_rows(float *dst, int ldd, const float *src, int lds, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * lds;
        float *d = dst + (size_t)r * ldd;
        for (int i = 0; i < cols; i++)
            d[i] = bf16_round(s[i]);
    }
}

void ops_bf16_round_rows(float *dst, int ldd, const float *src, int lds, int rows, int cols)
{
    round_rows(dst, ldd, src, lds, rows, cols);
}

VECTOR_CLONES
static void widen(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_to_f32(src[i]);
}

void ops_bf16_widen(float *dst, const uint16_t *src, size_t n)
{
    widen(dst, src, n);
}

VECTOR_CLONES
static void widen_rows(float *dst, int ldd, const uint16_t *src, int lds, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const uint16_t *s = src + (size_t)r * lds;
        float *d = dst + (size_t)r * ldd;
        for (int i = 0; i < cols; i++)
            d[i] = bf16_to_f32(s[i]);
    }
}

size_t ops_bf16_stage_floats(int max_k, int small_rows, int small_k, int Tq, int Tk, int hd)
{
    const size_t tiles = (size_t)(TILE_M + TILE_N) * BF16_KC;
    const size_t panels = (size_t)(LT_TASK_ROWS + LT_COLS) * (size_t)max_k;
    const size_t small = (size_t)small_rows * (size_t)small_k;
    const size_t att = (size_t)((Tq < ATT_ROWS ? Tq : ATT_ROWS) + 2 * Tk) * (size_t)hd;
    size_t n = tiles > panels ? tiles : panels;
    n = n > small ? n : small;
    return n > att ? n : att;
}

/* ---------------------------------------------------------------------------
 * Token rows: the tiles of ops_linear.c (per sample, TILE_M x TILE_N,
 * column tile first), each a few sgemm calls over BF16_KC features.
 */
struct tile_job {
    float *out;
    const float *in, *b;
    const uint16_t *w;      /* (N, K) bf16 */
    int ldo, ldi, M, K, N;  /* M rows per sample */
    int tiles_m, samples;
    float *stage;
    size_t stage_per;
};

static void bf16_tile(void *arg, int task, int thread)
{
    const struct tile_job *j = arg;
    const int row_tiles = j->samples * j->tiles_m;
    const int sample = (task % row_tiles) / j->tiles_m;
    const int m0 = (task % j->tiles_m) * TILE_M, n0 = (task / row_tiles) * TILE_N;
    const int mm = j->M - m0 < TILE_M ? j->M - m0 : TILE_M;
    const int nn = j->N - n0 < TILE_N ? j->N - n0 : TILE_N;
    const size_t row = (size_t)sample * j->M + m0;
    float *out = j->out + row * j->ldo + n0;
    float *a = j->stage + (size_t)thread * j->stage_per, *w = a + (size_t)TILE_M * BF16_KC;

    if (j->b) {
        for (int i = 0; i < mm; i++)
            memcpy(out + (size_t)i * j->ldo, j->b + n0, sizeof(float) * (size_t)nn);
    }
    for (int k0 = 0; k0 < j->K; k0 += BF16_KC) {
        const int kc = j->K - k0 < BF16_KC ? j->K - k0 : BF16_KC;
        ops_bf16_round_rows(a, kc, j->in + row * j->ldi + k0, j->ldi, mm, kc);
        widen_rows(w, kc, j->w + (size_t)n0 * j->K + k0, j->K, nn, kc);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mm, nn, kc, 1.0f, a, kc, w, kc,
                    (j->b || k0) ? 1.0f : 0.0f, out, j->ldo);
    }
}

void ops_bf16_linear_tiles(const struct ops_ctx *c, float *out, int ldo, const float *in,
                           int ldi, const struct linear *l, int samples, int rows)
{
    struct tile_job job = {
        .out = out, .in = in, .b = l->b, .w = l->w16, .ldo = ldo, .ldi = ldi, .M = rows,
        .K = l->in, .N = l->out, .tiles_m = ops_tiles(rows, TILE_M), .samples = samples,
        .stage = c->stage, .stage_per = c->stage_floats,
    };
    team_run(c->team, bf16_tile, &job, samples * job.tiles_m * ops_tiles(l->out, TILE_N));
}

/* ---------------------------------------------------------------------------
 * A few rows (conditioning vectors): each output one dot product with 16
 * partial sums in a fixed order, the bf16 weights widened as they are read
 * (these layers are bound by memory: reading bf16 halves the traffic).
 */
static inline float dot16_bf16(const float *a, const uint16_t *b, int n)
{
    float acc[16] = { 0 };
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += a[i + l] * bf16_to_f32(b[i + l]);
    float sum = 0.0f;
    for (int l = 0; l < 16; l++)
        sum += acc[l];
    for (; i < n; i++)
        sum += a[i] * bf16_to_f32(b[i]);
    return sum;
}

struct small_job {
    float *out;
    const float *in, *b;    /* in: rounded copy in the caller's staging area */
    const uint16_t *w;
    int M, K, N, ntasks;
};

VECTOR_CLONES
static void bf16_small_task(void *arg, int task, int thread)
{
    const struct small_job *j = arg;
    long begin, end;
    (void)thread;
    team_chunk(j->N, j->ntasks, task, &begin, &end);
    for (long n = begin; n < end; n++) {
        const uint16_t *wn = j->w + (size_t)n * j->K;
        for (int m = 0; m < j->M; m++) {
            float v = dot16_bf16(j->in + (size_t)m * j->K, wn, j->K);
            j->out[(size_t)m * j->N + n] = j->b ? v + j->b[n] : v;
        }
    }
}

/* The calling thread rounds the M x K input into its own staging area
 * (thread 0's) before the team starts; the tasks only read it. */
void ops_bf16_linear_small(const struct ops_ctx *c, float *out, const float *in,
                           const struct linear *l, int M)
{
    const int K = l->in, N = l->out;
    struct small_job job = {
        .out = out, .in = c->stage, .b = l->b, .w = l->w16, .M = M, .K = K, .N = N,
    };
    ops_bf16_round_rows(c->stage, K, in, K, M, K);
    job.ntasks = (long)N * K < 65536 ? 1 : 4 * team_size(c->team);
    team_run(c->team, bf16_small_task, &job, job.ntasks);
}
