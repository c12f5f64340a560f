/*
 * unit.h - helpers the engine's unit tests share: random vectors, error
 * measures, one DiT forward on a fresh team.
 */
#ifndef DITD_TEST_UNIT_H
#define DITD_TEST_UNIT_H

#include <stdlib.h>

#include "../test.h"
#include "blas.h"
#include "dit.h"
#include "team.h"

/* n values uniform in [-scale, scale]. */
static inline float *randv(size_t n, unsigned *seed, float scale)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        v[i] = scale * ((float)rand_r(seed) / (float)RAND_MAX * 2.0f - 1.0f);
    return v;
}

/* max |a - b| / max(1, max |b|) */
static inline double rel_err(const float *a, const float *b, size_t n)
{
    double worst = 0, ref = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        worst = d > worst ? d : worst;
        ref = fabs(b[i]) > ref ? fabs(b[i]) : ref;
    }
    return worst / ref;
}

/* ||a - b|| / ||b|| */
static inline double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

/* out = the forward of n rows on a new team of `threads` and a new state. */
static inline void forward(const struct dit_config *c, const struct dit_weights *w, int threads,
                           const float *x, const int *t, const int *y, int n, float *out)
{
    struct team *team;
    struct dit_state s;
    CHECK(team_new(&team, threads) == 0);
    CHECK(dit_state_init(&s, c, n, threads) == 0);
    struct ops_ctx ops = { .team = team };
    blas_set_threads(1);
    dit_forward(c, w, &s, &ops, x, t, y, n, out);
    CHECK_EQ_INT(dit_state_error(&s), 0);
    dit_state_free(&s);
    team_free(team);
}

#endif /* DITD_TEST_UNIT_H */
