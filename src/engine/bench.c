/*
 * bench.c - `dit bench`: time DiT forwards of a paper configuration with
 * random weights, and OpenBLAS sgemm alone on the same matrix shapes in the
 * same process and run, so the ratio between them is meaningful on a noisy
 * shared machine where absolute times are not.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "isa.h"
#include "model.h"
#include "ops.h"
#include "ops_dnn.h"
#include "team.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Small uniform values; the speed of a forward does not depend on them. */
static void fill_random(float *p, size_t n, uint64_t *state)
{
    for (size_t i = 0; i < n; i++) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        p[i] = (float)((double)(*state >> 11) * (1.0 / 9007199254740992.0) - 0.5) * 0.04f;
    }
}

static const float *take(float **p, size_t n)
{
    const float *r = *p;
    *p += n;
    return r;
}

/* A linear layer in the block at *p; random values fit either layout. */
static struct linear random_linear(float **p, int in, int out, int transposed)
{
    struct linear l = { .in = in, .out = out, .transposed = transposed };
    l.w = take(p, (size_t)in * out);
    l.b = take(p, (size_t)out);
    return l;
}

float *dit_weights_random(const struct dit_config *c, struct dit_weights *w, uint64_t seed)
{
    const size_t D = (size_t)c->hidden, F = (size_t)c->mlp_hidden;
    const size_t P = (size_t)c->in_channels * c->patch * c->patch;
    const size_t Po = (size_t)c->patch * c->patch * c->out_channels;
    const size_t per_block = 6 * D * D + 6 * D + 3 * D * D + 3 * D + D * D + D + 2 * F * D + F + D;
    const size_t total = D * P + D + (size_t)c->tokens * D + DIT_FREQ_DIM * D + D + D * D + D +
                         (size_t)(c->num_classes + 1) * D + c->depth * per_block +
                         2 * D * D + 2 * D + Po * D + Po;
    float *mem = malloc(sizeof(float) * total), *p = mem;
    uint64_t state = seed | 1;

    w->blocks = calloc((size_t)c->depth, sizeof(*w->blocks));
    if (!mem || !w->blocks) {
        free(mem);
        free(w->blocks);
        return NULL;
    }
    fill_random(mem, total, &state);
    w->patch = random_linear(&p, (int)P, (int)D, c->transposed);
    w->pos_embed = take(&p, (size_t)c->tokens * D);
    w->t1 = random_linear(&p, DIT_FREQ_DIM, (int)D, c->transposed);
    w->t2 = random_linear(&p, (int)D, (int)D, c->transposed);
    w->y_table = take(&p, (size_t)(c->num_classes + 1) * D);
    for (int l = 0; l < c->depth; l++) {
        struct dit_block_weights *b = &w->blocks[l];
        b->ada = random_linear(&p, (int)D, 6 * (int)D, c->transposed);
        b->qkv = random_linear(&p, (int)D, 3 * (int)D, c->transposed);
        b->proj = random_linear(&p, (int)D, (int)D, c->transposed);
        b->fc1 = random_linear(&p, (int)D, (int)F, c->transposed);
        b->fc2 = random_linear(&p, (int)F, (int)D, c->transposed);
    }
    w->final_ada = random_linear(&p, (int)D, 2 * (int)D, c->transposed);
    w->final = random_linear(&p, (int)D, (int)Po, c->transposed);
    return mem;
}

/* Milliseconds of the block GEMMs of one forward (depth x qkv, proj, fc1,
 * fc2) as single whole-batch sgemm calls with OpenBLAS's own threading:
 * what the library alone reaches on this work. */
static double time_gemms(const struct dit_config *c, int rows, int threads,
                         float *a, float *b, float *out)
{
    const int M = rows * c->seq, D = c->hidden, F = c->mlp_hidden;
    const int shapes[4][2] = { { 3 * D, D }, { D, D }, { F, D }, { D, F } }; /* N, K */
    blas_set_threads(threads);
    double t0 = now_ms();
    for (int l = 0; l < c->depth; l++)
        for (int s = 0; s < 4; s++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, shapes[s][0], shapes[s][1],
                        1.0f, a, shapes[s][1], b, shapes[s][1], 0.0f, out, shapes[s][0]);
    double ms = now_ms() - t0;
    blas_set_threads(1); /* the forward pass threads itself */
    return ms;
}

void dit_weights_free(void *mem, struct dit_weights *w)
{
    free(mem);
    free(w->blocks);
    w->blocks = NULL;
}

struct bf16_copy {
    const struct dit_config *c;
    struct dnn_model *dnn;
    uint16_t *next;   /* where the next layer's bf16 weights go */
    size_t total;     /* elements, when only counting */
};

/* The form of a layer (as weights.c chooses it for a model): packed for
 * oneDNN (token layers, with dnn), bf16 (the others, in bf16), or kept. */
static int count_linear(void *arg, struct linear *l, int rows)
{
    struct bf16_copy *b = arg;
    if (!(rows && b->dnn) && b->c->bf16)
        b->total += (size_t)l->in * l->out;
    return 0;
}

