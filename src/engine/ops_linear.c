/*
 * ops_linear.c - the linear layers of the DiT: tiles of single-threaded
 * sgemm for (out, in) weights, dot products for conditioning vectors, and
 * ditd's own register-blocked kernel for weights packed in panels, with
 * its GELU and gated-residual epilogues. The bf16 forms of the weights go
 * to ops_bf16.c from the dispatchers here.
 */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "isa.h"
#include "ops_dnn.h"
#include "ops_internal.h"
#include "team.h"

/* What the panel kernel does with a result while it is in registers. */
enum lt_epilogue { LT_STORE, LT_GELU, LT_RESIDUAL };

struct gemm_job {
    float *out;
    const float *in, *w, *b;
    int ldo, ldi, M, K, N;  /* M rows per sample */
    int tiles_m, tiles_n;   /* tiles per sample */
    int samples;
};

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
        .tiles_m = ops_tiles(rows, TILE_M), .tiles_n = ops_tiles(N, TILE_N), .samples = samples,
    };
    team_run(c->team, gemm_tile, &job, samples * job.tiles_m * job.tiles_n);
}

static void lt_linear(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                      const struct linear *l, int M, enum lt_epilogue epilogue,
                      const float *gate, int gate_stride, int tokens);

void ops_linear_tokens(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                       const struct linear *l, int samples, int rows)
{
    if (l->dnn)
        ops_dnn_linear(c, out, ldo, in, ldi, l, samples, rows, DNN_STORE, NULL, 0);
    else if (l->transposed)
        lt_linear(c, out, ldo, in, ldi, l, samples * rows, LT_STORE, NULL, 0, rows);
    else if (l->w16)
        ops_bf16_linear_tiles(c, out, ldo, in, ldi, l, samples, rows);
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
        lt_linear(c, out, N, in, K, l, M, LT_STORE, NULL, 0, M);
        return;
    }
    if (l->w16) {
        ops_bf16_linear_small(c, out, in, l, M);
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
 * 1.3x faster than 4 x 32). AVX2 has half the registers: there the block is
 * summed in pieces that fit (lt_block_sums).
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
 * With bf16 panels (w16) a task first rounds its rows to bf16 and widens
 * each panel to float32 in its thread's staging area, then runs the same
 * block on those: one code path for both precisions.
 */
#define LT_ROWS 8
#define LT_TASK_COLS 192

