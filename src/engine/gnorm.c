/*
 * gnorm.c - GroupNorm statistics folded into a per-channel affine, and its
 * application (see gnorm.h).
 */
#include "gnorm.h"

#include <math.h>
#include <string.h>

#include "ops.h"
#include "team.h"
#include "vec8.h"

/* Pixels per statistics task: the partial sums stay small (a 256 x 256 map
 * has 64 chunks) and a task is long enough to be worth handing out. */
#define STAT_PIXELS 1024

static long stat_chunks(long HW)
{
    return (HW + STAT_PIXELS - 1) / STAT_PIXELS;
}

size_t gnorm_partial_doubles(long HW, int C)
{
    return (size_t)stat_chunks(HW) * (size_t)C * 2;
}

struct fold_job {
    const float *x;
    double *partial;   /* (chunks, 2, C): sum, sum of squares */
    long HW;
    int C;
};

VECTOR_CLONES
static void stats_task(void *arg, int chunk, int thread)
{
    const struct fold_job *j = arg;
    const int C = j->C;
    const long p0 = (long)chunk * STAT_PIXELS;
    const long p1 = p0 + STAT_PIXELS < j->HW ? p0 + STAT_PIXELS : j->HW;
    double *sum = j->partial + (size_t)chunk * 2 * C, *sq = sum + C;
    (void)thread;

    memset(sum, 0, sizeof(double) * 2 * (size_t)C);
    for (long p = p0; p < p1; p++) {
        const float *x = j->x + (size_t)p * C;
        for (int c = 0; c < C; c++) {
            const double v = x[c];
            sum[c] += v;
            sq[c] += v * v;
        }
    }
}

void gnorm_fold(const struct ops_ctx *c, float *center, float *scale, float *shift,
                const float *x, const float *gamma, const float *beta, long HW, int C,
                int groups, float eps, double *partial)
{
    struct fold_job j = { .x = x, .partial = partial, .HW = HW, .C = C };
    const long chunks = stat_chunks(HW);
    const int cg = C / groups;
    const double n = (double)HW * cg;

    team_run(c->team, stats_task, &j, (int)chunks);
    for (int g = 0; g < groups; g++) {
        double sum = 0.0, sq = 0.0;
        for (long k = 0; k < chunks; k++) {
            const double *s = partial + (size_t)k * 2 * C;
            for (int ch = g * cg; ch < (g + 1) * cg; ch++) {
                sum += s[ch];
                sq += s[C + ch];
            }
        }
        const double mean = sum / n;
        double var = sq / n - mean * mean;
        var = var > 0.0 ? var : 0.0;
        const double rstd = 1.0 / sqrt(var + eps);
        for (int ch = g * cg; ch < (g + 1) * cg; ch++) {
            center[ch] = (float)mean;
            scale[ch] = (float)(rstd * gamma[ch]);
            shift[ch] = beta[ch];
        }
    }
}

struct apply_job {
    float *out;
    const float *x, *center, *scale, *shift;
    long HW;
    int C, silu, ntasks;
};

VECTOR_CLONES
static void apply_task(void *arg, int task, int thread)
{
    const struct apply_job *j = arg;
    long begin, end;
    (void)thread;
    team_chunk(j->HW, j->ntasks, task, &begin, &end);
    for (long p = begin; p < end; p++) {
        const float *x = j->x + (size_t)p * j->C;
        float *y = j->out + (size_t)p * j->C;
        for (int c0 = 0; c0 < j->C; c0 += VEC8) {
            const int n = j->C - c0 < VEC8 ? j->C - c0 : VEC8;
            v8 v, center, scale, shift;
            v8_load(&v, x + c0, n);
            v8_load(&center, j->center + c0, n);
            v8_load(&scale, j->scale + c0, n);
            v8_load(&shift, j->shift + c0, n);
            v = (v - center) * scale + shift;
            if (j->silu)
                v8_silu(&v);
            v8_store(y + c0, &v, n);
        }
    }
}

void gnorm_apply(const struct ops_ctx *c, float *out, const float *x, const float *center,
                 const float *scale, const float *shift, long HW, int C, int silu)
{
    struct apply_job j = {
        .out = out, .x = x, .center = center, .scale = scale, .shift = shift, .HW = HW, .C = C,
        .silu = silu,
        .ntasks = HW < 64 ? 1 : 64,
    };
    team_run(c->team, apply_task, &j, j.ntasks);
}