static int copy_linear(void *arg, struct linear *l, int rows)
{
    struct bf16_copy *b = arg;
    char err[DITD_ERR_LEN];
    if (rows && b->dnn) {
        if (dnn_pack_linear(b->dnn, l, rows, err, sizeof(err)) != 0)
            return DITD_EINVAL;
    } else if (b->c->bf16) {
        ops_bf16_from_f32(b->next, l->w, (size_t)l->in * l->out);
        l->w16 = b->next;
        b->next += (size_t)l->in * l->out;
    } else {
        return 0;
    }
    l->w = NULL;
    return 0;
}

void *dit_weights_bf16(const struct dit_config *c, struct dnn_model *dnn,
                       const struct dit_weights *src, struct dit_weights *dst)
{
    struct bf16_copy b = { .c = c, .dnn = dnn };
    *dst = *src;
    dst->blocks = malloc(sizeof(*dst->blocks) * (size_t)c->depth);
    if (!dst->blocks)
        return NULL;
    memcpy(dst->blocks, src->blocks, sizeof(*dst->blocks) * (size_t)c->depth);
    dit_weights_each(c, dst, count_linear, &b);
    uint16_t *mem = malloc(sizeof(uint16_t) * (b.total ? b.total : 1));
    b.next = mem;
    if (!mem || dit_weights_each(c, dst, copy_linear, &b) != 0) {
        free(mem);
        free(dst->blocks);
        dst->blocks = NULL;
        return NULL;
    }
    return mem;
}

/* The block GEMMs of one forward through the bf16 product the forward
 * uses (the portable one: staged operands, sgemm tiles over the team), on
 * the whole batch's rows at once. */
static double time_gemms_bf16(const struct dit_config *c, int rows, const struct ops_ctx *ops,
                              float *a, const uint16_t *b16, float *out)
{
    const int M = rows * c->seq, D = c->hidden, F = c->mlp_hidden;
    const int shapes[4][2] = { { 3 * D, D }, { D, D }, { F, D }, { D, F } }; /* N, K */
    double t0 = now_ms();
    for (int l = 0; l < c->depth; l++)
        for (int s = 0; s < 4; s++) {
            const struct linear lin = { .w16 = b16, .in = shapes[s][1], .out = shapes[s][0] };
            ops_linear_tokens(ops, out, shapes[s][0], a, shapes[s][1], &lin, 1, M);
        }
    return now_ms() - t0;
}

/* Time forwards of (c, w) against sgemm on the same shapes, and against
 * the product of the precision in use when that is not sgemm. */
