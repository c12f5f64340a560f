/*
 * test_dit.c - a DiT row's output does not depend on what shares its batch
 * or on the thread count: the property that lets the daemon batch requests
 * and still give each the bytes it would get alone. In float32 and in bf16
 * (the portable path), whose output must also stay close to float32's.
 */
#include <stdlib.h>

#include "unit.h"
#include "ops.h"
#include "rng.h"
#include "team.h"

/* Rows alone, batched in any composition, on 1, 2 or 3 threads: same bits. */
static void check_invariance(int latent, int expect_transposed, int bf16)
{
    struct dit_config c = {
        .in_channels = 4, .out_channels = 8, .input_size = latent, .patch = 2, .hidden = 96,
        .depth = 3, .heads = 3, .num_classes = 10, .block = DITD_BLOCK_ADALN_ZERO,
        .t_divisor = 128.0f, .mlp_norm_eps = 1e-6f,
    };
    char err[DITD_ERR_LEN];
    struct dit_weights w = { 0 };
    enum { ROWS = 7 };
    CHECK(dit_config_finish(&c, err, sizeof(err)) == 0);
    CHECK_EQ_INT(c.transposed, expect_transposed);
    float *mem = dit_weights_random(&c, &w, 99);
    struct dit_weights w32 = w;
    void *mem16 = NULL;
    if (bf16) {
        c.bf16 = 1;
        mem16 = dit_weights_bf16(&c, NULL, &w32, &w);
        CHECK(mem16 != NULL);
    }
    const size_t in = (size_t)4 * latent * latent, outn = (size_t)8 * latent * latent;
    float *x = malloc(sizeof(float) * in * ROWS), *all = malloc(sizeof(float) * outn * ROWS);
    float *one = malloc(sizeof(float) * outn * ROWS);
    int t[ROWS] = { 999, 17, 500, 0, 250, 999, 3 }, y[ROWS] = { 3, 10, 7, 0, 9, 10, 1 };
    rng_normal(x, (int64_t)in * ROWS, 5, 0, 0);

    forward(&c, &w, 1, x, t, y, ROWS, all);
    for (int r = 0; r < ROWS; r++) {
        forward(&c, &w, 1, x + r * in, t + r, y + r, 1, one);
        CHECK(memcmp(one, all + r * outn, sizeof(float) * outn) == 0);
    }
    forward(&c, &w, 3, x, t, y, ROWS, one);
    CHECK(memcmp(one, all, sizeof(float) * outn * ROWS) == 0);
    forward(&c, &w, 2, x + 2 * in, t + 2, y + 2, 3, one);
    CHECK(memcmp(one, all + 2 * outn, sizeof(float) * outn * 3) == 0);
    if (bf16) {
        /* Close to float32, and not float32. */
        c.bf16 = 0;
        forward(&c, &w32, 2, x, t, y, ROWS, one);
        const double e = rel_l2(all, one, outn * ROWS);
        if (getenv("VERBOSE") || !(e > 1e-5 && e < 1e-2))
            fprintf(stderr, "bf16 vs float32: relative L2 error %g\n", e);
        CHECK(e > 1e-5 && e < 1e-2);
        dit_weights_free(mem16, &w);
    }

    dit_weights_free(mem, &w32);
    free(x);
    free(all);
    free(one);
}

int main(void)
{
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        check_invariance(16, 0, bf16); /* 64 tokens: BLAS tiles per image */
        check_invariance(8, 1, bf16);  /* 16 tokens: the transposed-weight kernel */
    }
    return test_status();
}
