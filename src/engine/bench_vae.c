/*
 * bench_vae.c - `dit bench --vae`: time decodes of the Stable Diffusion VAE
 * decoder (the sd-vae-ft-* architecture: block_out_channels 128, 256, 512,
 * 512, two layers per block, 32 groups, mid-block attention) with random
 * weights, no files needed, on the worker's own code path.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "conv3.h"
#include "conv3_dnn.h"
#include "ditd.h"
#include "isa.h"
#include "ops.h"
#include "ops.h"
#include "team.h"
#include "vae.h"

static const struct vae_config sd_vae = {
    .latent_channels = 4, .out_channels = 3, .blocks = 4, .block_out = { 128, 256, 512, 512 },
    .layers_per_block = 2, .groups = 32, .mid_attention = 1, .scaling_factor = 0.18215f,
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Weights drawn uniformly with the variance of PyTorch's default init
 * (1/(3 fan_in)), GroupNorm gains near 1: activations keep their scale
 * through the decoder, so the timing sees no denormals or overflow. */
struct filler {
    float *p;        /* NULL: only count */
    size_t used;
    uint64_t state;
    struct conv3_dnn_model *dnn; /* native bf16: pack the convolutions for oneDNN */
    int L;           /* latent size: the map sizes oneDNN packs for */
};

