/*
 * ops.c - fast layer operations. Dense products go to OpenBLAS; what is
 * left (norms, activations, softmax) is written as plain loops the compiler
 * vectorises, cloned per instruction set so one binary runs everywhere and
 * uses AVX-512 where the CPU has it. Loops over rows are spread over the
 * worker's thread team.
 */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "team.h"

#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

/* exp(x) to about one ulp, written so a loop of it vectorises: range
 * reduction by round(x/ln2) with the 1.5*2^23 trick, a degree-6 Taylor
 * polynomial on |r| <= ln2/2, and the power of two built from its bits.
 * Inputs are clamped to [-87, 88], so very negative x gives ~1e-38, not 0. */
static inline float exp_approx(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float k = (x * 1.44269504089f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693145751953125f - k * 1.42860682030941723212e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666668f +
              r * (0.0083333333f + r * 0.0013888889f)))));
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

/* GELU with the tanh approximation, using 0.5(1 + tanh(y)) = 1/(1 + e^-2y). */
static inline float gelu_tanh(float u)
{
    float y = 0.7978845608028654f * (u + 0.044715f * u * u * u);
    return u / (1.0f + exp_approx(-2.0f * y));
}

/* ---------------------------------------------------------------------------
 * Splitting a row loop over the team.
 */
struct rows_job {
    void (*fn)(struct rows_job *job, long begin, long end);
    long n;            /* rows (or elements) in the loop */
    int ntasks;
    float *out;
    const float *in;
    const float *a, *b;
    int stride, tokens, D;
    float eps;
};

static void rows_task(void *arg, int task, int thread)
{
    struct rows_job *job = arg;
    long begin, end;
    (void)thread;
    team_chunk(job->n, job->ntasks, task, &begin, &end);
    if (begin < end)
        job->fn(job, begin, end);
}

/* work = elements touched, to keep small loops on the calling thread. */
static void rows_run(const struct ops_ctx *c, struct rows_job *job, long work)
{
    const int threads = team_size(c->team);
    if (threads == 1 || work < 32768) {
        job->fn(job, 0, job->n);
        return;
    }
    /* A few tasks per thread so an unlucky thread does not hold up the rest. */
    job->ntasks = 4 * threads;
    team_run(c->team, rows_task, job, job->ntasks);
}

/* ---------------------------------------------------------------------------
 * Linear layers: products are cut into fixed tiles that depend only on the
 * matrix shape, each tile is one single-threaded sgemm, and the team takes
 * tiles as they come. A C element is then computed by the same kernel
 * whatever the thread count, which OpenBLAS's own threading does not
 * promise; the images stay byte-identical with any number of threads.
 *
 * Tiles are 256 rows (all tokens of a 256 px XL/2 image, so each weight
 * tile is packed once per sample, not once per 128 rows) by 192 columns
 * (six tiles for D = 1152, enough to keep two threads even at batch 1).
 * Tasks go column tile by column tile: the threads share one weight tile
 * while it is in cache. On XL/2 this took batch 1 from 75-85 % to 83-92 %
 * of the sgemm rate (docs/performance.md).
 */
#define TILE_M 256
#define TILE_N 192

struct gemm_job {
    float *out;
    const float *in, *w, *b;
    int ldo, ldi, M, K, N;  /* M rows per sample */
    int tiles_m, tiles_n;   /* tiles per sample */
    int samples;
};

static int tiles(int n, int tile)
{
    return (n + tile - 1) / tile;
}

static void gemm_tile(void *arg, int task, int thread)
{
    const struct gemm_job *j = arg;
    const int row_tiles = j->samples * j->tiles_m;
    const int sample = (task % row_tiles) / j->tiles_m;
    const int m0 = (task % j->tiles_m) * TILE_M, n0 = (task / row_tiles) * TILE_N;
    const int mm = j->M - m0 < TILE_M ? j->M - m0 : TILE_M;
    const int nn = j->N - n0 < TILE_N ? j->N - n0 : TILE_N;
    const size_t row = (size_t)sample * j->M + m0;
    float *out = j->out + row * j->ldo + n0;
    (void)thread;

    if (j->b) {
        for (int i = 0; i < mm; i++)
            memcpy(out + (size_t)i * j->ldo, j->b + n0, sizeof(float) * (size_t)nn);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mm, nn, j->K, 1.0f,
                j->in + row * j->ldi, j->ldi, j->w + (size_t)n0 * j->K, j->K,
                j->b ? 1.0f : 0.0f, out, j->ldo);
}

