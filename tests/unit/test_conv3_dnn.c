/*
 * test_conv3_dnn.c - the VAE's convolutions through oneDNN (conv3_dnn.c)
 * against ditd's own (conv3.c): in float32 on every machine with oneDNN
 * (packing, the bands of rows, the padding at the map's edges, the bias and
 * the residual sum post-op, the on-the-fly GroupNorm affine + SiLU and
 * upsampling), and in bf16 on CPUs with AVX512-BF16 or AMX (the native
 * path; skipped, saying so, elsewhere). Each run with 1, 2 and 3 threads
 * must give the same bytes. Then whole decodes (vae.c) of a small decoder
 * with its convolutions packed for oneDNN against the same weights on the
 * own kernels, at the model's latent size and at others.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "../test.h"
#include "conv3.h"
#include "conv3_dnn.h"
#include "ditd.h"
#include "onednn.h"
#include "ops.h"
#include "team.h"
#include "vae.h"

#ifdef DITD_HAVE_ONEDNN
static float urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

struct dcase {
    int H, W, Cin, Cout, affine, up2, residual;
};

/* max |oneDNN - own| / max |own|, own in float32 or with bf16 panels. */
static double run(const struct dcase *k, enum dnn_type type)
{
    uint64_t s = 77 + (uint64_t)k->H * 13 + (uint64_t)k->Cin;
    const size_t in_px = (size_t)(k->up2 ? k->H / 2 : k->H) * (k->up2 ? k->W / 2 : k->W);
    const size_t out_n = (size_t)k->H * k->W * k->Cout;
    const size_t wn = conv3_weight_floats(k->Cin, k->Cout);
    float *x = malloc(sizeof(float) * in_px * k->Cin);
    float *w = malloc(sizeof(float) * 9 * (size_t)k->Cin * k->Cout), *w9 = malloc(sizeof(float) * wn);
    uint16_t *w16 = malloc(sizeof(uint16_t) * wn);
    float *b = malloc(sizeof(float) * k->Cout), *res = malloc(sizeof(float) * out_n);
    float *scale = malloc(sizeof(float) * k->Cin), *shift = malloc(sizeof(float) * k->Cin);
    float *center = malloc(sizeof(float) * k->Cin);
    float *own = malloc(sizeof(float) * out_n), *dnn[3], *scratch;
    struct conv3_dnn_model *d = NULL;
    char err[DITD_ERR_LEN];
    double worst = 0, big = 0;

    for (size_t i = 0; i < in_px * k->Cin; i++)
        x[i] = 2.0f * urand(&s);
    for (size_t i = 0; i < (size_t)9 * k->Cin * k->Cout; i++)
        w[i] = urand(&s) / sqrtf(9.0f * k->Cin);
    for (int o = 0; o < k->Cout; o++)
        b[o] = 0.1f * urand(&s);
    for (int i = 0; i < k->Cin; i++) {
        center[i] = 0.3f * urand(&s);
        scale[i] = 0.6f + 0.2f * urand(&s);
        shift[i] = 0.1f * urand(&s);
    }
    for (size_t i = 0; i < out_n; i++)
        res[i] = urand(&s);
    conv3_pack_weights(w9, w, k->Cin, k->Cout);
    ops_bf16_from_f32(w16, w9, wn);
    struct conv3_weights mine = { .b = b, .cin = k->Cin, .cout = k->Cout };
    if (type == DNN_BF16)
        mine.w16 = w16;
    else
        mine.w = w9;
    struct conv3_weights theirs = { .b = b, .cin = k->Cin, .cout = k->Cout };
    const struct conv3_input in = {
        .x = x, .center = center, .scale = k->affine ? scale : NULL,
        .shift = k->affine ? shift : NULL,
        .silu = k->affine, .up2 = k->up2,
    };

    CHECK(conv3_dnn_model_new(&d, type, err, sizeof(err)) == 0);
    if (conv3_dnn_pack(d, &theirs, w, k->H, k->W, err, sizeof(err)) != 0) {
        fprintf(stderr, "pack: %s\n", err);
        test_failures++;
    }
    CHECK(posix_memalign((void **)&scratch, 64,
                         sizeof(float) * conv3_scratch_floats(k->H, k->W, k->Cin, k->Cout)) == 0);
    for (int threads = 1; threads <= 3; threads++) {
        struct team *t;
        struct conv3_dnn_ctx *x_ctx = NULL;
        CHECK(team_new(&t, threads) == 0);
        struct ops_ctx c = { .team = t };
        dnn[threads - 1] = malloc(sizeof(float) * out_n);
        memcpy(dnn[threads - 1], res, sizeof(float) * out_n);
        CHECK(conv3_dnn_ctx_new(&x_ctx, d, threads, (size_t)k->H * k->W * k->Cin) == 0);
        if (conv3_dnn_prepare(x_ctx, k->Cin, k->Cout, k->H, k->W, k->residual, err,
                              sizeof(err)) != 0 ||
            conv3_dnn_ctx_finish(x_ctx, err, sizeof(err)) != 0) {
            fprintf(stderr, "prepare: %s\n", err);
            test_failures++;
        }
        conv3_run(&c, dnn[threads - 1], k->residual ? dnn[threads - 1] : NULL, &in, &theirs,
                  k->H, k->W, NULL, x_ctx);
        CHECK_EQ_INT(conv3_dnn_error(x_ctx), 0);
        if (threads == 1) {
            memcpy(own, res, sizeof(float) * out_n);
            conv3_run(&c, own, k->residual ? own : NULL, &in, &mine, k->H, k->W, scratch, NULL);
        }
        conv3_dnn_ctx_free(x_ctx);
        team_free(t);
    }
    CHECK(memcmp(dnn[0], dnn[1], sizeof(float) * out_n) == 0);
    CHECK(memcmp(dnn[0], dnn[2], sizeof(float) * out_n) == 0);
    for (size_t i = 0; i < out_n; i++) {
        worst = fmax(worst, fabs(dnn[0][i] - own[i]));
        big = fmax(big, fabs(own[i]));
    }
    conv3_dnn_model_free(d);
    free(x), free(w), free(w9), free(w16), free(b), free(res), free(scale), free(shift);
    free(center);
    free(own), free(scratch);
    for (int i = 0; i < 3; i++)
        free(dnn[i]);
    return worst / big;
}

