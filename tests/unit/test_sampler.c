/*
 * test_sampler.c - the samplers on an analytic denoiser. When the data is a
 * single point x*, the exact epsilon of x_t is (x_t - sqrt(ab) x*) /
 * sqrt(1 - ab); with it every sampler must land on x* from any noise.
 */
#include <stdlib.h>

#include "../test.h"
#include "rng.h"
#include "sampler.h"

enum { N = 64 };

static void exact_eps(float *eps, const float *x, const float *target, double ab)
{
    for (int i = 0; i < N; i++)
        eps[i] = (float)((x[i] - sqrt(ab) * target[i]) / sqrt(1.0 - ab));
}

static void run(enum ditd_sampler kind, float eta, int steps, bool ddim)
{
    struct schedule sc;
    char err[DITD_ERR_LEN];
    float x[N], x0[N], x0p[N], eps[N], noise[N], target[N];
    CHECK(schedule_init(&sc, steps, ddim, err, sizeof(err)) == 0);
    rng_normal(x, N, 7, 0, 0);
    for (int i = 0; i < N; i++)
        target[i] = (float)(i % 5) * 0.25f - 0.5f;
    struct sampler s = { .kind = kind, .eta = eta, .sched = &sc, .n = N, .j = steps - 1,
                         .x = x, .x0 = x0, .x0_prev = x0p };
    int evaluations = 0;
    while (s.j >= 0) {
        exact_eps(eps, s.x, target, sc.alphas_cumprod[s.j]);
        if (sampler_needs_noise(&s))
            rng_normal(noise, N, 7, (uint32_t)s.j + 1, 0);
        sampler_update(&s, eps, NULL, noise);
        evaluations++;
    }
    CHECK_EQ_INT(evaluations, steps);
    double worst = 0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(s.x[i] - target[i]));
    if (worst > 1e-3)
        fprintf(stderr, "%s eta %g, %d steps: off by %g\n", ditd_sampler_name(kind), eta, steps, worst);
    CHECK(worst <= 1e-3);
    schedule_free(&sc);
}

int main(void)
{
    const int counts[] = { 1, 2, 10, 25, 250 };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        run(DITD_SAMPLER_DDPM, 0, counts[i], false);
        run(DITD_SAMPLER_DDIM, 0, counts[i], false);
        run(DITD_SAMPLER_DDIM, 1, counts[i], false);
        run(DITD_SAMPLER_DPMPP_2M, 0, counts[i], false);
    }
    run(DITD_SAMPLER_DDIM, 0, 50, true);
    return test_status();
}
