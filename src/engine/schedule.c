/*
 * schedule.c - betas, respacing and the posterior tables of the DiT
 * reference (its diffusion/gaussian_diffusion.py and respace.py), in the
 * same float64 operations and order so the tables agree to the last bit.
 */
#include "schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ditd.h"

/* Which of the 1000 training steps a K-step run visits, in increasing order. */
static int kept_steps(int *kept, int steps, bool ddim)
{
    const int total = SCHEDULE_TRAIN_STEPS;

    if (ddim) {
        /* The first integer stride whose range has exactly K entries. */
        for (int stride = 1; stride < total; stride++) {
            if ((total + stride - 1) / stride == steps) {
                for (int i = 0; i < steps; i++)
                    kept[i] = i * stride;
                return 0;
            }
        }
        return DITD_EINVAL;
    }
    double frac_stride = steps <= 1 ? 1.0 : (double)(total - 1) / (double)(steps - 1);
    double cur = 0.0;
    for (int i = 0; i < steps; i++) {
        /* nearbyint rounds half to even, like Python's round(). */
        kept[i] = (int)nearbyint(cur);
        cur += frac_stride;
    }
    return 0;
}

int schedule_init(struct schedule *s, int steps, bool ddim, char *err, size_t errlen)
{
    const int total = SCHEDULE_TRAIN_STEPS;
    double base_ac[SCHEDULE_TRAIN_STEPS];
    int kept[SCHEDULE_TRAIN_STEPS];

    s->mem = NULL;
    s->timestep = NULL;
    if (steps < 1 || steps > total) {
        snprintf(err, errlen, "steps must be between 1 and %d, got %d", total, steps);
        return DITD_EINVAL;
    }
    if (kept_steps(kept, steps, ddim) < 0) {
        snprintf(err, errlen,
                 "no integer stride gives exactly %d steps with ddim spacing; "
                 "use the default uniform spacing or another step count", steps);
        return DITD_EINVAL;
    }

    /* np.linspace(1e-4, 0.02, 1000): i*step + start, last entry exact. */
    const double start = 0.0001, end = 0.02;
    const double step = (end - start) / (double)(total - 1);
    double ac = 1.0;
    for (int i = 0; i < total; i++) {
        double beta = i == total - 1 ? end : (double)i * step + start;
        ac *= 1.0 - beta;
        base_ac[i] = ac;
    }

    s->steps = steps;
    s->mem = malloc(sizeof(double) * 11 * (size_t)steps);
    s->timestep = malloc(sizeof(int) * (size_t)steps);
    if (!s->mem || !s->timestep) {
        schedule_free(s);
        snprintf(err, errlen, "out of memory building a %d-step schedule", steps);
        return DITD_ENOMEM;
    }
    double *p = s->mem;
    s->beta = p;                 p += steps;
    s->alphas_cumprod = p;       p += steps;
    s->alphas_cumprod_prev = p;  p += steps;
    s->sqrt_recip_ac = p;        p += steps;
    s->sqrt_recipm1_ac = p;      p += steps;
    s->posterior_variance = p;   p += steps;
    s->posterior_log_var = p;    p += steps;
    s->posterior_mean_coef1 = p; p += steps;
    s->posterior_mean_coef2 = p; p += steps;
    s->log_beta = p;             p += steps;

    /* Respaced betas come from ratios of the kept alphas_cumprod. */
    double last = 1.0;
    for (int j = 0; j < steps; j++) {
        s->timestep[j] = kept[j];
        s->beta[j] = 1.0 - base_ac[kept[j]] / last;
        last = base_ac[kept[j]];
    }

    /* The reference rebuilds its tables from the new betas. */
    ac = 1.0;
    for (int j = 0; j < steps; j++) {
        double beta = s->beta[j];
        double prev = ac;
        ac *= 1.0 - beta;
        s->alphas_cumprod[j] = ac;
        s->alphas_cumprod_prev[j] = prev;
        s->sqrt_recip_ac[j] = sqrt(1.0 / ac);
        s->sqrt_recipm1_ac[j] = sqrt(1.0 / ac - 1.0);
        s->posterior_variance[j] = beta * (1.0 - prev) / (1.0 - ac);
        s->posterior_mean_coef1[j] = beta * sqrt(prev) / (1.0 - ac);
        s->posterior_mean_coef2[j] = (1.0 - prev) * sqrt(1.0 - beta) / (1.0 - ac);
        s->log_beta[j] = log(beta);
    }
    /* The first posterior variance is 0; the reference clips its log to the
     * second entry. With a single step there is no second entry and the
     * value is never used (no noise is added at the last step). */
    for (int j = 0; j < steps; j++) {
        int src = j == 0 ? (steps > 1 ? 1 : 0) : j;
        s->posterior_log_var[j] = steps > 1 ? log(s->posterior_variance[src]) : s->log_beta[0];
    }
    return 0;
}

void schedule_free(struct schedule *s)
{
    free(s->mem);
    free(s->timestep);
    s->mem = NULL;
    s->timestep = NULL;
}