/* A small decoder (two up blocks, attention) with the same random weights
 * on both paths: max |oneDNN - own| / max |own| over one decode of an
 * h x w latent; the oneDNN one also with 1 and 3 threads, bytes equal. */
static double decode_case(enum dnn_type type, int L, int h, int w)
{
    struct vae_config cfg = {
        .latent_channels = 4, .out_channels = 3, .blocks = 2, .block_out = { 32, 64 },
        .layers_per_block = 1, .groups = 8, .mid_attention = 1, .scaling_factor = 1.0f,
    };
    struct vae_config dcfg = cfg;
    struct vae_weights own_w, dnn_w;
    char err[DITD_ERR_LEN];
    const size_t pix = (size_t)3 * (2 * h) * (2 * w);
    float *z = malloc(sizeof(float) * 4 * h * w), *out[3], *ref = malloc(sizeof(float) * pix);
    double worst = 0, big = 0;
    uint64_t s = 99;

    CHECK(conv3_dnn_model_new(&dcfg.dnn, type, err, sizeof(err)) == 0);
    float *a = vae_weights_random(&cfg, &own_w, L, 5), *b = vae_weights_random(&dcfg, &dnn_w, L, 5);
    CHECK(a && b && dnn_w.conv_in.dnn && dnn_w.mid_res[0].conv2.dnn && dnn_w.up[0].up.dnn);
    for (int i = 0; i < 4 * h * w; i++)
        z[i] = urand(&s);
    for (int threads = 1; threads <= 3; threads++) {
        struct team *t;
        struct vae_state st;
        CHECK(team_new(&t, threads) == 0);
        struct ops_ctx c = { .team = t };
        out[threads - 1] = malloc(sizeof(float) * pix);
        CHECK(vae_state_init(&st, &dcfg, h, w, threads) == 0);
        CHECK(vae_decode(&dcfg, &dnn_w, &st, &c, z, out[threads - 1]) == 0);
        vae_state_free(&st);
        if (threads == 2) {
            CHECK(vae_state_init(&st, &cfg, h, w, threads) == 0);
            CHECK(vae_decode(&cfg, &own_w, &st, &c, z, ref) == 0);
            vae_state_free(&st);
        }
        team_free(t);
    }
    CHECK(memcmp(out[0], out[1], sizeof(float) * pix) == 0);
    CHECK(memcmp(out[0], out[2], sizeof(float) * pix) == 0);
    for (size_t i = 0; i < pix; i++) {
        worst = fmax(worst, fabs(out[0][i] - ref[i]));
        big = fmax(big, fabs(ref[i]));
    }
    free(a), free(b), free(z), free(ref);
    for (int i = 0; i < 3; i++)
        free(out[i]);
    conv3_dnn_model_free(dcfg.dnn);
    return worst / big;
}
#endif

/* test_conv3_dnn f32 | bf16: the float32 run everywhere with oneDNN, the
 * bf16 run where oneDNN has native bf16 (exit 77, meson's skip, elsewhere). */
int main(int argc, char **argv)
{
    const int bf16 = argc > 1 && strcmp(argv[1], "bf16") == 0;
#ifdef DITD_HAVE_ONEDNN
    static const struct dcase cases[] = {
        /* H  W  Cin Cout affine up2 residual */
        { 16, 12, 32, 48, 1, 0, 0 },
        { 17, 9, 16, 32, 1, 0, 1 },     /* the last band shorter, residual in place */
        { 20, 24, 32, 32, 0, 1, 0 },    /* upsampled input */
        { 3, 5, 16, 16, 1, 0, 1 },      /* fewer rows than bands */
        { 40, 40, 64, 64, 1, 0, 1 },    /* the Winograd path on ditd's side */
    };
    if (bf16 && !onednn_native_bf16()) {
        printf("SKIP: oneDNN runs bf16 natively only on AVX512-BF16 or AMX (this CPU: %s); "
               "test_conv3_dnn_f32 runs the same code in float32\n", onednn_isa());
        return 77;
    }
    const enum dnn_type type = bf16 ? DNN_BF16 : DNN_F32;
    const char *name = bf16 ? "bf16" : "f32";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct dcase *k = &cases[i];
        const double err = run(k, type);
        printf("%s %dx%d %d->%d: oneDNN vs own %.3g of max\n", name, k->H, k->W, k->Cin,
               k->Cout, err);
        /* bf16: both on the same bf16-rounded operands, only float32 sums differ. */
        CHECK(err < 2e-5);
    }
    if (!bf16) {
        /* Decodes: the model's own latent (8), a larger and a non-square one. */
        static const int sizes[][2] = { { 8, 8 }, { 12, 20 }, { 5, 3 } };
        for (int i = 0; i < 3; i++) {
            const double err = decode_case(DNN_F32, 8, sizes[i][0], sizes[i][1]);
            printf("f32 decode %dx%d: oneDNN vs own %.3g of max\n", sizes[i][0], sizes[i][1],
                   err);
            CHECK(err < 2e-5);
        }
    }
    return test_status();
#else
    (void)bf16;
    printf("SKIP: built without oneDNN\n");
    return 77;
#endif
}
