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

#define NNAMES(a) (int)(sizeof(a) / sizeof((a)[0]))

static const char *const sampler_names[] = { "ddpm", "ddim", "dpm++2m" };   /* enum order */
static const char *const precision_names[] = { "auto", "fp32", "bf16" };

/* Case-insensitive ("DDIM" too, as class names): the index in names, or DITD_EINVAL. */
static int parse_name(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    return DITD_EINVAL;
}

int ditd_sampler_parse(const char *name, enum ditd_sampler *out)
{
    int i = parse_name(sampler_names, NNAMES(sampler_names), name);
    if (i < 0)
        return i;
    *out = (enum ditd_sampler)i;
    return 0;
}

const char *ditd_sampler_name(enum ditd_sampler s)
{
    return (unsigned)s < NNAMES(sampler_names) ? sampler_names[s] : "?";
}

int ditd_precision_parse(const char *name, enum ditd_precision *out)
{
    int i = parse_name(precision_names, NNAMES(precision_names), name);
    if (i < 0)
        return i;
    *out = (enum ditd_precision)i;
    return 0;
}

const char *ditd_precision_name(enum ditd_precision p)
{
    return (unsigned)p < NNAMES(precision_names) ? precision_names[p] : "?";
}
