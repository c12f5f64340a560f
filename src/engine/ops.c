/*
 * ops.c - fast layer operations other than the linear layers (ops_linear.c):
 * attention through OpenBLAS; what is left
 * (norms, activations, softmax) is written as plain loops the compiler
 * vectorises, cloned per instruction set so one binary runs everywhere and
 * uses AVX-512 where the CPU has it. Loops over rows are spread over the
 * worker's thread team.
 */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ops_dnn.h"
#include "ops_internal.h"
#include "team.h"

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
 * two single-threaded BLAS calls into its thread's own score buffer. In
 * bf16 the task first copies its q block, k and v rounded to bf16 into its
 * thread's staging area, and rounds the probabilities before the second
 * product: the two products then see bf16 operands and add in float32.
 */
struct attention_job {
    float *scratch;
    size_t per_thread;
    float *stage;           /* bf16: (team threads, stage_per), else NULL */
    size_t stage_per;
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

void ops_softmax_rows(float *s, int rows, int n, float scale)
{
    softmax_rows(s, rows, n, scale);
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
    int ldq = j->ldq, ldk = j->ldk, ldv = j->ldv;

    if (j->stage) {
        float *qs = j->stage + (size_t)thread * j->stage_per;
        float *ks = qs + (size_t)rows * j->hd, *vs = ks + (size_t)j->Tk * j->hd;
        ops_bf16_round_rows(qs, j->hd, q, ldq, rows, j->hd);
        ops_bf16_round_rows(ks, j->hd, k, ldk, j->Tk, j->hd);
        ops_bf16_round_rows(vs, j->hd, v, ldv, j->Tk, j->hd);
        q = qs, k = ks, v = vs;
        ldq = ldk = ldv = j->hd;
    }
    /* Scaling inside the softmax equals scaling q first, up to rounding. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, j->Tk, j->hd, 1.0f,
                q, ldq, k, ldk, 0.0f, scores, j->Tk);
    ops_softmax_rows(scores, rows, j->Tk, 1.0f / sqrtf((float)j->hd));
    if (j->stage)
        ops_bf16_round_rows(scores, j->Tk, scores, j->Tk, rows, j->Tk);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, j->hd, j->Tk, 1.0f,
                scores, j->Tk, v, ldv, 0.0f, o, j->ldo);
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
    if (c->dnn) {
        ops_dnn_attention(c, out, ldo, q, ldq, k, ldk, v, ldv, samples, Tq, Tk, heads, hd,
                          scratch);
        return;
    }
    struct attention_job job = {
        .scratch = scratch, .per_thread = ops_attention_scratch(Tq, Tk),
        .stage = c->bf16 ? c->stage : NULL, .stage_per = c->stage_floats, .out = out, .q = q, .k = k, .v = v,
        .ldo = ldo, .ldq = ldq, .ldk = ldk, .ldv = ldv,
        .Tq = Tq, .Tk = Tk, .heads = heads, .hd = hd, .qblocks = ops_tiles(Tq, ATT_ROWS),
    };
    team_run(c->team, attention_task, &job, samples * heads * job.qblocks);
}

