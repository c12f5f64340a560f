/*
 * fuzz_metadata.c - libFuzzer target for the PNG metadata reader behind
 * `dit generate --from x.png`: ditd_png_metadata_read() on the whole input,
 * a file a user hands us. An accepted file must give parameters inside the
 * ranges the reader promises (the sampler then runs with them) and
 * terminated strings; a refused one must say why.
 */
#include "ditd.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_string(const char *s, size_t len)
{
    if (!memchr(s, '\0', len))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ditd_png_origin o;
    char err[DITD_ERR_LEN];

    err[0] = '\0';
    if (ditd_png_metadata_read(data, size, &o, err, sizeof err) == 0) {
        const struct ditd_params *p = &o.params;
        if (p->steps < 1 || p->steps > 1000 || !(p->cfg >= 0 && p->cfg <= 100) ||
            !(p->eta >= 0 && p->eta <= 1) || p->class_id < 0 || (p->sampler != DITD_SAMPLER_DDPM && p->sampler != DITD_SAMPLER_DDIM &&
                                 p->sampler != DITD_SAMPLER_DPMPP_2M) ||
            o.count < 1 || o.count > 100000)
            __builtin_trap();
        check_string(o.model, sizeof o.model);
        check_string(o.model_id, sizeof o.model_id);
        check_string(o.precision, sizeof o.precision);
        check_string(o.software, sizeof o.software);
    } else if (err[0] == '\0' || !memchr(err, '\0', sizeof err)) {
        __builtin_trap();
    }
    return 0;
}