static void linear_samples(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                           const float *w, const float *b, int samples, int rows, int K, int N)
{
    struct gemm_job job = {
        .out = out, .in = in, .w = w, .b = b, .ldo = ldo, .ldi = ldi, .M = rows, .K = K, .N = N,
        .tiles_m = tiles(rows, TILE_M), .tiles_n = tiles(N, TILE_N), .samples = samples,
    };
    team_run(c->team, gemm_tile, &job, samples * job.tiles_m * job.tiles_n);
}

void ops_linear_tokens(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                       const struct linear *l, int samples, int rows)
{
    if (l->transposed)
        ops_linear_t(c, out, ldo, in, ldi, l->w, l->b, samples * rows, l->in, l->out);
    else
        linear_samples(c, out, ldo, in, ldi, l->w, l->b, samples, rows, l->in, l->out);
}

void ops_linear(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                const float *w, const float *b, int M, int K, int N)
{
    linear_samples(c, out, ldo, in, ldi, w, b, 1, M, K, N);
}

/* Dot product with 16 partial sums in a fixed order (vectorises, and gives
 * the same bits wherever the vectors sit in memory). */
static inline float dot16(const float *a, const float *b, int n)
{
    float acc[16] = { 0 };
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += a[i + l] * b[i + l];
    float sum = 0.0f;
    for (int l = 0; l < 16; l++)
        sum += acc[l];
    for (; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

struct small_linear_job {
    float *out;
    const float *in, *w, *b;
    int M, K, N, ntasks;
};

VECTOR_CLONES
static void small_linear_task(void *arg, int task, int thread)
{
    const struct small_linear_job *j = arg;
    long begin, end;
    (void)thread;
    team_chunk(j->N, j->ntasks, task, &begin, &end);
    for (long n = begin; n < end; n++) {
        const float *wn = j->w + (size_t)n * j->K;
        for (int m = 0; m < j->M; m++) {
            float v = dot16(j->in + (size_t)m * j->K, wn, j->K);
            j->out[(size_t)m * j->N + n] = j->b ? v + j->b[n] : v;
        }
    }
}

void ops_linear_small(const struct ops_ctx *c, float *out, const float *in,
                      const struct linear *l, int M)
{
    const int K = l->in, N = l->out;
    if (l->transposed) {
        ops_linear_t(c, out, N, in, K, l->w, l->b, M, K, N);
        return;
    }
    struct small_linear_job job = { .out = out, .in = in, .w = l->w, .b = l->b, .M = M, .K = K, .N = N };
    const int threads = team_size(c->team);
    job.ntasks = (long)N * K < 65536 ? 1 : 4 * threads;
    team_run(c->team, small_linear_task, &job, job.ntasks);
}

/* ---------------------------------------------------------------------------
 * The transposed-weight kernel: a block of 8 rows x 48 (or 32, 16) columns,
 * 24 AVX-512 registers, kept in registers while k runs; the weights are read
 * once per block of rows (8 x 48 ran the bundled model's batch-16 forward
 * 1.3x faster than 4 x 32; AVX2 machines spill some of it).
 * The weights sit in panels of 48 columns (the last one 32 or 16 wide), each
 * panel (K, width) row-major at offset n0 * K: a block reads one contiguous
 * stream instead of touching a new page every few k (N * 4 bytes apart).
 * A row-group of fewer than 8 real rows repeats its first row in the empty
 * slots, so every output goes through exactly the same arithmetic. FMA
 * contraction is allowed here (it is faster and, with one code path, the
 * same for every output on a given CPU).
 * The result can leave through an epilogue (GELU, or added into a residual
 * stream through a per-sample gate) while it is still in registers, which
 * saves a pass over the activations and a team synchronisation.
 */
#define LT_ROWS 8
#define LT_COLS 48
#define LT_TASK_ROWS 64
#define LT_TASK_COLS 192

#define LT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                                 optimize("fp-contract=fast")))

enum lt_epilogue { LT_STORE, LT_GELU, LT_RESIDUAL };

struct lt_job {
    float *out;
    const float *in, *wt, *b;
    int ldo, ldi, M, K, N;
    int task_cols, tasks_n; /* columns per task (a multiple of LT_COLS), tasks per row band */
    enum lt_epilogue epilogue;
    const float *gate;      /* LT_RESIDUAL: (samples, gate_stride) or NULL */
    int gate_stride, tokens;
};

static int lt_panel_width(int N, int n0)
{
    return N - n0 >= LT_COLS ? LT_COLS : N - n0;
}

void ops_linear_t_pack(float *wt, const float *w, int K, int N)
{
    for (int n0 = 0, width; n0 < N; n0 += width) {
        width = lt_panel_width(N, n0);
        float *panel = wt + (size_t)n0 * K;
        for (int k = 0; k < K; k++)
            for (int j = 0; j < width; j++)
                panel[(size_t)k * width + j] = w[(size_t)(n0 + j) * K + k];
    }
}

__attribute__((always_inline))
static inline void lt_block(const struct lt_job *j, int m0, int nrows,
                            const float *const rows_in[LT_ROWS], int n0, int width)
{
    const float *panel = j->wt + (size_t)n0 * j->K;
    float acc[LT_ROWS][LT_COLS];
    for (int r = 0; r < LT_ROWS; r++)
        for (int c = 0; c < width; c++)
            acc[r][c] = j->b ? j->b[n0 + c] : 0.0f;
    for (int k = 0; k < j->K; k++) {
        const float *wk = panel + (size_t)k * width;
        for (int r = 0; r < LT_ROWS; r++) {
            const float xv = rows_in[r][k];
            for (int c = 0; c < width; c++)
                acc[r][c] += xv * wk[c];
        }
    }
    for (int r = 0; r < nrows; r++) {
        float *o = j->out + (size_t)(m0 + r) * j->ldo + n0;
        if (j->epilogue == LT_GELU) {
            for (int c = 0; c < width; c++)
                o[c] = gelu_tanh(acc[r][c]);
        } else if (j->epilogue == LT_RESIDUAL && j->gate) {
            const float *g = j->gate + (size_t)((m0 + r) / j->tokens) * j->gate_stride + n0;
            for (int c = 0; c < width; c++)
                o[c] += g[c] * acc[r][c];
        } else if (j->epilogue == LT_RESIDUAL) {
            for (int c = 0; c < width; c++)
                o[c] += acc[r][c];
        } else {
            memcpy(o, acc[r], sizeof(float) * (size_t)width);
        }
    }
}

LT_CLONES
static void lt_task(void *arg, int task, int thread)
{
    const struct lt_job *j = arg;
    const int m_begin = (task / j->tasks_n) * LT_TASK_ROWS;
    const int n_begin = (task % j->tasks_n) * j->task_cols;
    const int m_end = j->M < m_begin + LT_TASK_ROWS ? j->M : m_begin + LT_TASK_ROWS;
    const int n_end = j->N < n_begin + j->task_cols ? j->N : n_begin + j->task_cols;
    (void)thread;

    for (int n0 = n_begin, width; n0 < n_end; n0 += width) {
        width = lt_panel_width(j->N, n0);
        for (int m0 = m_begin; m0 < m_end; m0 += LT_ROWS) {
            const float *rows_in[LT_ROWS];
            const int nrows = m_end - m0 < LT_ROWS ? m_end - m0 : LT_ROWS;
            for (int r = 0; r < LT_ROWS; r++)
                rows_in[r] = j->in + (size_t)(m0 + (r < nrows ? r : 0)) * j->ldi;
            /* Constant widths let the compiler keep the block in registers;
             * N is a multiple of 16, so the last panel is 32 or 16 wide. */
            if (width == LT_COLS)
                lt_block(j, m0, nrows, rows_in, n0, LT_COLS);
            else if (width == 32)
                lt_block(j, m0, nrows, rows_in, n0, 32);
            else
                lt_block(j, m0, nrows, rows_in, n0, 16);
        }
    }
}

/* Tasks of 64 rows x 192 columns; narrower ones when that would leave
 * fewer than two tasks per thread (one guided image of the bundled model
 * has 32 rows: proj and fc2 were a single task, the other thread idle). */
static void lt_run(const struct ops_ctx *c, struct lt_job *job)
{
    const int row_tasks = tiles(job->M, LT_TASK_ROWS), want = 2 * team_size(c->team);
    job->task_cols = LT_TASK_COLS;
    while (job->task_cols > LT_COLS && row_tasks * tiles(job->N, job->task_cols) < want)
        job->task_cols /= 2;
    job->tasks_n = tiles(job->N, job->task_cols);
    team_run(c->team, lt_task, job, row_tasks * job->tasks_n);
}

void ops_linear_t(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                  const float *wt, const float *b, int M, int K, int N)
{
    struct lt_job job = {
        .out = out, .in = in, .wt = wt, .b = b, .ldo = ldo, .ldi = ldi, .M = M, .K = K, .N = N,
    };
    lt_run(c, &job);
}

void ops_linear_tokens_gelu(const struct ops_ctx *c, float *out, const float *in, int ldi,
                            const struct linear *l, int samples, int rows)
{
    if (!l->transposed) {
        ops_linear_tokens(c, out, l->out, in, ldi, l, samples, rows);
        ops_gelu_tanh(c, out, (long)samples * rows * l->out);
        return;
    }
    struct lt_job job = {
        .out = out, .in = in, .wt = l->w, .b = l->b, .ldo = l->out, .ldi = ldi,
        .M = samples * rows, .K = l->in, .N = l->out, .epilogue = LT_GELU,
    };
    lt_run(c, &job);
}

void ops_linear_tokens_residual(const struct ops_ctx *c, float *x, float *tmp,
                                const float *in, int ldi, const struct linear *l,
                                const float *gate, int gate_stride, int samples, int rows)
{
    if (!l->transposed) {
        ops_linear_tokens(c, tmp, l->out, in, ldi, l, samples, rows);
        ops_gated_add(c, x, tmp, gate, gate_stride, samples, rows, l->out);
        return;
    }
    struct lt_job job = {
        .out = x, .in = in, .wt = l->w, .b = l->b, .ldo = l->out, .ldi = ldi,
        .M = samples * rows, .K = l->in, .N = l->out, .epilogue = LT_RESIDUAL,
        .gate = gate, .gate_stride = gate_stride, .tokens = rows,
    };
    lt_run(c, &job);
}

/* ---------------------------------------------------------------------------
 * Activations.
 */
VECTOR_CLONES
static void silu_rows(struct rows_job *job, long begin, long end)
{
    float *out = job->out;
    const float *in = job->in;
    for (long i = begin; i < end; i++) {
        float u = in[i];
        out[i] = u / (1.0f + exp_approx(-u));
    }
}

void ops_silu(const struct ops_ctx *c, float *out, const float *in, long n)
{
    struct rows_job job = { .fn = silu_rows, .n = n, .out = out, .in = in };
    rows_run(c, &job, n);
}

VECTOR_CLONES
static void gelu_rows(struct rows_job *job, long begin, long end)
{
    float *x = job->out;
    for (long i = begin; i < end; i++)
        x[i] = gelu_tanh(x[i]);
}

void ops_gelu_tanh(const struct ops_ctx *c, float *x, long n)
{
    struct rows_job job = { .fn = gelu_rows, .n = n, .out = x };
    rows_run(c, &job, n);
}

/* ---------------------------------------------------------------------------
 * Norms.
 */

/* Mean and 1/sqrt(var + eps) of one row; 16 partial sums vectorise. */
VECTOR_CLONES
static void row_stats(const float *x, int D, float eps, float *mean_out, float *rstd_out)
{
    float acc[16] = { 0 };
    int i = 0;
    for (; i + 16 <= D; i += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += x[i + l];
    float sum = 0.0f;
    for (int l = 0; l < 16; l++)
        sum += acc[l];
    for (; i < D; i++)
        sum += x[i];
    const float mean = sum / (float)D;

    float var_acc[16] = { 0 };
    i = 0;
    for (; i + 16 <= D; i += 16)
        for (int l = 0; l < 16; l++) {
            float d = x[i + l] - mean;
            var_acc[l] += d * d;
        }
    float var = 0.0f;
    for (int l = 0; l < 16; l++)
        var += var_acc[l];
    for (; i < D; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    *mean_out = mean;
    *rstd_out = 1.0f / sqrtf(var / (float)D + eps);
}

/* One LayerNorm loop for both kinds: with job->a/b per-sample shift/scale
 * vectors (modulate) when job->stride is set, else per-feature weight and
 * bias (affine), or neither. */
VECTOR_CLONES
static void layernorm_rows(struct rows_job *job, long begin, long end)
{
    const int D = job->D;
    for (long r = begin; r < end; r++) {
        const float *x = job->in + r * D;
        float *y = job->out + r * D;
        float mean, rstd;
        row_stats(x, D, job->eps, &mean, &rstd);
        if (job->a && job->stride) {
            const long s = r / job->tokens;
            const float *shift = job->a + s * job->stride, *scale = job->b + s * job->stride;
            for (int i = 0; i < D; i++)
                y[i] = (x[i] - mean) * rstd * (1.0f + scale[i]) + shift[i];
        } else if (job->a) {
            for (int i = 0; i < D; i++)
                y[i] = (x[i] - mean) * rstd * job->a[i] + job->b[i];
        } else {
            for (int i = 0; i < D; i++)
                y[i] = (x[i] - mean) * rstd;
        }
    }
}

void ops_layernorm_modulate(const struct ops_ctx *c, float *out, const float *in,
                            const float *shift, const float *scale, int mod_stride,
                            int samples, int tokens, int D, float eps)
{
    struct rows_job job = {
        .fn = layernorm_rows, .n = (long)samples * tokens, .out = out, .in = in,
        .a = shift, .b = scale, .stride = mod_stride, .tokens = tokens, .D = D, .eps = eps,
    };
    rows_run(c, &job, job.n * D);
}

void ops_layernorm_affine(const struct ops_ctx *c, float *out, const float *in,
                          const float *w, const float *b, int rows, int D, float eps)
{
    struct rows_job job = {
        .fn = layernorm_rows, .n = rows, .out = out, .in = in,
        .a = w, .b = b, .D = D, .eps = eps,
    };
    rows_run(c, &job, (long)rows * D);
}

VECTOR_CLONES
static void gated_add_rows(struct rows_job *job, long begin, long end)
{
    const int D = job->D;
    for (long r = begin; r < end; r++) {
        float *x = job->out + r * D;
        const float *h = job->in + r * D;
        if (job->a) {
            const float *g = job->a + (r / job->tokens) * job->stride;
            for (int i = 0; i < D; i++)
                x[i] += g[i] * h[i];
        } else {
            for (int i = 0; i < D; i++)
                x[i] += h[i];
        }
    }
}

void ops_gated_add(const struct ops_ctx *c, float *x, const float *h,
                   const float *gate, int gate_stride, int samples, int tokens, int D)
{
    struct rows_job job = {
        .fn = gated_add_rows, .n = (long)samples * tokens, .out = x, .in = h,
        .a = gate, .stride = gate_stride, .tokens = tokens, .D = D,
    };
    rows_run(c, &job, job.n * D);
}

VECTOR_CLONES
static void add_rows(struct rows_job *job, long begin, long end)
{
    for (long i = begin; i < end; i++)
        job->out[i] += job->in[i];
}

void ops_add(const struct ops_ctx *c, float *x, const float *y, long n)
{
    struct rows_job job = { .fn = add_rows, .n = n, .out = x, .in = y };
    rows_run(c, &job, n);
}

/* ---------------------------------------------------------------------------
 * Attention: one task per (sample, head, block of ATT_ROWS queries), each
 * two single-threaded BLAS calls into its thread's own score buffer.
 */
#define ATT_ROWS 128

struct attention_job {
    float *scratch;
    size_t per_thread;
    float *out;
    const float *q, *k, *v;
    int ldo, ldq, ldk, ldv, Tq, Tk, heads, hd, qblocks;
};

VECTOR_CLONES
static void softmax_rows(float *s, int rows, int n, float scale)
{
    for (int r = 0; r < rows; r++) {
        float *x = s + (size_t)r * n;
        float mx = x[0];
        for (int i = 1; i < n; i++)
            mx = x[i] > mx ? x[i] : mx;
        float sum = 0.0f;
        for (int i = 0; i < n; i++) {
            float e = exp_approx((x[i] - mx) * scale);
            x[i] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (int i = 0; i < n; i++)
            x[i] *= inv;
    }
}

static void attention_task(void *arg, int task, int thread)
{
    const struct attention_job *j = arg;
    const int qb = task % j->qblocks, h = (task / j->qblocks) % j->heads;
    const int s = task / (j->qblocks * j->heads);
    const int r0 = qb * ATT_ROWS, rows = j->Tq - r0 < ATT_ROWS ? j->Tq - r0 : ATT_ROWS;
    float *scores = j->scratch + (size_t)thread * j->per_thread;
    const float *q = j->q + ((size_t)s * j->Tq + r0) * j->ldq + (size_t)h * j->hd;
    const float *k = j->k + (size_t)s * j->Tk * j->ldk + (size_t)h * j->hd;
    const float *v = j->v + (size_t)s * j->Tk * j->ldv + (size_t)h * j->hd;
    float *o = j->out + ((size_t)s * j->Tq + r0) * j->ldo + (size_t)h * j->hd;

    /* Scaling inside the softmax equals scaling q first, up to rounding. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, j->Tk, j->hd, 1.0f,
                q, j->ldq, k, j->ldk, 0.0f, scores, j->Tk);
    softmax_rows(scores, rows, j->Tk, 1.0f / sqrtf((float)j->hd));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, j->hd, j->Tk, 1.0f,
                scores, j->Tk, v, j->ldv, 0.0f, o, j->ldo);
}

size_t ops_attention_scratch(int Tq, int Tk)
{
    return (size_t)(Tq < ATT_ROWS ? Tq : ATT_ROWS) * (size_t)Tk;
}

void ops_attention(const struct ops_ctx *c, float *out, int ldo,
                   const float *q, int ldq, const float *k, int ldk,
                   const float *v, int ldv, int samples, int Tq, int Tk, int heads, int hd,
                   float *scratch)
{
    struct attention_job job = {
        .scratch = scratch, .per_thread = ops_attention_scratch(Tq, Tk),
        .out = out, .q = q, .k = k, .v = v,
        .ldo = ldo, .ldq = ldq, .ldk = ldk, .ldv = ldv,
        .Tq = Tq, .Tk = Tk, .heads = heads, .hd = hd, .qblocks = tiles(Tq, ATT_ROWS),
    };
    team_run(c->team, attention_task, &job, samples * heads * job.qblocks);
}

/* ---------------------------------------------------------------------------
 * VAE ops on HWC maps.
 */
struct groupnorm_job {
    float *out;
    const float *in, *gamma, *beta;
    long HW;
    int C, groups, silu;
    float eps;
    float stats[2 * OPS_MAX_GROUPS]; /* (groups, 2) mean, rstd */
};

/* Statistics in double: a group spans up to 2^16 pixels x 16 channels and
 * float sums of that many values lose digits the reference keeps. */
static void groupnorm_stats_task(void *arg, int g, int thread)
{
    struct groupnorm_job *j = arg;
    const int cg = j->C / j->groups;
    double sum = 0.0, sq = 0.0;
    (void)thread;
    for (long p = 0; p < j->HW; p++) {
        const float *x = j->in + p * j->C + (long)g * cg;
        for (int i = 0; i < cg; i++)
            sum += x[i];
    }
    const double n = (double)j->HW * cg;
    const double mean = sum / n;
    for (long p = 0; p < j->HW; p++) {
        const float *x = j->in + p * j->C + (long)g * cg;
        for (int i = 0; i < cg; i++) {
            double d = x[i] - mean;
            sq += d * d;
        }
    }
    j->stats[2 * g] = (float)mean;
    j->stats[2 * g + 1] = (float)(1.0 / sqrt(sq / n + j->eps));
}

VECTOR_CLONES
static void groupnorm_apply_task(void *arg, int task, int thread)
{
    struct groupnorm_job *j = arg;
    const int C = j->C, cg = C / j->groups;
    long begin, end;
    (void)thread;
    team_chunk(j->HW, 64, task, &begin, &end);
    for (long p = begin; p < end; p++) {
        const float *x = j->in + p * C;
        float *y = j->out + p * C;
        for (int ch = 0; ch < C; ch++) {
            const int g = ch / cg;
            float v = (x[ch] - j->stats[2 * g]) * j->stats[2 * g + 1] * j->gamma[ch] + j->beta[ch];
            if (j->silu)
                v = v / (1.0f + exp_approx(-v));
            y[ch] = v;
        }
    }
}

void ops_groupnorm(const struct ops_ctx *c, float *out, const float *in,
                   const float *gamma, const float *beta, long HW, int C, int groups,
                   float eps, int silu)
{
    struct groupnorm_job job = {
        .out = out, .in = in, .gamma = gamma, .beta = beta, .HW = HW, .C = C,
        .groups = groups, .silu = silu, .eps = eps,
    };
    team_run(c->team, groupnorm_stats_task, &job, groups);
    team_run(c->team, groupnorm_apply_task, &job, 64);
}

size_t ops_conv3x3_pad_floats(int H, int W, int Cin)
{
    /* Two extra rows: the last taps of the last row read past the border. */
    return ((size_t)(H + 2) * (size_t)(W + 2) + 2) * (size_t)Cin;
}

size_t ops_conv3x3_wide_floats(int H, int W, int Cout)
{
    return (size_t)H * (size_t)(W + 2) * (size_t)Cout;
}

/*
 * With the input zero-padded to (H+2, W+2) and the output computed at the
 * padded width (two junk columns per row), output pixel p reads input
 * pixel p + ky*(W+2) + kx for tap (ky, kx): each tap is a GEMM over a
 * contiguous block of rows, and no im2col buffer is needed. A tile adds its
 * nine taps in a fixed order.
 */
struct conv_job {
    float *wide;
    const float *pad, *w9, *b;
    int Wp, M, Cin, Cout, tiles_n;
};

static void conv_tile(void *arg, int task, int thread)
{
    const struct conv_job *j = arg;
    const int m0 = (task / j->tiles_n) * TILE_M, n0 = (task % j->tiles_n) * TILE_N;
    const int mm = j->M - m0 < TILE_M ? j->M - m0 : TILE_M;
    const int nn = j->Cout - n0 < TILE_N ? j->Cout - n0 : TILE_N;
    float *out = j->wide + (size_t)m0 * j->Cout + n0;
    (void)thread;

    for (int i = 0; i < mm; i++)
        memcpy(out + (size_t)i * j->Cout, j->b + n0, sizeof(float) * (size_t)nn);
    for (int tap = 0; tap < 9; tap++) {
        const float *a = j->pad + ((size_t)m0 + (size_t)(tap / 3) * j->Wp + tap % 3) * j->Cin;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mm, nn, j->Cin, 1.0f,
                    a, j->Cin, j->w9 + ((size_t)tap * j->Cout + n0) * j->Cin, j->Cin,
                    1.0f, out, j->Cout);
    }
}

void ops_conv3x3(const struct ops_ctx *c, float *out, const float *in,
                 const float *w9, const float *b, int H, int W, int Cin, int Cout,
                 float *pad, float *wide)
{
    const int Wp = W + 2;
    struct conv_job job = {
        .wide = wide, .pad = pad, .w9 = w9, .b = b, .Wp = Wp, .M = H * Wp,
        .Cin = Cin, .Cout = Cout, .tiles_n = tiles(Cout, TILE_N),
    };

    memset(pad, 0, sizeof(float) * ops_conv3x3_pad_floats(H, W, Cin));
    for (int y = 0; y < H; y++)
        memcpy(pad + ((size_t)(y + 1) * Wp + 1) * Cin, in + (size_t)y * W * Cin,
               sizeof(float) * (size_t)W * Cin);
    team_run(c->team, conv_tile, &job, tiles(job.M, TILE_M) * job.tiles_n);
    for (int y = 0; y < H; y++)
        memcpy(out + (size_t)y * W * Cout, wide + (size_t)y * Wp * Cout,
               sizeof(float) * (size_t)W * Cout);
}

void ops_upsample2(float *out, const float *in, int H, int W, int C)
{
    for (int y = 0; y < 2 * H; y++) {
        float *row = out + (size_t)y * 2 * W * C;
        const float *src = in + (size_t)(y / 2) * W * C;
        for (int x = 0; x < 2 * W; x++)
            memcpy(row + (size_t)x * C, src + (size_t)(x / 2) * C, sizeof(float) * (size_t)C);
    }
}