static int bench_run(const struct dit_config *c, const struct dit_weights *w, int batch,
                     int threads, int iterations, struct ditd_bench_result *out,
                     char *err, size_t errlen)
{
    struct dit_state s = { 0 };
    struct team *team = NULL;
    float *x = NULL, *y_out = NULL, *ga = NULL, *gb = NULL, *gc = NULL;
    int *t = NULL, *y = NULL, rc = DITD_ENOMEM;
    double *fwd_ms = NULL, *gemm_ms = NULL, *bf16_ms = NULL;
    uint16_t *gb16 = NULL;

    if (batch < 1 || batch > 256 || threads < 1 || iterations < 1) {
        snprintf(err, errlen, "batch must be 1..256, threads and iterations positive");
        return DITD_EINVAL;
    }
    const size_t lat = (size_t)c->in_channels * c->input_size * c->input_size;
    const size_t M = (size_t)batch * c->seq, D = (size_t)c->hidden, F = (size_t)c->mlp_hidden;
    x = malloc(sizeof(float) * lat * batch);
    y_out = malloc(sizeof(float) * lat * 2 * batch);
    t = malloc(sizeof(int) * batch);
    y = malloc(sizeof(int) * batch);
    ga = malloc(sizeof(float) * M * F);
    gb = malloc(sizeof(float) * F * D);
    gc = malloc(sizeof(float) * M * F);
    fwd_ms = malloc(sizeof(double) * iterations);
    gemm_ms = malloc(sizeof(double) * iterations);
    bf16_ms = malloc(sizeof(double) * iterations);
    gb16 = malloc(sizeof(uint16_t) * F * D);
    if (!x || !y_out || !t || !y || !ga || !gb || !gc || !fwd_ms || !gemm_ms || !bf16_ms || !gb16 ||
        team_new(&team, threads) != 0 || dit_state_init(&s, c, batch, threads) != 0) {
        snprintf(err, errlen, "out of memory for the benchmark");
        goto out;
    }
    uint64_t st = 42;
    fill_random(x, lat * batch, &st);
    fill_random(ga, M * F, &st);
    fill_random(gb, F * D, &st);
    ops_bf16_from_f32(gb16, gb, F * D);
    for (int i = 0; i < batch; i++) {
        t[i] = (i * 997 + 13) % 1000;
        y[i] = (i * 37) % (c->num_classes + 1);
    }
    struct ops_ctx ops = { .team = team };
    blas_set_threads(1);

    /* The forwards first, then sgemm with OpenBLAS's own threads: those
     * threads keep polling for a while after their last call and would
     * steal time from the forward passes if the two alternated. (The
     * daemon never starts them: it calls OpenBLAS single-threaded.) */
    dit_forward(c, w, &s, &ops, x, t, y, batch, y_out);
    for (int i = 0; i < iterations; i++) {
        double t0 = now_ms();
        dit_forward(c, w, &s, &ops, x, t, y, batch, y_out);
        fwd_ms[i] = now_ms() - t0;
    }
    if (c->bf16 && c->dnn) {
        /* oneDNN alone, with its own threads, on the whole batch's rows. */
        for (int i = 0; i < iterations; i++) {
            bf16_ms[i] = dnn_bench_gemms((int)M, (int)D, (int)F, c->depth, threads);
            if (bf16_ms[i] < 0) {
                snprintf(err, errlen, "oneDNN's bf16 matmul failed on the forward's shapes");
                rc = DITD_EINVAL;
                goto out;
            }
        }
    } else if (c->bf16) {
        const struct ops_ctx bops = { .team = team, .bf16 = 1, .stage = s.stage,
                                      .stage_floats = s.stage_floats };
        time_gemms_bf16(c, batch, &bops, ga, gb16, gc);
        for (int i = 0; i < iterations; i++)
            bf16_ms[i] = time_gemms_bf16(c, batch, &bops, ga, gb16, gc);
    }
    time_gemms(c, batch, threads, ga, gb, gc);
    for (int i = 0; i < iterations; i++)
        gemm_ms[i] = time_gemms(c, batch, threads, ga, gb, gc);
    /* Let OpenBLAS's threads go back to sleep before anything else runs. */
    nanosleep(&(struct timespec){ .tv_sec = 0, .tv_nsec = 300000000 }, NULL);
    int64_t params;
    double macs;
    dit_count(c, &params, &macs);
    const double gemm_macs = (double)c->depth * (double)M * (4.0 * D * D + 2.0 * F * D);
    out->ms_per_forward = median(fwd_ms, iterations);
    out->gflops = 2.0 * macs * batch / (out->ms_per_forward * 1e6);
    out->sgemm_gflops = 2.0 * gemm_macs / (median(gemm_ms, iterations) * 1e6);
    out->gemm_gflops = !c->bf16 ? out->sgemm_gflops :
                       2.0 * gemm_macs / (median(bf16_ms, iterations) * 1e6);
    out->gemm_fraction = gemm_macs / (macs * batch);
    out->precision = c->bf16 ? "bf16" : "fp32";
    rc = 0;

out:
    dit_state_free(&s);
    team_free(team);
    free(x);
    free(y_out);
    free(t);
    free(y);
    free(ga);
    free(gb);
    free(gc);
    free(fwd_ms);
    free(gemm_ms);
    free(bf16_ms);
    free(gb16);
    return rc;
}

int ditd_bench_forward(const char *config, int image_size, enum ditd_precision precision,
                       int batch, int threads, int iterations, struct ditd_bench_result *out,
                       char *err, size_t errlen)
{
    struct dit_config c;
    struct dit_weights w = { 0 }, w16;
    struct dnn_model *dnn = NULL;
    void *mem16 = NULL;
    int rc = model_arch_config(config, image_size, 1000, &c, err, errlen), native;
    if (rc)
        return rc;
    isa_choose_precision(precision, c.transposed, &c.bf16, &native, out->precision_note,
                         sizeof(out->precision_note));
    if (native && ((rc = dnn_model_new(&dnn, DNN_BF16, err, errlen)) ||
                   (rc = dit_dnn_prepare(&c, dnn, err, errlen)))) {
        dnn_model_free(dnn);
        return rc;
    }
    c.dnn = dnn;
    float *weights = dit_weights_random(&c, &w, 0x9e3779b97f4a7c15ULL);
    if (weights && c.bf16 && !(mem16 = dit_weights_bf16(&c, dnn, &w, &w16))) {
        dit_weights_free(weights, &w);
        weights = NULL;
    }
    if (!weights) {
        snprintf(err, errlen, "out of memory (or oneDNN failed) making %s weights", config);
        dnn_model_free(dnn);
        return DITD_ENOMEM;
    }
    if (native)
        snprintf(out->precision_note + strlen(out->precision_note),
                 sizeof(out->precision_note) - strlen(out->precision_note), "; oneDNN %s",
                 dnn_model_impl(dnn));
    rc = bench_run(&c, c.bf16 ? &w16 : &w, batch, threads, iterations, out, err, errlen);
    if (mem16)
        dit_weights_free(mem16, &w16);
    dit_weights_free(weights, &w);
    dnn_model_free(dnn);
    return rc;
}

int ditd_bench_model(const struct ditd_model *m, int batch, int threads, int iterations,
                     struct ditd_bench_result *out, char *err, size_t errlen)
{
    snprintf(out->precision_note, sizeof(out->precision_note), "%s", m->precision_note);
    return bench_run(&m->dit, &m->dw, batch, threads, iterations, out, err, errlen);
}
