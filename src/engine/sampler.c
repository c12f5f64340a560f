/*
 * sampler.c - ddpm, ddim and DPM-Solver++(2M) updates, written to match the
 * reference's float32 arithmetic: each table value is rounded to float32
 * when it is gathered, then the update runs in float32 (docs/sampling.md).
 */
#include "sampler.h"

#include <math.h>
#include <string.h>

static void predict_x0(float *x0, const float *x, const float *eps, int64_t n,
                       float recip, float recipm1)
{
    for (int64_t i = 0; i < n; i++)
        x0[i] = recip * x[i] - recipm1 * eps[i];
}

static void update_ddpm(struct sampler *s, const float *v, const float *noise)
{
    const struct schedule *sc = s->sched;
    const int j = s->j;
    const float c1 = (float)sc->posterior_mean_coef1[j];
    const float c2 = (float)sc->posterior_mean_coef2[j];
    const float min_log = (float)sc->posterior_log_var[j];
    const float max_log = (float)sc->log_beta[j];

    for (int64_t i = 0; i < s->n; i++) {
        float mean = c1 * s->x0[i] + c2 * s->x[i];
        if (j == 0) {
            s->x[i] = mean;
            continue;
        }
        float log_var;
        if (v) {
            float frac = (v[i] + 1.0f) / 2.0f;
            log_var = frac * max_log + (1.0f - frac) * min_log;
        } else {
            log_var = min_log;
        }
        s->x[i] = mean + expf(0.5f * log_var) * noise[i];
    }
}

static void update_ddim(struct sampler *s, const float *noise)
{
    const struct schedule *sc = s->sched;
    const int j = s->j;
    const float recip = (float)sc->sqrt_recip_ac[j];
    const float recipm1 = (float)sc->sqrt_recipm1_ac[j];
    const float ab = (float)sc->alphas_cumprod[j];
    const float ab_prev = (float)sc->alphas_cumprod_prev[j];
    const float sigma = s->eta * sqrtf((1.0f - ab_prev) / (1.0f - ab)) *
                        sqrtf(1.0f - ab / ab_prev);
    const float a = sqrtf(ab_prev);
    const float b = sqrtf(1.0f - ab_prev - sigma * sigma);
    const bool add_noise = j > 0 && sigma != 0.0f;

    for (int64_t i = 0; i < s->n; i++) {
        float e = (recip * s->x[i] - s->x0[i]) / recipm1;
        float mean = s->x0[i] * a + b * e;
        s->x[i] = add_noise ? mean + sigma * noise[i] : mean;
    }
}

/* log(alpha/sigma) of respaced index j, in float64. */
static double lambda_at(const struct schedule *sc, int j)
{
    double ac = sc->alphas_cumprod[j];
    return 0.5 * log(ac) - 0.5 * log(1.0 - ac);
}

static void update_dpmpp_2m(struct sampler *s)
{
    const struct schedule *sc = s->sched;
    const int j = s->j;

    if (j == 0) {
        memcpy(s->x, s->x0, sizeof(float) * (size_t)s->n);
        return;
    }
    const double lam = lambda_at(sc, j), lam_next = lambda_at(sc, j - 1);
    const double h = lam_next - lam;
    const double sigma = sqrt(1.0 - sc->alphas_cumprod[j]);
    const double sigma_next = sqrt(1.0 - sc->alphas_cumprod[j - 1]);
    const double alpha_next = sqrt(sc->alphas_cumprod[j - 1]);
    const float ratio = (float)(sigma_next / sigma);
    const float phi = (float)(-alpha_next * expm1(-h));
    const bool first = j == sc->steps - 1 || !s->have_x0;

    if (first) {
        for (int64_t i = 0; i < s->n; i++)
            s->x[i] = ratio * s->x[i] + phi * s->x0[i];
    } else {
        const double r = (lambda_at(sc, j) - lambda_at(sc, j + 1)) / h;
        const float w_cur = (float)(1.0 + 1.0 / (2.0 * r));
        const float w_prev = (float)(1.0 / (2.0 * r));
        for (int64_t i = 0; i < s->n; i++) {
            float d = w_cur * s->x0[i] - w_prev * s->x0_prev[i];
            s->x[i] = ratio * s->x[i] + phi * d;
        }
    }
}

bool sampler_needs_noise(const struct sampler *s)
{
    if (s->j <= 0)
        return false;
    if (s->kind == DITD_SAMPLER_DDPM)
        return true;
    return s->kind == DITD_SAMPLER_DDIM && s->eta != 0.0f;
}

void sampler_update(struct sampler *s, const float *eps, const float *v, const float *noise)
{
    const struct schedule *sc = s->sched;
    const int j = s->j;

    if (s->kind == DITD_SAMPLER_DPMPP_2M && s->have_x0) {
        /* Keep the previous prediction for the second-order correction. */
        float *t = s->x0_prev;
        s->x0_prev = s->x0;
        s->x0 = t;
    }
    predict_x0(s->x0, s->x, eps, s->n, (float)sc->sqrt_recip_ac[j], (float)sc->sqrt_recipm1_ac[j]);

    switch (s->kind) {
    case DITD_SAMPLER_DDPM:
        update_ddpm(s, v, noise);
        break;
    case DITD_SAMPLER_DDIM:
        update_ddim(s, noise);
        break;
    case DITD_SAMPLER_DPMPP_2M:
        update_dpmpp_2m(s);
        break;
    }
    s->have_x0 = true;
    s->j--;
}
