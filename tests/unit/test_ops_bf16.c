/*
 * test_ops_bf16.c - the portable bf16 products (ops_bf16.c and the bf16
 * panels of ops_linear.c) against the plain C bf16 reference (ops_ref.c),
 * with a team of 1 and of 3 threads: conversion rounding, the sgemm tiles,
 * the panel kernel (bit for bit: it adds in the reference's order), the
 * dot products, the attention with rounded operands, and that a row's
 * bits do not depend on its neighbours.
 */
#include <stdlib.h>

#include "bf16.h"
#include "unit.h"
#include "ops.h"
#include "team.h"

static uint16_t *to_bf16(const float *w, size_t n)
{
    uint16_t *h = malloc(sizeof(uint16_t) * (n ? n : 1));
    ops_bf16_from_f32(h, w, n);
    return h;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* Round to nearest, ties to even, on the bit patterns that decide it. */
static void test_convert(void)
{
    CHECK_EQ_INT(bf16_from_f32(1.0f), 0x3f80);
    CHECK_EQ_INT(bf16_from_f32(from_bits(0x3f808000u)), 0x3f80); /* tie, even below */
    CHECK_EQ_INT(bf16_from_f32(from_bits(0x3f818000u)), 0x3f82); /* tie, odd: up */
    CHECK_EQ_INT(bf16_from_f32(from_bits(0x3f808001u)), 0x3f81); /* just above the tie */
    CHECK_EQ_INT(bf16_from_f32(from_bits(0x3f807fffu)), 0x3f80);
    CHECK_EQ_INT(bf16_from_f32(-2.0f), 0xc000);
    CHECK_EQ_INT(bf16_from_f32(from_bits(0x7f7fffffu)), 0x7f80); /* FLT_MAX rounds to inf */
    CHECK(isnan(bf16_to_f32(bf16_from_f32(from_bits(0x7f800001u))))); /* NaN stays NaN */
    CHECK(isnan(bf16_to_f32(bf16_from_f32(from_bits(0xffffffffu)))));
    CHECK_EQ_INT(bf16_to_f32(0x4049), 3.140625);
    const float v[5] = { 1.0f, from_bits(0x3f818000u), -0.0f, 3e38f, 1e-30f };
    uint16_t h[5];
    ops_bf16_from_f32(h, v, 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(h[i], bf16_from_f32(v[i]));
}

/* Token rows through bf16 (out, in) weights: sgemm tiles on staged
 * operands. K above the 512-feature chunk and M above one 256-row tile. */
static void test_tiles(const struct ops_ctx *c, unsigned *seed)
{
    const int samples = 2, rows = 300, M = samples * rows, K = 700, N = 211, ldo = N + 3;
    const int ldi = K + 4;
    float *in = randv((size_t)M * ldi, seed, 1), *w = randv((size_t)N * K, seed, 1);
    float *b = randv(N, seed, 1), *out = calloc((size_t)M * ldo, sizeof(float));
    float *ref = calloc((size_t)M * ldo, sizeof(float)), *one = calloc((size_t)rows * ldo, 4);
    uint16_t *w16 = to_bf16(w, (size_t)N * K);
    const struct linear l = { .w16 = w16, .b = b, .in = K, .out = N };

    ops_linear_tokens(c, out, ldo, in, ldi, &l, samples, rows);
    ops_ref_linear_bf16(ref, ldo, in, ldi, w16, b, M, K, N);
    CHECK(rel_err(out, ref, (size_t)M * ldo) < 1e-5);
    /* The second image alone: the same bits as in the pair. */
    ops_linear_tokens(c, one, ldo, in + (size_t)rows * ldi, ldi, &l, 1, rows);
    CHECK(memcmp(one, out + (size_t)rows * ldo, sizeof(float) * (size_t)rows * ldo) == 0);
    /* And the product really is bf16: float32 weights give another answer. */
    ops_ref_linear(ref, ldo, in, ldi, w, b, M, K, N);
    CHECK(rel_err(out, ref, (size_t)M * ldo) > 1e-4);
    free(in); free(w); free(b); free(out); free(ref); free(one); free(w16);
}

/* bf16 panels: the same bits as the reference, with every epilogue. */
static void test_panels(const struct ops_ctx *c, unsigned *seed, int N)
{
    const int samples = 3, rows = 23, M = samples * rows, K = 90, ldi = K + 2, gs = 2 * N;
    float *in = randv((size_t)M * ldi, seed, 1), *w = randv((size_t)N * K, seed, 1);
    float *b = randv(N, seed, 1), *gate = randv((size_t)samples * gs, seed, 1);
    float *x0 = randv((size_t)M * N, seed, 1), *wt = malloc(sizeof(float) * N * K);
    float *out = malloc(sizeof(float) * M * N), *ref = malloc(sizeof(float) * M * N);
    float *want = malloc(sizeof(float) * M * N);
    uint16_t *w16 = to_bf16(w, (size_t)N * K), *wt16 = malloc(sizeof(uint16_t) * N * K);
    ops_linear_t_pack(wt, w, K, N);
    ops_bf16_from_f32(wt16, wt, (size_t)N * K);
    const struct linear l = { .w16 = wt16, .b = b, .in = K, .out = N, .transposed = 1 };

    ops_ref_linear_bf16(ref, N, in, ldi, w16, b, M, K, N);
    ops_linear_tokens(c, out, N, in, ldi, &l, samples, rows);
    CHECK(memcmp(out, ref, sizeof(float) * M * N) == 0);
    for (int r = 0; r < M; r += 7) { /* rows alone */
        float *row = randv((size_t)K, seed, 1);
        memcpy(row, in + (size_t)r * ldi, sizeof(float) * K);
        ops_linear_small(c, out, row, &l, 1);
        CHECK(memcmp(out, ref + (size_t)r * N, sizeof(float) * N) == 0);
        free(row);
    }
    memcpy(want, ref, sizeof(float) * M * N);
    ops_ref_gelu_tanh(want, (long)M * N);
    ops_linear_tokens_gelu(c, out, in, ldi, &l, samples, rows);
    CHECK(rel_err(out, want, (size_t)M * N) < 1e-5);
    for (int i = 0; i < M * N; i++)
        want[i] = x0[i] + gate[(size_t)(i / N / rows) * gs + i % N] * ref[i];
    memcpy(out, x0, sizeof(float) * M * N);
    ops_linear_tokens_residual(c, out, NULL, in, ldi, &l, gate, gs, samples, rows);
    CHECK(rel_err(out, want, (size_t)M * N) < 1e-6);
    free(in); free(w); free(b); free(gate); free(x0); free(wt); free(out); free(ref);
    free(want); free(w16); free(wt16);
}

/* Conditioning rows through bf16 (out, in) weights: dot products. */
static void test_small(const struct ops_ctx *c, unsigned *seed)
{
    const int M = 5, K = 300, N = 390; /* N * K above the single-task threshold */
    float *in = randv((size_t)M * K, seed, 1), *w = randv((size_t)N * K, seed, 1);
    float *b = randv(N, seed, 1), *out = malloc(sizeof(float) * M * N);
    float *ref = malloc(sizeof(float) * M * N), *one = malloc(sizeof(float) * N);
    uint16_t *w16 = to_bf16(w, (size_t)N * K);
    const struct linear l = { .w16 = w16, .b = b, .in = K, .out = N };
    ops_linear_small(c, out, in, &l, M);
    ops_ref_linear_bf16(ref, N, in, K, w16, b, M, K, N);
    CHECK(rel_err(out, ref, (size_t)M * N) < 1e-5);
    ops_linear_small(c, one, in + 3 * K, &l, 1);
    CHECK(memcmp(one, out + 3 * N, sizeof(float) * N) == 0);
    free(in); free(w); free(b); free(out); free(ref); free(one); free(w16);
}

/* Attention with bf16 operands: closer to the bf16 reference than to the
 * float32 one by a wide margin (rounded probabilities that land on the
 * other side of a rounding boundary keep it from being exact). */
static void test_attention(const struct ops_ctx *c, unsigned *seed)
{
    const int samples = 2, T = 150, Tk = 61, heads = 3, hd = 12, D = heads * hd;
    const int ld = 3 * D + 5;
    float *q = randv((size_t)samples * T * ld, seed, 2), *kv = randv((size_t)samples * Tk * ld, seed, 2);
    float *a = calloc((size_t)samples * T * D, sizeof(float)), *r = calloc((size_t)samples * T * D, 4);
    float *r32 = calloc((size_t)samples * T * D, sizeof(float));
    float *scratch = malloc(sizeof(float) * 3 * ops_attention_scratch(T, Tk));
    ops_attention(c, a, D, q, ld, kv, ld, kv + D, ld, samples, T, Tk, heads, hd, scratch);
    ops_ref_attention_bf16(r, D, q, ld, kv, ld, kv + D, ld, samples, T, Tk, heads, hd);
    ops_ref_attention(r32, D, q, ld, kv, ld, kv + D, ld, samples, T, Tk, heads, hd);
    const size_t n = (size_t)samples * T * D;
    const double to_bf16 = rel_err(a, r, n), to_f32 = rel_err(a, r32, n);
    if (!(to_bf16 < 2e-4 && to_f32 > 10 * to_bf16))
        fprintf(stderr, "attention: error %g to the bf16 reference, %g to float32\n", to_bf16, to_f32);
    CHECK(to_bf16 < 2e-4);
    CHECK(to_f32 > 10 * to_bf16);
    free(q); free(kv); free(a); free(r); free(r32); free(scratch);
}

int main(void)
{
    unsigned seed = 4321;
    test_convert();
    for (int threads = 1; threads <= 3; threads += 2) {
        struct team *team;
        const size_t per = ops_bf16_stage_floats(90, 5, 300, 150, 61, 12);
        float *stage = malloc(sizeof(float) * per * threads);
        CHECK(team_new(&team, threads) == 0);
        struct ops_ctx c = { .team = team, .bf16 = 1, .stage = stage, .stage_floats = per };
        blas_set_threads(1);
        test_tiles(&c, &seed);
        test_panels(&c, &seed, 48);
        test_panels(&c, &seed, 80);
        test_panels(&c, &seed, 64);
        test_small(&c, &seed);
        test_attention(&c, &seed);
        team_free(team);
        free(stage);
    }
    return test_status();
}