struct lt_job {
    float *out;
    const float *in, *wt, *b;
    const uint16_t *wt16;   /* bf16 panels instead of wt */
    float *stage;           /* bf16: (team threads, stage_per) */
    size_t stage_per;
    int ldo, ldi, M, K, N;
    int task_cols, tasks_n; /* columns per task (a multiple of LT_COLS), tasks per row band */
    int narrow;             /* fewer than 32 vector registers: sums in pieces */
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

/* acc[r0 .. r0 + R)[c0 .. c0 + C) of a block: the bias, then the products
 * in the order of k. R and C are constants at every call, so the R x C sums
 * stay in registers while k runs. */
__attribute__((always_inline))
static inline void lt_sums(const struct lt_job *j, const float *const rows_in[LT_ROWS],
                           const float *panel, int n0, int width, int r0, int R, int c0, int C,
                           float acc[LT_ROWS][LT_COLS])
{
    float s[LT_ROWS][LT_COLS];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            s[r][c] = j->b ? j->b[n0 + c0 + c] : 0.0f;
    for (int k = 0; k < j->K; k++) {
        const float *wk = panel + (size_t)k * width + c0;
        for (int r = 0; r < R; r++) {
            const float xv = rows_in[r0 + r][k];
            for (int c = 0; c < C; c++)
                s[r][c] += xv * wk[c];
        }
    }
    for (int r = 0; r < R; r++)
        memcpy(&acc[r0 + r][c0], s[r], sizeof(float) * (size_t)C);
}

/* The block's sums: 8 rows x the whole panel at once with 32 vector
 * registers (AVX-512: 24 of them for 8 x 48), or with AVX2's 16 in pieces
 * of 4 rows x 24 or 16 columns (12 or 8 sums, the panel's slice and the
 * broadcast row value beside them). Each sum sees the same operations in
 * the same order either way. */
__attribute__((always_inline))
static inline void lt_block_sums(const struct lt_job *j, const float *const rows_in[LT_ROWS],
                                 const float *panel, int n0, int width,
                                 float acc[LT_ROWS][LT_COLS])
{
    if (!j->narrow) {
        lt_sums(j, rows_in, panel, n0, width, 0, LT_ROWS, 0, width, acc);
        return;
    }
    const int piece = width == LT_COLS ? 24 : 16;
    for (int r0 = 0; r0 < LT_ROWS; r0 += 4)
        for (int c0 = 0; c0 < width; c0 += piece) {
            if (piece == 24)
                lt_sums(j, rows_in, panel, n0, width, r0, 4, c0, 24, acc);
            else
                lt_sums(j, rows_in, panel, n0, width, r0, 4, c0, 16, acc);
        }
}

__attribute__((always_inline))
static inline void lt_block(const struct lt_job *j, int m0, int nrows,
                            const float *const rows_in[LT_ROWS], const float *panel,
                            int n0, int width)
{
    float acc[LT_ROWS][LT_COLS];
    lt_block_sums(j, rows_in, panel, n0, width, acc);
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

KERNEL_CLONES
static void lt_task(void *arg, int task, int thread)
{
    const struct lt_job *j = arg;
    const int m_begin = (task / j->tasks_n) * LT_TASK_ROWS;
    const int n_begin = (task % j->tasks_n) * j->task_cols;
    const int m_end = j->M < m_begin + LT_TASK_ROWS ? j->M : m_begin + LT_TASK_ROWS;
    const int n_end = j->N < n_begin + j->task_cols ? j->N : n_begin + j->task_cols;
    const float *in = j->in;
    float *panel16 = NULL;
    int ldi = j->ldi, row0 = 0;

    if (j->wt16) {
        float *rows16 = j->stage + (size_t)thread * j->stage_per;
        panel16 = rows16 + (size_t)LT_TASK_ROWS * j->K;
        ops_bf16_round_rows(rows16, j->K, in + (size_t)m_begin * ldi, ldi, m_end - m_begin, j->K);
        in = rows16;
        ldi = j->K;
        row0 = m_begin;
    }
    for (int n0 = n_begin, width; n0 < n_end; n0 += width) {
        width = lt_panel_width(j->N, n0);
        const float *panel = j->wt16 ? panel16 : j->wt + (size_t)n0 * j->K;
        if (j->wt16)
            ops_bf16_widen(panel16, j->wt16 + (size_t)n0 * j->K, (size_t)width * j->K);
        for (int m0 = m_begin; m0 < m_end; m0 += LT_ROWS) {
            const float *rows_in[LT_ROWS];
            const int nrows = m_end - m0 < LT_ROWS ? m_end - m0 : LT_ROWS;
            for (int r = 0; r < LT_ROWS; r++)
                rows_in[r] = in + (size_t)(m0 - row0 + (r < nrows ? r : 0)) * ldi;
            /* Constant widths let the compiler keep the block in registers;
             * N is a multiple of 16, so the last panel is 32 or 16 wide. */
            if (width == LT_COLS)
                lt_block(j, m0, nrows, rows_in, panel, n0, LT_COLS);
            else if (width == 32)
                lt_block(j, m0, nrows, rows_in, panel, n0, 32);
            else
                lt_block(j, m0, nrows, rows_in, panel, n0, 16);
        }
    }
}

/* Tasks of 64 rows x 192 columns; narrower ones when that would leave
 * fewer than two tasks per thread (one guided image of the bundled model
 * has 32 rows: proj and fc2 were a single task, the other thread idle). */
static void lt_run(const struct ops_ctx *c, struct lt_job *job)
{
    const int row_tasks = ops_tiles(job->M, LT_TASK_ROWS), want = 2 * team_size(c->team);
    job->task_cols = LT_TASK_COLS;
    while (job->task_cols > LT_COLS && row_tasks * ops_tiles(job->N, job->task_cols) < want)
        job->task_cols /= 2;
    job->tasks_n = ops_tiles(job->N, job->task_cols);
    /* The clone that runs is the hardware's, whatever DITD_ISA says. */
    job->narrow = c->lt_form == OPS_LT_AUTO ? isa_detected() < ISA_AVX512
                                            : c->lt_form == OPS_LT_PIECES;
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

/* The panel kernel on layer l, float32 or bf16 panels. */
static void lt_linear(const struct ops_ctx *c, float *out, int ldo, const float *in, int ldi,
                      const struct linear *l, int M, enum lt_epilogue epilogue,
                      const float *gate, int gate_stride, int tokens)
{
    struct lt_job job = {
        .out = out, .in = in, .wt = l->w, .wt16 = l->w16, .b = l->b, .ldo = ldo, .ldi = ldi,
        .M = M, .K = l->in, .N = l->out, .epilogue = epilogue, .gate = gate,
        .gate_stride = gate_stride, .tokens = tokens, .stage = c->stage,
        .stage_per = c->stage_floats,
    };
    lt_run(c, &job);
}

void ops_linear_tokens_gelu(const struct ops_ctx *c, float *out, const float *in, int ldi,
                            const struct linear *l, int samples, int rows)
{
    if (l->dnn) {
        ops_dnn_linear(c, out, l->out, in, ldi, l, samples, rows, DNN_GELU, NULL, 0);
        return;
    }
    if (!l->transposed) {
        ops_linear_tokens(c, out, l->out, in, ldi, l, samples, rows);
        ops_gelu_tanh(c, out, (long)samples * rows * l->out);
        return;
    }
    lt_linear(c, out, l->out, in, ldi, l, samples * rows, LT_GELU, NULL, 0, rows);
}

void ops_linear_tokens_residual(const struct ops_ctx *c, float *x, float *tmp,
                                const float *in, int ldi, const struct linear *l,
                                const float *gate, int gate_stride, int samples, int rows)
{
    if (l->dnn) {
        ops_dnn_linear(c, x, l->out, in, ldi, l, samples, rows, DNN_RESIDUAL, gate, gate_stride);
        return;
    }
    if (!l->transposed) {
        ops_linear_tokens(c, tmp, l->out, in, ldi, l, samples, rows);
        ops_gated_add(c, x, tmp, gate, gate_stride, samples, rows, l->out);
        return;
    }
    lt_linear(c, x, l->out, in, ldi, l, samples * rows, LT_RESIDUAL, gate, gate_stride, rows);
}
