/*
 * test_ops.c - every fast layer op against its naive reference (ops_ref.c),
 * on odd sizes, with a team of 1 and of 3 threads.
 */
#include <stdlib.h>

#include "../test.h"
#include "blas.h"
#include "ops.h"
#include "team.h"

static float *randv(size_t n, unsigned *seed, float scale)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        v[i] = scale * ((float)rand_r(seed) / (float)RAND_MAX * 2.0f - 1.0f);
    return v;
}

/* max |a - b| <= tol * max(1, max |b|) */
static int near_ref(const float *a, const float *b, size_t n, double tol, const char *what)
{
    double worst = 0, ref = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        worst = d > worst ? d : worst;
        ref = fabs(b[i]) > ref ? fabs(b[i]) : ref;
    }
    if (!(worst <= tol * ref)) {
        fprintf(stderr, "%s: max abs error %g (max |ref| %g)\n", what, worst, ref);
        return 0;
    }
    return 1;
}

static void test_linear(const struct ops_ctx *c, unsigned *seed)
{
    const int M = 37, K = 53, N = 29, ldo = 31, ldi = 60;
    float *in = randv((size_t)M * ldi, seed, 1), *w = randv((size_t)N * K, seed, 1);
    float *b = randv(N, seed, 1), *out = randv((size_t)M * ldo, seed, 1);
    float *ref = malloc(sizeof(float) * M * ldo);
    memcpy(ref, out, sizeof(float) * M * ldo); /* columns past N must stay untouched */
    ops_linear(c, out, ldo, in, ldi, w, b, M, K, N);
    ops_ref_linear(ref, ldo, in, ldi, w, b, M, K, N);
    CHECK(near_ref(out, ref, (size_t)M * ldo, 1e-5, "linear"));
    ops_linear(c, out, ldo, in, ldi, w, NULL, M, K, N);
    ops_ref_linear(ref, ldo, in, ldi, w, NULL, M, K, N);
    CHECK(near_ref(out, ref, (size_t)M * ldo, 1e-5, "linear without bias"));
    free(in); free(w); free(b); free(out); free(ref);
}

/* The transposed-weight kernel in both forms of its block (whole, as on
 * AVX-512; in pieces, as on AVX2): against the reference, the same bits for
 * a row wherever it sits among how many rows, and the same bits from both
 * forms. N = 48 is one full panel; 80 and 64 end on a 32- and a 16-wide one. */
static void test_linear_t(const struct ops_ctx *c, unsigned *seed, int N)
{
    const int M = 37, K = 53, ldo = N + 2, ldi = 60;
    float *in = randv((size_t)M * ldi, seed, 1), *w = randv((size_t)N * K, seed, 1);
    float *b = randv(N, seed, 1), *wt = malloc(sizeof(float) * N * K);
    float *out = calloc((size_t)M * ldo, sizeof(float)), *ref = calloc((size_t)M * ldo, sizeof(float));
    float *whole = calloc((size_t)M * ldo, sizeof(float));
    float *one = calloc((size_t)ldo, sizeof(float));
    ops_linear_t_pack(wt, w, K, N);
    ops_ref_linear(ref, ldo, in, ldi, w, b, M, K, N);
    for (int form = OPS_LT_WHOLE; form <= OPS_LT_PIECES; form++) {
        struct ops_ctx cf = *c;
        cf.lt_form = (enum ops_lt_form)form;
        ops_linear_t(&cf, out, ldo, in, ldi, wt, b, M, K, N);
        CHECK(near_ref(out, ref, (size_t)M * ldo, 1e-5, form == OPS_LT_WHOLE ? "linear_t whole"
                                                                            : "linear_t pieces"));
        int moved = 0;
        for (int r = 0; r < M; r++) {
            ops_linear_t(&cf, one, ldo, in + (size_t)r * ldi, ldi, wt, b, 1, K, N);
            moved += memcmp(one, out + (size_t)r * ldo, sizeof(float) * N) != 0;
        }
        CHECK_EQ_INT(moved, 0);
        if (form == OPS_LT_WHOLE)
            memcpy(whole, out, sizeof(float) * M * ldo);
    }
    CHECK(memcmp(whole, out, sizeof(float) * M * ldo) == 0);
    free(in); free(w); free(b); free(wt); free(out); free(ref); free(whole); free(one);
}

/* The fused token layers (GELU after the product; the product added into a
 * residual stream through a per-sample gate), with the weights as PyTorch
 * stores them (separate passes) and packed (the epilogue of the kernel). */
