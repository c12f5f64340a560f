/*
 * params.c - generation parameters without a model: their defaults (the
 * ones dit and ditd share, include/ditd.h) and the names of samplers and
 * precisions. Kept apart from engine.c so that code that only reads
 * parameters (the PNG metadata reader and its fuzz target) needs nothing
 * else of the engine.
 */
#include <string.h>
#include <strings.h>

#include "ditd.h"

void ditd_params_default(struct ditd_params *p)
{
    memset(p, 0, sizeof(*p));
    p->cfg = (float)DITD_DEFAULT_CFG;
    p->steps = DITD_DEFAULT_STEPS;
    ditd_sampler_parse(DITD_DEFAULT_SAMPLER, &p->sampler);
}

int ditd_sampler_parse(const char *name, enum ditd_sampler *out)
{
    static const char *const names[] = { "ddpm", "ddim", "dpm++2m" };
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(name, names[i]) == 0) {  /* "DDIM" too, as class names */
            *out = (enum ditd_sampler)i;
            return 0;
        }
    }
    return DITD_EINVAL;
}

const char *ditd_sampler_name(enum ditd_sampler s)
{
    switch (s) {
    case DITD_SAMPLER_DDPM: return "ddpm";
    case DITD_SAMPLER_DDIM: return "ddim";
    case DITD_SAMPLER_DPMPP_2M: return "dpm++2m";
    }
    return "?";
}

int ditd_precision_parse(const char *name, enum ditd_precision *out)
{
    static const char *const names[] = { "auto", "fp32", "bf16" };
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (enum ditd_precision)i;
            return 0;
        }
    }
    return DITD_EINVAL;
}

const char *ditd_precision_name(enum ditd_precision p)
{
    switch (p) {
    case DITD_PRECISION_AUTO: return "auto";
    case DITD_PRECISION_FP32: return "fp32";
    case DITD_PRECISION_BF16: return "bf16";
    }
    return "?";
}
