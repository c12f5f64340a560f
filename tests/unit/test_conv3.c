/*
 * test_conv3.c - the VAE's 3x3 convolutions (conv3.c), both the Winograd
 * and the direct path, against the naive direct convolution
 * (ops_ref_conv3x3), with and without what they fuse (GroupNorm affine +
 * SiLU on the input, nearest x2 upsampling, the residual add), at sizes
 * that are not multiples of the 4x4 tile, with channel counts that are not
 * multiples of the vector width or the 16-channel panel, and over several
 * chunks of tiles; and the same bytes whatever the thread count.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "../test.h"
#include "bf16.h"
#include "ops.h"
#include "team.h"
#include "conv3.h"

static float urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

struct conv_case {
    int H, W, Cin, Cout;
    int affine, silu, up2, residual;
    int bf16;   /* bf16 weights: the reference rounds inputs and weights to bf16 */
};

/* Reference input of the convolution (after affine/SiLU/upsampling), HWC. */
static float *reference_input(const struct conv_case *k, const float *x, const float *center,
                              const float *scale, const float *shift)
{
    float *d = malloc(sizeof(float) * (size_t)k->H * k->W * k->Cin);
    const int Ws = k->up2 ? k->W / 2 : k->W;
    for (int y = 0; y < k->H; y++)
        for (int xx = 0; xx < k->W; xx++)
            for (int c = 0; c < k->Cin; c++) {
                const int sy = k->up2 ? y / 2 : y, sx = k->up2 ? xx / 2 : xx;
                double v = x[((size_t)sy * Ws + sx) * k->Cin + c];
                if (k->affine) {
                    v = (v - center[c]) * scale[c] + shift[c];
                    if (k->silu)
                        v = v / (1.0 + exp(-v));
                }
                d[((size_t)y * k->W + xx) * k->Cin + c] = k->bf16 ? bf16_round((float)v) : (float)v;
            }
    return d;
}

/* One output of the direct convolution, in double (as ops_ref_conv3x3). */
static double direct(const struct conv_case *k, const float *d, const float *w, const float *b,
                     int y, int x, int o)
{
    double acc = b[o];
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++) {
            const int sy = y + ky - 1, sx = x + kx - 1;
            if (sy < 0 || sy >= k->H || sx < 0 || sx >= k->W)
                continue;
            for (int i = 0; i < k->Cin; i++)
                acc += (double)d[((size_t)sy * k->W + sx) * k->Cin + i] *
                       w[(((size_t)o * k->Cin + i) * 3 + ky) * 3 + kx];
        }
    return acc;
}

/* Returns max |ours - ref| / max |ref| over the checked outputs (every
 * output when `every` is 1, else a sparse set). */
static double run_case(const struct conv_case *k, int every)
{
    uint64_t s = 0x1234 + (uint64_t)k->H * 31 + (uint64_t)k->Cin * 7 + (uint64_t)k->Cout;
    const size_t in_px = (size_t)(k->up2 ? k->H / 2 : k->H) * (k->up2 ? k->W / 2 : k->W);
    const size_t out_n = (size_t)k->H * k->W * k->Cout;
    float *x = malloc(sizeof(float) * in_px * k->Cin);
    float *w = malloc(sizeof(float) * 9 * k->Cin * k->Cout);   /* (Cout, Cin, 3, 3) */
    float *w9 = malloc(sizeof(float) * conv3_weight_floats(k->Cin, k->Cout));
    float *b = malloc(sizeof(float) * k->Cout);
    float *scale = malloc(sizeof(float) * k->Cin), *shift = malloc(sizeof(float) * k->Cin);
    float *center = malloc(sizeof(float) * k->Cin);
    float *res = malloc(sizeof(float) * out_n);
    float *out[3];
    const float wscale = 1.0f / sqrtf(9.0f * k->Cin);

    for (size_t i = 0; i < in_px * k->Cin; i++)
        x[i] = 3.0f * urand(&s);
    for (size_t i = 0; i < (size_t)9 * k->Cin * k->Cout; i++)
        w[i] = wscale * urand(&s);
    if (k->bf16)
        for (size_t i = 0; i < (size_t)9 * k->Cin * k->Cout; i++)
            w[i] = bf16_round(w[i]);
    conv3_pack_weights(w9, w, k->Cin, k->Cout);
    uint16_t *w16 = malloc(sizeof(uint16_t) * conv3_weight_floats(k->Cin, k->Cout));
    ops_bf16_from_f32(w16, w9, conv3_weight_floats(k->Cin, k->Cout));
    const struct conv3_weights wt = {
        .w = k->bf16 ? NULL : w9, .w16 = k->bf16 ? w16 : NULL, .b = b, .cin = k->Cin,
        .cout = k->Cout,
    };
    for (int o = 0; o < k->Cout; o++)
        b[o] = 0.1f * urand(&s);
    for (int i = 0; i < k->Cin; i++) {
        center[i] = 0.5f * urand(&s);
        scale[i] = 0.5f + 0.25f * urand(&s);
        shift[i] = 0.2f * urand(&s);
    }
    for (size_t i = 0; i < out_n; i++)
        res[i] = urand(&s);

    const struct conv3_input in = {
        .x = x, .center = center, .scale = k->affine ? scale : NULL,
        .shift = k->affine ? shift : NULL,
        .silu = k->silu, .up2 = k->up2,
    };
    float *scratch;
    CHECK(posix_memalign((void **)&scratch, 64,
                         sizeof(float) * conv3_scratch_floats(k->H, k->W, k->Cin, k->Cout)) == 0);
    for (int threads = 1; threads <= 3; threads++) {
        struct team *t;
        CHECK(team_new(&t, threads) == 0);
        struct ops_ctx c = { .team = t };
        out[threads - 1] = malloc(sizeof(float) * out_n);
        if (k->residual) {
            /* In place: the residual is the output buffer. */
            memcpy(out[threads - 1], res, sizeof(float) * out_n);
            conv3_run(&c, out[threads - 1], out[threads - 1], &in, &wt, k->H, k->W, scratch, NULL);
        } else {
            conv3_run(&c, out[threads - 1], NULL, &in, &wt, k->H, k->W, scratch, NULL);
        }
        team_free(t);
    }
    CHECK(memcmp(out[0], out[1], sizeof(float) * out_n) == 0);
    CHECK(memcmp(out[0], out[2], sizeof(float) * out_n) == 0);

    float *d = reference_input(k, x, center, scale, shift);
    double worst = 0.0, scale_ref = 0.0;
    if (every == 1 && !k->affine && !k->up2) {
        /* The whole map through the library's naive reference. */
        float *ref = malloc(sizeof(float) * out_n);
        ops_ref_conv3x3(ref, d, w, b, k->H, k->W, k->Cin, k->Cout);
        for (size_t i = 0; i < out_n; i++) {
            const double r = ref[i] + (k->residual ? res[i] : 0.0);
            worst = fmax(worst, fabs(out[0][i] - r));
            scale_ref = fmax(scale_ref, fabs(r));
        }
        free(ref);
    } else {
        for (size_t i = 0; i < out_n; i += (size_t)every) {
            const int o = (int)(i % k->Cout), p = (int)(i / k->Cout);
            const double r = direct(k, d, w, b, p / k->W, p % k->W, o) +
                             (k->residual ? res[i] : 0.0);
            worst = fmax(worst, fabs(out[0][i] - r));
            scale_ref = fmax(scale_ref, fabs(r));
        }
    }
    free(d);
    free(x);
    free(w);
    free(w9);
    free(w16);
    free(b);
    free(scale);
    free(shift);
    free(center);
    free(res);
    free(scratch);
    for (int i = 0; i < 3; i++)
        free(out[i]);
    return worst / scale_ref;
}