static void test_linear_fused(const struct ops_ctx *c, unsigned *seed)
{
    const int samples = 3, rows = 5, M = samples * rows, K = 40, N = 64, ldi = 44;
    const int gs = 2 * N; /* gate stride, as in the interleaved adaLN vectors */
    float *in = randv((size_t)M * ldi, seed, 1), *w = randv((size_t)N * K, seed, 1);
    float *b = randv(N, seed, 1), *gate = randv((size_t)samples * gs, seed, 1);
    float *x0 = randv((size_t)M * N, seed, 1), *wt = malloc(sizeof(float) * N * K);
    float *ref = malloc(sizeof(float) * M * N), *gelu = malloc(sizeof(float) * M * N);
    float *out = malloc(sizeof(float) * M * N), *tmp = malloc(sizeof(float) * M * N);
    float *added = malloc(sizeof(float) * M * N), *gated = malloc(sizeof(float) * M * N);
    ops_linear_t_pack(wt, w, K, N);
    ops_ref_linear(ref, N, in, ldi, w, b, M, K, N);
    memcpy(gelu, ref, sizeof(float) * M * N);
    ops_ref_gelu_tanh(gelu, (long)M * N);
    for (int i = 0; i < M * N; i++) {
        added[i] = x0[i] + ref[i];
        gated[i] = x0[i] + gate[(size_t)(i / N / rows) * gs + i % N] * ref[i];
    }
    const struct linear layers[2] = {
        { .w = w, .b = b, .in = K, .out = N },
        { .w = wt, .b = b, .in = K, .out = N, .transposed = 1 },
    };
    for (int t = 0; t < 2; t++) {
        const struct linear *l = &layers[t];
        ops_linear_tokens_gelu(c, out, in, ldi, l, samples, rows);
        CHECK(near_ref(out, gelu, (size_t)M * N, 1e-5, t ? "gelu epilogue" : "linear, gelu"));
        memcpy(out, x0, sizeof(float) * M * N);
        ops_linear_tokens_residual(c, out, tmp, in, ldi, l, NULL, 0, samples, rows);
        CHECK(near_ref(out, added, (size_t)M * N, 1e-5, t ? "residual epilogue" : "linear, add"));
        memcpy(out, x0, sizeof(float) * M * N);
        ops_linear_tokens_residual(c, out, tmp, in, ldi, l, gate, gs, samples, rows);
        CHECK(near_ref(out, gated, (size_t)M * N, 1e-5, t ? "gated epilogue" : "linear, gated add"));
    }
    free(in); free(w); free(b); free(gate); free(x0); free(wt); free(ref); free(gelu);
    free(out); free(tmp); free(added); free(gated);
}

static void test_activations(const struct ops_ctx *c, unsigned *seed)
{
    const long n = 100003; /* above the threshold that wakes the team */
    float *x = randv(n, seed, 12), *a = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n);
    x[0] = -100.0f; /* exp clamping at the far ends */
    x[1] = 100.0f;
    x[2] = 0.0f;
    ops_silu(c, a, x, n);
    ops_ref_silu(r, x, n);
    CHECK(near_ref(a, r, n, 1e-6, "silu"));
    memcpy(a, x, sizeof(float) * n);
    memcpy(r, x, sizeof(float) * n);
    ops_gelu_tanh(c, a, n);
    ops_ref_gelu_tanh(r, n);
    CHECK(near_ref(a, r, n, 1e-6, "gelu"));
    free(x); free(a); free(r);
}

static void test_layernorm(const struct ops_ctx *c, unsigned *seed)
{
    const int samples = 3, tokens = 41, D = 83, stride = 6 * D;
    const size_t n = (size_t)samples * tokens * D;
    float *x = randv(n, seed, 3), *mod = randv((size_t)samples * stride, seed, 1);
    float *a = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        x[i] += 5.0f; /* a large mean tests the two-pass variance */
    ops_layernorm_modulate(c, a, x, mod, mod + D, stride, samples, tokens, D, 1e-6f);
    ops_ref_layernorm_modulate(r, x, mod, mod + D, stride, samples, tokens, D, 1e-6f);
    CHECK(near_ref(a, r, n, 1e-5, "layernorm + modulate"));
    ops_layernorm_modulate(c, a, x, NULL, NULL, 0, samples, tokens, D, 1e-5f);
    ops_ref_layernorm_modulate(r, x, NULL, NULL, 0, samples, tokens, D, 1e-5f);
    CHECK(near_ref(a, r, n, 1e-5, "layernorm"));
    free(x); free(mod); free(a); free(r);
}

static void test_attention(const struct ops_ctx *c, unsigned *seed)
{
    const int samples = 2, T = 37, Tk = 19, heads = 3, hd = 7, D = heads * hd;
    const int ld = 3 * D + 5; /* strided rows, as with a fused q|k|v buffer */
    float *q = randv((size_t)samples * T * ld, seed, 2), *kv = randv((size_t)samples * Tk * ld, seed, 2);
    float *a = calloc((size_t)samples * T * D, sizeof(float)), *r = calloc((size_t)samples * T * D, sizeof(float));
    float *scratch = malloc(sizeof(float) * 3 * ops_attention_scratch(T, Tk));
    ops_attention(c, a, D, q, ld, kv, ld, kv + D, ld, samples, T, Tk, heads, hd, scratch);
    ops_ref_attention(r, D, q, ld, kv, ld, kv + D, ld, samples, T, Tk, heads, hd);
    CHECK(near_ref(a, r, (size_t)samples * T * D, 1e-5, "attention"));
    free(q); free(kv); free(a); free(r); free(scratch);
}

int main(void)
{
    unsigned seed = 1234;
    for (int threads = 1; threads <= 3; threads += 2) {
        struct team *team;
        CHECK(team_new(&team, threads) == 0);
        struct ops_ctx c = { .team = team };
        blas_set_threads(1);
        test_linear(&c, &seed);
        test_linear_t(&c, &seed, 48);
        test_linear_t(&c, &seed, 80);
        test_linear_t(&c, &seed, 64);
        for (int form = OPS_LT_WHOLE; form <= OPS_LT_PIECES; form++) {
            struct ops_ctx cf = c;
            cf.lt_form = (enum ops_lt_form)form;
            test_linear_fused(&cf, &seed);
        }
        test_activations(&c, &seed);
        test_layernorm(&c, &seed);
        test_attention(&c, &seed);
        team_free(team);
    }
    return test_status();
}