static const float *take(struct filler *f, size_t n, float bound, float offset)
{
    float *r = f->p ? f->p + f->used : NULL;
    f->used += n;
    for (size_t i = 0; r && i < n; i++) {
        f->state ^= f->state << 13;
        f->state ^= f->state >> 7;
        f->state ^= f->state << 17;
        const float u = (float)((double)(f->state >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
        r[i] = offset + bound * u;
    }
    return r;
}

static const float *weight(struct filler *f, size_t n, int fan_in)
{
    return take(f, n, 1.0f / sqrtf((float)fan_in), 0.0f);
}

/* A 3x3 convolution on H x H maps: random (cout, cin, 3, 3) weights packed
 * for oneDNN or into the own kernels' panels, as a model's are at load. */
static struct conv3_weights conv_weight(struct filler *f, int cin, int cout, int H)
{
    struct conv3_weights c = { .cin = cin, .cout = cout };
    const float *w = weight(f, (size_t)9 * cin * cout, 9 * cin);
    float *panels = (float *)take(f, conv3_weight_floats(cin, cout), 0.0f, 0.0f);
    char err[DITD_ERR_LEN];
    c.b = weight(f, (size_t)cout, 9 * cin);
    if (f->p && !(f->dnn && conv3_dnn_pack(f->dnn, &c, w, H, H, err, sizeof(err)) == 0)) {
        conv3_pack_weights(panels, w, cin, cout);
        c.w = panels;
    }
    return c;
}

static struct linear linear_weight(struct filler *f, int in, int out)
{
    struct linear l = { .in = in, .out = out };
    l.w = weight(f, (size_t)out * in, in);
    l.b = weight(f, (size_t)out, in);
    return l;
}

static void random_resnet(struct filler *f, int cin, int cout, int H, struct vae_resnet *r)
{
    r->cin = cin;
    r->cout = cout;
    r->norm1_w = take(f, (size_t)cin, 0.1f, 1.0f);
    r->norm1_b = take(f, (size_t)cin, 0.1f, 0.0f);
    r->conv1 = conv_weight(f, cin, cout, H);
    r->norm2_w = take(f, (size_t)cout, 0.1f, 1.0f);
    r->norm2_b = take(f, (size_t)cout, 0.1f, 0.0f);
    r->conv2 = conv_weight(f, cout, cout, H);
    if (cin != cout)
        r->shortcut = linear_weight(f, cin, cout);
}

/* Point w at weights for cfg drawn by f (or only count them). */
static void random_weights(const struct vae_config *cfg, struct vae_weights *w, struct filler *f)
{
    const int C = cfg->latent_channels, top = cfg->block_out[cfg->blocks - 1], L = f->L;

    memset(w, 0, sizeof(*w));
    w->post_quant = linear_weight(f, C, C);
    w->conv_in = conv_weight(f, C, top, L);
    random_resnet(f, top, top, L, &w->mid_res[0]);
    if (cfg->mid_attention) {
        w->attn_norm_w = take(f, (size_t)top, 0.1f, 1.0f);
        w->attn_norm_b = take(f, (size_t)top, 0.1f, 0.0f);
        w->q = linear_weight(f, top, top);
        w->k = linear_weight(f, top, top);
        w->v = linear_weight(f, top, top);
        w->o = linear_weight(f, top, top);
    }
    random_resnet(f, top, top, L, &w->mid_res[1]);
    int prev = top;
    for (int i = 0; i < cfg->blocks; i++) {
        const int ch = cfg->block_out[cfg->blocks - 1 - i];
        for (int j = 0; j <= cfg->layers_per_block; j++)
            random_resnet(f, j == 0 ? prev : ch, ch, L << i, &w->up[i].res[j]);
        if (i < cfg->blocks - 1)
            w->up[i].up = conv_weight(f, ch, ch, L << (i + 1));
        prev = ch;
    }
    const int cb = cfg->block_out[0];
    w->norm_out_w = take(f, (size_t)cb, 0.1f, 1.0f);
    w->norm_out_b = take(f, (size_t)cb, 0.1f, 0.0f);
    w->conv_out = conv_weight(f, cb, cfg->out_channels, L << (cfg->blocks - 1));
}

float *vae_weights_random(const struct vae_config *cfg, struct vae_weights *w, int L,
                         uint64_t seed)
{
    struct filler f = { .state = seed | 1, .dnn = cfg->dnn, .L = L };
    random_weights(cfg, w, &f);
    f.p = malloc(sizeof(float) * f.used);
    f.used = 0;
    if (f.p)
        random_weights(cfg, w, &f);
    return f.p;
}

/* bf16 copies of the random weights, from one block that stays with the
 * float32 one (vae_weights_to_bf16's converter). */
struct bf16_block {
    uint16_t *next, *end;
};

static uint16_t *bench_bf16_copy(void *arg, const float *f32, size_t n)
{
    struct bf16_block *b = arg;
    if (!b->next || (size_t)(b->end - b->next) < n)
        return NULL;
    uint16_t *r = b->next;
    ops_bf16_from_f32(r, f32, n);
    b->next += n;
    return r;
}

int ditd_bench_vae(int image_size, enum ditd_precision precision, int threads, int iterations,
                   struct ditd_bench_vae_result *out, char *err, size_t errlen)
{
    struct vae_config c = sd_vae;
    const struct vae_config *cfg = &c;
    struct bf16_block b16 = { 0 };
    uint16_t *b16_mem = NULL;
    const int f = 1 << (cfg->blocks - 1), L = image_size / f;
    struct vae_weights w;
    struct vae_state s = { 0 };
    struct team *team = NULL;
    float *weights = NULL, *z = NULL, *img = NULL;
    double *ms = NULL;
    int rc = DITD_ENOMEM;

    if (image_size % f != 0 || L < 1 || L > 256 || threads < 1 || iterations < 1) {
        snprintf(err, errlen, "the VAE benchmark needs an image size that is a multiple of %d, "
                 "%d to %d, and positive threads and iterations", f, f, 256 * f);
        return DITD_EINVAL;
    }
    const size_t lat = (size_t)cfg->latent_channels * L * L;
    int native;
    isa_choose_precision(precision, 0, &c.bf16, &native, out->precision_note,
                         sizeof(out->precision_note));
    out->precision = c.bf16 ? "bf16" : "fp32";
    if (native && conv3_dnn_model_new(&c.dnn, DNN_BF16, err, errlen) != 0)
        c.dnn = NULL;
    weights = vae_weights_random(cfg, &w, L, 0x2545f4914f6cdd1dULL);
    if (c.dnn) {
        const size_t used = strlen(out->precision_note);
        snprintf(out->precision_note + used, sizeof(out->precision_note) - used,
                 "; VAE convolutions %s", conv3_dnn_impl(c.dnn));
    }
    if (weights && c.bf16) {
        int64_t params;
        double macs;
        vae_count(cfg, 1, &params, &macs);
        /* Packed convolutions are a little larger than their parameters. */
        const size_t n = (size_t)params * 2;
        b16 = (struct bf16_block){ .next = b16_mem = malloc(sizeof(uint16_t) * n) };
        b16.end = b16.next + (b16_mem ? n : 0);
        if (vae_weights_to_bf16(&w, cfg, bench_bf16_copy, &b16) != 0) {
            free(weights);
            weights = NULL;
        }
    }
    z = malloc(sizeof(float) * lat);
    img = malloc(sizeof(float) * (size_t)cfg->out_channels * image_size * image_size);
    ms = malloc(sizeof(double) * (size_t)iterations);
    if (!weights || !z || !img || !ms || team_new(&team, threads) != 0 ||
        vae_state_init(&s, cfg, L, L, threads) != 0) {
        snprintf(err, errlen, "out of memory for the VAE benchmark at %d px", image_size);
        goto out;
    }
    struct filler zf = { .p = z, .state = 7 };
    take(&zf, lat, 1.7f, 0.0f);   /* about the spread of sampled latents / scaling factor */
    struct ops_ctx ops = { .team = team };
    blas_set_threads(1);
    rc = vae_decode(cfg, &w, &s, &ops, z, img);
    const double cpu0 = cpu_ms();
    for (int i = 0; i < iterations && !rc; i++) {
        const double t0 = now_ms();
        rc = vae_decode(cfg, &w, &s, &ops, z, img);
        ms[i] = now_ms() - t0;
    }
    if (rc) {
        snprintf(err, errlen, "the VAE decoder failed in oneDNN");
        goto out;
    }
    out->cpu_ms_per_decode = (cpu_ms() - cpu0) / iterations;
    qsort(ms, (size_t)iterations, sizeof(double), cmp_double);
    int64_t params;
    double macs;
    vae_count(cfg, L, &params, &macs);
    out->ms_per_decode = iterations % 2 ? ms[iterations / 2]
                                        : 0.5 * (ms[iterations / 2 - 1] + ms[iterations / 2]);
    out->ms_best = ms[0];
    out->gmacs = macs / 1e9;
    out->gflops = 2.0 * macs / (out->ms_per_decode * 1e6);
    out->latent_size = L;
    rc = 0;
    for (size_t i = 0; i < (size_t)cfg->out_channels * image_size * image_size; i++)
        if (!isfinite(img[i])) {
            snprintf(err, errlen, "the benchmark decode produced a non-finite value");
            rc = DITD_EINVAL;
            break;
        }
out:
    vae_state_free(&s);
    team_free(team);
    free(weights);
    free(b16_mem);
    conv3_dnn_model_free(c.dnn);
    free(z);
    free(img);
    free(ms);
    return rc;
}