int main(void)
{
    /* F(4x4, 3x3) rounds about ten times more than the direct sum (points
     * +-2 in its transforms): measured 2-5e-6 of max|ref| on these. */
    static const struct conv_case wino[] = {
        /* H  W  Cin Cout affine silu up2 residual bf16 */
        { 22, 26, 3, 5, 0, 0, 0, 0, 0 },    /* partial tiles, channel tails */
        { 26, 30, 17, 9, 1, 1, 0, 0, 0 },   /* GroupNorm affine + SiLU on the input */
        { 20, 28, 16, 24, 1, 0, 0, 1, 0 },  /* affine only, residual in place */
        { 24, 20, 12, 8, 0, 0, 1, 0, 0 },   /* upsampled input */
        { 30, 18, 24, 40, 1, 1, 1, 1, 0 },  /* everything */
        { 32, 32, 64, 64, 1, 1, 0, 1, 0 },
        { 26, 30, 17, 9, 0, 0, 0, 0, 1 },   /* bf16 weights and inputs */
        { 30, 18, 24, 40, 0, 0, 1, 1, 1 },
    };
    static const struct conv_case direct[] = {
        { 4, 4, 8, 8, 0, 0, 0, 0, 0 },
        { 5, 7, 3, 5, 0, 0, 0, 0, 0 },
        { 1, 1, 4, 16, 0, 0, 0, 0, 0 },
        { 9, 6, 17, 9, 1, 1, 0, 0, 0 },
        { 8, 10, 16, 24, 1, 0, 0, 1, 0 },
        { 10, 6, 12, 8, 0, 0, 1, 0, 0 },
        { 14, 12, 24, 40, 1, 1, 1, 1, 0 },
        { 9, 6, 17, 9, 0, 0, 0, 0, 1 },     /* bf16 */
        { 14, 12, 24, 40, 0, 0, 1, 1, 1 },
    };
    /* bf16 cases: against the reference on bf16-rounded inputs and weights,
     * so a missing rounding (error ~1e-3) cannot pass. Without the affine
     * and SiLU: a value computed in float here and in double there can round
     * to neighbouring bf16 numbers (one 2^-8 step: errors of a few 1e-4);
     * the activations' rounding is checked whole by parity-vae in bf16. */
    for (size_t i = 0; i < sizeof(wino) / sizeof(wino[0]); i++) {
        const struct conv_case *k = &wino[i];
        CHECK(conv3_winograd(k->H, k->W, k->Cin, k->Cout));
        const double err = run_case(k, 1);
        printf("winograd %dx%d %d->%d%s: error %.3g of max|ref|\n", k->H, k->W, k->Cin, k->Cout,
               k->bf16 ? " bf16" : "", err);
        CHECK(err < 2e-5);
    }
    for (size_t i = 0; i < sizeof(direct) / sizeof(direct[0]); i++) {
        const struct conv_case *k = &direct[i];
        CHECK(!conv3_winograd(k->H, k->W, k->Cin, k->Cout));
        const double err = run_case(k, 1);
        printf("direct %dx%d %d->%d%s: error %.3g of max|ref|\n", k->H, k->W, k->Cin, k->Cout,
               k->bf16 ? " bf16" : "", err);
        CHECK(err < 2e-6);
    }
    /* Many chunks of tiles (1024 tiles, 7 rows of 32 per chunk at 256 + 256
     * channels): checked at a sparse set of outputs. */
    const struct conv_case big = { 128, 128, 256, 256, 1, 1, 0, 1, 0 };
    CHECK(conv3_winograd(big.H, big.W, big.Cin, big.Cout));
    const double err = run_case(&big, 997);
    printf("winograd, many chunks: error %.3g of max|ref|\n", err);
    CHECK(err < 2e-5);
    return test_status();
}
