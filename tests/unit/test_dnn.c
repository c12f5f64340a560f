/*
 * test_dnn.c - the native path (ops_dnn.c): oneDNN matmul on packed weight
 * tiles, per image, per column tile, and attention per (image, head, query
 * block), against the references, with a team of 1 and of 3 threads; and a
 * whole DiT forward on it, whose rows must not depend on their batch or on
 * the thread count.
 *
 *   test_dnn f32    the same code with float32 data: runs on every CPU
 *                   oneDNN supports, so the packing, tiling, strides and
 *                   epilogues are tested where bf16 is not available;
 *   test_dnn bf16   the real thing: needs AVX512-BF16 or AMX (exit 77,
 *                   skipped, elsewhere, saying why).
 */
#include <stdlib.h>

#include "unit.h"
#include "isa.h"
#include "onednn.h"
#include "ops.h"
#include "ops_dnn.h"
#include "rng.h"

static int bf16;   /* the mode under test */

/* The reference of the mode: float32, or bf16 operands with float32 sums. */
static void ref_linear(float *out, const float *in, int ldi, const float *w, const float *b,
                       int M, int K, int N)
{
    if (!bf16) {
        ops_ref_linear(out, N, in, ldi, w, b, M, K, N);
        return;
    }
    uint16_t *w16 = malloc(sizeof(uint16_t) * (size_t)N * K);
    ops_bf16_from_f32(w16, w, (size_t)N * K);
    ops_ref_linear_bf16(out, N, in, ldi, w16, b, M, K, N);
    free(w16);
}

/* Column tiles of 192 and a remainder of 19, three images, every epilogue. */
static void test_linear(struct team *team, unsigned *seed)
{
    const int samples = 3, rows = 37, M = samples * rows, K = 53, N = 211, ldi = 60, gs = 2 * N;
    char err[DITD_ERR_LEN];
    struct dnn_model *d = NULL;
    struct dnn_ctx *x = NULL;
    float *in = randv((size_t)M * ldi, seed, 1), *w = randv((size_t)N * K, seed, 1);
    float *b = randv(N, seed, 1), *gate = randv((size_t)samples * gs, seed, 1);
    float *x0 = randv((size_t)M * N, seed, 1), *out = malloc(sizeof(float) * M * N);
    float *ref = malloc(sizeof(float) * M * N), *want = malloc(sizeof(float) * M * N);
    struct linear l = { .w = w, .b = b, .in = K, .out = N };

    CHECK(dnn_model_new(&d, bf16 ? DNN_BF16 : DNN_F32, err, sizeof(err)) == 0);
    CHECK(dnn_pack_linear(d, &l, rows, err, sizeof(err)) == 0);
    CHECK(dnn_ctx_new(&x, d, samples, rows, team_size(team)) == 0);
    l.w = NULL; /* the product must read the packed weights only */
    const struct ops_ctx c = { .team = team, .dnn = x };

    ref_linear(ref, in, ldi, w, b, M, K, N);
    ops_linear_tokens(&c, out, N, in, ldi, &l, samples, rows);
    CHECK(rel_err(out, ref, (size_t)M * N) < 1e-5);
    float *one = malloc(sizeof(float) * rows * N);
    ops_linear_tokens(&c, one, N, in + (size_t)2 * rows * ldi, ldi, &l, 1, rows);
    CHECK(memcmp(one, out + (size_t)2 * rows * N, sizeof(float) * rows * N) == 0);
    memcpy(want, ref, sizeof(float) * M * N);
    ops_ref_gelu_tanh(want, (long)M * N);
    ops_linear_tokens_gelu(&c, out, in, ldi, &l, samples, rows);
    CHECK(rel_err(out, want, (size_t)M * N) < 1e-5);
    for (int i = 0; i < M * N; i++)
        want[i] = x0[i] + gate[(size_t)(i / N / rows) * gs + i % N] * ref[i];
    memcpy(out, x0, sizeof(float) * M * N);
    ops_linear_tokens_residual(&c, out, NULL, in, ldi, &l, gate, gs, samples, rows);
    CHECK(rel_err(out, want, (size_t)M * N) < 1e-5);
    CHECK_EQ_INT(dnn_ctx_error(x), 0);
    dnn_ctx_free(x);
    dnn_model_free(d);
    free(in); free(w); free(b); free(gate); free(x0); free(out); free(ref); free(want); free(one);
}

/* Self-attention over a fused q|k|v buffer (150 queries: a full block of
 * 128 and one of 22) and attention over 2 keys held elsewhere. */
