/*
 * fuzz_request.c - libFuzzer target for the request decoder (request.c):
 * any bytes as a POST /generate body. Beyond crashes it traps on broken
 * promises: an accepted request with a field out of its range, or a
 * refusal without a message. Built with -Dfuzz=true (see fuzz/run.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "request.h"

static int lookup(void *arg, const char *name)
{
    (void)arg;
    return strcasecmp(name, "sneaker") == 0 ? 7 : -1;
}

static int sampler(const char *name, enum ditd_sampler *out)
{
    if (strcmp(name, "ddpm") == 0)
        *out = DITD_SAMPLER_DDPM;
    else if (strcmp(name, "ddim") == 0)
        *out = DITD_SAMPLER_DDIM;
    else if (strcmp(name, "dpm++2m") == 0)
        *out = DITD_SAMPLER_DPMPP_2M;
    else
        return -22;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct request_limits lim = {
        .num_classes = 10, .max_images = 8, .max_steps = 1000, .default_steps = 50,
        .default_cfg = 4.0, .max_cfg = 20.0, .default_sampler = DITD_SAMPLER_DDPM,
        .default_sampler_name = "ddpm", .class_lookup = lookup, .sampler_parse = sampler,
    };
    struct gen_request r;
    char field[REQUEST_FIELD_LEN];
    char err[512];
    int rc;

    err[0] = '\0';
    rc = request_parse(&r, (const char *)data, size, &lim, field, sizeof(field), err, sizeof(err));
    if (rc == 0) {
        if (r.class_id < 0 || r.class_id >= 10 || !(r.cfg >= 0 && r.cfg <= 20) ||
            r.steps < 1 || r.steps > 1000 || r.n < 1 || r.n > 8 || r.seed < -1 ||
            !(r.eta >= 0 && r.eta <= 1) || r.preview < 0 || r.preview > r.steps ||
            r.deadline_ms < 0)
            abort();
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
