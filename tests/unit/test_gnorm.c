/*
 * test_gnorm.c - GroupNorm folded into a per-channel affine (gnorm.c)
 * against the naive reference ops_ref_groupnorm, with and without SiLU,
 * over maps of one and of several statistics chunks, with large means
 * (the variance is E[x^2] - mean^2 in double, and the mean is subtracted
 * before scaling); and the same bytes whatever
 * the thread count.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "../test.h"
#include "gnorm.h"
#include "ops.h"
#include "team.h"

static float urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static void run(long HW, int C, int groups, float offset, int silu)
{
    uint64_t s = (uint64_t)HW * 7 + (uint64_t)C;
    const size_t n = (size_t)HW * C;
    float *x = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n), *out[3];
    float *gamma = malloc(sizeof(float) * C), *beta = malloc(sizeof(float) * C);
    float *scale = malloc(sizeof(float) * C), *shift = malloc(sizeof(float) * C);
    float *center = malloc(sizeof(float) * C);
    double *partial = malloc(sizeof(double) * gnorm_partial_doubles(HW, C));
    double worst = 0.0;

    for (size_t i = 0; i < n; i++)
        x[i] = offset + 3.0f * urand(&s) * (1.0f + (float)(i % C) / C);
    for (int c = 0; c < C; c++) {
        gamma[c] = 1.0f + 0.3f * urand(&s);
        beta[c] = 0.2f * urand(&s);
    }
    ops_ref_groupnorm(ref, x, gamma, beta, HW, C, groups, 1e-6f, silu);
    for (int threads = 1; threads <= 3; threads++) {
        struct team *t;
        CHECK(team_new(&t, threads) == 0);
        struct ops_ctx c = { .team = t };
        out[threads - 1] = malloc(sizeof(float) * n);
        gnorm_fold(&c, center, scale, shift, x, gamma, beta, HW, C, groups, 1e-6f, partial);
        gnorm_apply(&c, out[threads - 1], x, center, scale, shift, HW, C, silu);
        team_free(t);
    }
    CHECK(memcmp(out[0], out[1], sizeof(float) * n) == 0);
    CHECK(memcmp(out[0], out[2], sizeof(float) * n) == 0);
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(out[0][i] - ref[i]));
    printf("groupnorm%s %ld x %d, %d groups, mean %g: max error %.3g\n", silu ? "+silu" : "", HW,
           C, groups, offset, worst);
    CHECK(worst < 2e-5);
    free(x), free(ref), free(gamma), free(beta), free(scale), free(shift), free(center);
    free(partial);
    for (int i = 0; i < 3; i++)
        free(out[i]);
}

int main(void)
{
    run(81, 24, 6, 0.0f, 0);
    run(81, 24, 6, 0.0f, 1);
    run(3000, 32, 8, 0.0f, 1);      /* three chunks of statistics, the last one short */
    run(2500, 20, 4, 100.0f, 0);    /* mean far from zero */
    run(5, 64, 32, -3.0f, 1);       /* two channels per group */
    return test_status();
}
