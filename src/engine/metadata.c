/*
 * metadata.c - the PNG text chunks that say how an image was made, written
 * by the dit tool and the daemon alike (read back by metadata_read.c for
 * `dit generate --from`), and the model id they carry. Values are plain
 * decimal text; a float is written with the fewest digits that read back to
 * the same float, so parameters survive the round trip exactly.
 */
#include "metadata.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ditd-build.h"
#include "ditd.h"
#include "hash.h"

int metadata_model_id(const char *dir, char out[METADATA_ID_LEN], char *err, size_t errlen)
{
    static const char *const files[] = {
        "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    };
    struct xxh64 h;
    char path[4096];

    xxh64_init(&h, 0);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        int rc = xxh64_file(&h, path, err, errlen);
        if (rc)
            return rc;
    }
    snprintf(out, METADATA_ID_LEN, "%016" PRIx64, xxh64_digest(&h));
    return 0;
}

/* ---------------------------------------------------------------------------
 * Writing.
 */

/* Shortest "%g" text that reads back as exactly v. */
static void float_text(char *buf, size_t len, float v)
{
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, len, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v)
            return;
    }
}

static void put(struct ditd_png_meta *o, size_t *used, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(struct ditd_png_meta *o, size_t *used, const char *key, const char *fmt, ...)
{
    va_list ap;
    char *dst = o->store + *used;
    size_t room = sizeof(o->store) - *used;
    int n;

    if (o->n == DITD_META_MAX || room < 2)
        return;
    va_start(ap, fmt);
    n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    *used += (size_t)n < room ? (size_t)n + 1 : room;
    o->text[o->n++] = (struct ditd_png_text){ key, dst };
}

void ditd_png_metadata(const struct ditd_model *m, const struct ditd_params *p, int count,
                       struct ditd_png_meta *out)
{
    const struct ditd_model_info *info = ditd_model_info(m);
    const char *cname = p->class_id >= 0 && p->class_id < info->num_classes
                            ? info->class_names[p->class_id] : NULL;
    char cfg[32], eta[32];
    size_t used = 0;

    out->n = 0;
    float_text(cfg, sizeof(cfg), p->cfg);
    float_text(eta, sizeof(eta), p->eta);
    put(out, &used, "Software", "ditd %s", DITD_VERSION);
    put(out, &used, "model", "%.120s", info->name);
    put(out, &used, "model_id", "%s", info->id);
    put(out, &used, "class", "%d", p->class_id);
    if (cname)
        put(out, &used, "class_name", "%.120s", cname);
    put(out, &used, "cfg", "%s", cfg);
    put(out, &used, "steps", "%d", p->steps);
    put(out, &used, "sampler", "%s", ditd_sampler_name(p->sampler));
    put(out, &used, "spacing", "%s", p->ddim_spacing ? "ddim" : "uniform");
    put(out, &used, "eta", "%s", eta);
    put(out, &used, "seed", "%" PRIu64, p->seed);
    if (count > 1)
        put(out, &used, "index", "%" PRIu32 "-%" PRIu64, p->index,
            (uint64_t)p->index + (uint64_t)count - 1);
    else
        put(out, &used, "index", "%" PRIu32, p->index);
    put(out, &used, "precision", "%s", info->precision);
}
