/*
 * schedule.h - the DiT diffusion schedule: 1000 linear betas and their
 * respacing to K steps, exactly as the reference computes them (float64).
 */
#ifndef DITD_SCHEDULE_H
#define DITD_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>

#define SCHEDULE_TRAIN_STEPS 1000

struct schedule {
    int steps;                       /* K */
    int *timestep;                   /* (K) original step fed to the network */
    double *beta;                    /* (K) respaced betas */
    double *alphas_cumprod;          /* (K) */
    double *alphas_cumprod_prev;     /* (K) with 1 before the first */
    double *sqrt_recip_ac;           /* (K) sqrt(1/ac) */
    double *sqrt_recipm1_ac;         /* (K) sqrt(1/ac - 1) */
    double *posterior_variance;      /* (K) */
    double *posterior_log_var;       /* (K) log variance, entry 0 clipped to entry 1 */
    double *posterior_mean_coef1;    /* (K) */
    double *posterior_mean_coef2;    /* (K) */
    double *log_beta;                /* (K) */
    double *mem;                     /* owns every array above */
};

/* Build the K-step schedule; ddim selects "ddimK" spacing. 0, or DITD_EINVAL
 * with a message when K is out of 1..1000 or no ddim stride gives K. */
int schedule_init(struct schedule *s, int steps, bool ddim, char *err, size_t errlen);
void schedule_free(struct schedule *s);

#endif /* DITD_SCHEDULE_H */
