/*
 * sampler.h - one update of a diffusion sampler, given the network's
 * (guided) epsilon and variance outputs for one image. Knows nothing about
 * the network, so it can be tested with an analytic denoiser.
 */
#ifndef DITD_SAMPLER_H
#define DITD_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "ditd.h"
#include "schedule.h"

struct sampler {
    enum ditd_sampler kind;
    float eta;                    /* ddim only */
    const struct schedule *sched; /* borrowed */
    int64_t n;                    /* elements of one latent */
    int j;                        /* next respaced index to run, K-1 .. 0; -1 = done */
    float *x;                     /* (n) current latent x_j */
    float *x0;                    /* (n) latest x0 prediction */
    float *x0_prev;               /* (n) dpm++2m: prediction of the step before */
    bool have_x0;
};

/* x_j -> x_{j-1} for the current j, then j--. eps (n) is the guided epsilon,
 * v (n) the variance channels or NULL, noise (n) the step's normal noise
 * (only read by ddpm and by ddim with eta > 0 when j > 0). */
void sampler_update(struct sampler *s, const float *eps, const float *v, const float *noise);

/* Whether the update of the current step reads noise. */
bool sampler_needs_noise(const struct sampler *s);

#endif /* DITD_SAMPLER_H */