static void test_attention(struct team *team, unsigned *seed)
{
    const int samples = 2, T = 150, heads = 3, hd = 12, D = heads * hd, ld = 3 * D;
    char err[DITD_ERR_LEN];
    struct dnn_model *d = NULL;
    struct dnn_ctx *x = NULL;
    float *qkv = randv((size_t)samples * T * ld, seed, 2), *kv = randv((size_t)samples * 2 * 2 * D, seed, 2);
    float *a = calloc((size_t)samples * T * D, sizeof(float)), *r = calloc((size_t)samples * T * D, 4);
    float *scratch = malloc(sizeof(float) * team_size(team) * ops_attention_scratch(T, T));

    CHECK(dnn_model_new(&d, bf16 ? DNN_BF16 : DNN_F32, err, sizeof(err)) == 0);
    CHECK(dnn_prepare_attention(d, T, T, hd, D, err, sizeof(err)) == 0);
    CHECK(dnn_prepare_attention(d, T, 2, hd, D, err, sizeof(err)) == 0);
    CHECK(dnn_ctx_new(&x, d, samples, T, team_size(team)) == 0);
    const struct ops_ctx c = { .team = team, .dnn = x };
    void (*ref)(float *, int, const float *, int, const float *, int, const float *, int, int,
                int, int, int, int) = bf16 ? ops_ref_attention_bf16 : ops_ref_attention;
    /* bf16: probabilities rounded on either side of a boundary keep it
     * from being exact (test_ops_bf16 has the same bound). */
    const double tol = bf16 ? 2e-4 : 1e-5;

    ops_attention(&c, a, D, qkv, ld, qkv + D, ld, qkv + 2 * D, ld, samples, T, T, heads, hd, scratch);
    ref(r, D, qkv, ld, qkv + D, ld, qkv + 2 * D, ld, samples, T, T, heads, hd);
    CHECK(rel_err(a, r, (size_t)samples * T * D) < tol);
    ops_attention(&c, a, D, qkv, ld, kv, 2 * D, kv + D, 2 * D, samples, T, 2, heads, hd, scratch);
    ref(r, D, qkv, ld, kv, 2 * D, kv + D, 2 * D, samples, T, 2, heads, hd);
    CHECK(rel_err(a, r, (size_t)samples * T * D) < tol);
    CHECK_EQ_INT(dnn_ctx_error(x), 0);
    dnn_ctx_free(x);
    dnn_model_free(d);
    free(qkv); free(kv); free(a); free(r); free(scratch);
}

/* A DiT with 64 tokens per image on the native path: close to the same
 * model on the portable path of its precision, and rows alone, batched,
 * on 1 or 3 threads give the same bits. */
static void test_forward(void)
{
    struct dit_config c = {
        .in_channels = 4, .out_channels = 8, .input_size = 16, .patch = 2, .hidden = 96,
        .depth = 2, .heads = 3, .num_classes = 10, .block = DITD_BLOCK_ADALN_ZERO,
        .t_divisor = 128.0f, .mlp_norm_eps = 1e-6f, .bf16 = bf16,
    };
    char err[DITD_ERR_LEN];
    enum { ROWS = 5 };
    struct dit_weights w = { 0 }, wn, wp;
    struct dnn_model *d = NULL;
    CHECK(dit_config_finish(&c, err, sizeof(err)) == 0);
    CHECK_EQ_INT(c.transposed, 0);
    float *mem = dit_weights_random(&c, &w, 5);
    void *portable = bf16 ? dit_weights_bf16(&c, NULL, &w, &wp) : NULL;
    struct dit_config cn = c;
    CHECK(dnn_model_new(&d, bf16 ? DNN_BF16 : DNN_F32, err, sizeof(err)) == 0);
    CHECK(dit_dnn_prepare(&c, d, err, sizeof(err)) == 0);
    cn.dnn = d;
    void *native = dit_weights_bf16(&cn, d, &w, &wn);
    CHECK(native != NULL);
    const size_t in = (size_t)4 * 16 * 16, outn = (size_t)8 * 16 * 16;
    float *x = malloc(sizeof(float) * in * ROWS), *all = malloc(sizeof(float) * outn * ROWS);
    float *one = malloc(sizeof(float) * outn * ROWS);
    int t[ROWS] = { 999, 17, 500, 0, 250 }, y[ROWS] = { 3, 10, 7, 0, 9 };
    rng_normal(x, (int64_t)in * ROWS, 9, 0, 0);

    forward(&cn, &wn, 1, x, t, y, ROWS, all);
    forward(&c, bf16 ? &wp : &w, 2, x, t, y, ROWS, one);
    /* bf16: the two paths add the same exact products in other orders. */
    const double e = rel_l2(all, one, outn * ROWS);
    if (!(e < (bf16 ? 2e-3 : 1e-5)))
        fprintf(stderr, "native vs portable: relative L2 %g\n", e);
    CHECK(e < (bf16 ? 2e-3 : 1e-5));
    for (int r = 0; r < ROWS; r += 2) {
        forward(&cn, &wn, 1, x + r * in, t + r, y + r, 1, one);
        CHECK(memcmp(one, all + r * outn, sizeof(float) * outn) == 0);
    }
    forward(&cn, &wn, 3, x, t, y, ROWS, one);
    CHECK(memcmp(one, all, sizeof(float) * outn * ROWS) == 0);

    dit_weights_free(native, &wn);
    if (portable)
        dit_weights_free(portable, &wp);
    dnn_model_free(d);
    dit_weights_free(mem, &w);
    free(x); free(all); free(one);
}

int main(int argc, char **argv)
{
    unsigned seed = 777;
    bf16 = argc > 1 && strcmp(argv[1], "bf16") == 0;
    if (!onednn_version()) {
        printf("SKIP: this build has no oneDNN (meson option onednn)\n");
        return 77;
    }
    if (bf16 && !(isa_has_bf16(isa_level()) && onednn_native_bf16())) {
        printf("SKIP: the native bf16 path needs AVX512-BF16 or AMX; this CPU: %s, oneDNN's ISA: "
               "%s (test_dnn f32 ran the same code in float32)\n", isa_name(isa_level()),
               onednn_isa());
        return 77;
    }
    blas_set_threads(1);
    for (int threads = 1; threads <= 3; threads += 2) {
        struct team *team;
        CHECK(team_new(&team, threads) == 0);
        test_linear(team, &seed);
        test_attention(team, &seed);
        team_free(team);
    }
    test_forward();
    return test_status();
}
