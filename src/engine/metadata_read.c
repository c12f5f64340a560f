/*
 * metadata_read.c - the reader behind `dit generate --from x.png`: the
 * parameters metadata.c wrote, taken back from a PNG's text chunks. The
 * file comes from a user, so every length is checked; it needs nothing of
 * the engine but params.c, and fuzz/fuzz_metadata.c runs it alone.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ditd-build.h"
#include "ditd.h"

/* ---------------------------------------------------------------------------
 * Reading: walk the chunks (length, type, data, CRC) and keep the text ones.
 * Only bounds are checked, not CRCs: a damaged value fails its own parse.
 */

enum {
    F_CLASS = 1 << 0, F_CFG = 1 << 1, F_STEPS = 1 << 2, F_SAMPLER = 1 << 3, F_SPACING = 1 << 4,
    F_ETA = 1 << 5, F_SEED = 1 << 6, F_INDEX = 1 << 7,
    F_NEEDED = (1 << 8) - 1
};

static const char *const needed_keys[] = {
    "class", "cfg", "steps", "sampler", "spacing", "eta", "seed", "index",
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int parse_u64(const char *s, uint64_t hi, uint64_t *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float lo, float hi, float *out)
{
    char *end;
    float v = strtof(s, &end);

    if (end == s || *end || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Longer values are cut: these fields are only shown and compared. */
static void copy_text(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%.*s", (int)len - 1, src);
}

/* One key = value; returns the F_ flag it set, 0 for keys we do not use,
 * -1 for a value that does not parse. */
static int take(struct ditd_png_origin *o, const char *key, const char *val)
{
    struct ditd_params *p = &o->params;
    uint64_t a, b;

    if (strcmp(key, "class") == 0) {
        if (parse_u64(val, INT_MAX, &a))
            return -1;
        p->class_id = (int)a;
        return F_CLASS;
    }
    if (strcmp(key, "steps") == 0) {
        if (parse_u64(val, 1000, &a) || a < 1)
            return -1;
        p->steps = (int)a;
        return F_STEPS;
    }
    if (strcmp(key, "cfg") == 0)
        return parse_float(val, 0, 100, &p->cfg) ? -1 : F_CFG;
    if (strcmp(key, "eta") == 0)
        return parse_float(val, 0, 1, &p->eta) ? -1 : F_ETA;
    if (strcmp(key, "seed") == 0)
        return parse_u64(val, UINT64_MAX, &p->seed) ? -1 : F_SEED;
    if (strcmp(key, "sampler") == 0)
        return ditd_sampler_parse(val, &p->sampler) ? -1 : F_SAMPLER;
    if (strcmp(key, "spacing") == 0) {
        if (strcmp(val, "uniform") && strcmp(val, "ddim"))
            return -1;
        p->ddim_spacing = strcmp(val, "ddim") == 0;
        return F_SPACING;
    }
    if (strcmp(key, "index") == 0) {
        char first[24];
        const char *dash = strchr(val, '-');
        size_t n = dash ? (size_t)(dash - val) : strlen(val);

        if (n >= sizeof(first))
            return -1;
        memcpy(first, val, n);
        first[n] = '\0';
        if (parse_u64(first, UINT32_MAX, &a) || parse_u64(dash ? dash + 1 : first, UINT32_MAX, &b) ||
            b < a || b - a >= 100000)
            return -1;
        p->index = (uint32_t)a;
        o->count = (int)(b - a + 1);
        return F_INDEX;
    }
    if (strcmp(key, "model") == 0)
        copy_text(o->model, sizeof(o->model), val);
    else if (strcmp(key, "model_id") == 0)
        copy_text(o->model_id, sizeof(o->model_id), val);
    else if (strcmp(key, "precision") == 0)
        copy_text(o->precision, sizeof(o->precision), val);
    else if (strcmp(key, "Software") == 0)
        copy_text(o->software, sizeof(o->software), val);
    return 0;
}

/* The keyword and the text of a tEXt or uncompressed iTXt chunk, copied
 * NUL-terminated into key/val; -1 when it is neither or does not fit. */
static int text_chunk(const uint8_t *type, const uint8_t *d, size_t n, char *key, size_t keylen,
                      char *val, size_t vallen)
{
    const uint8_t *nul = memchr(d, 0, n < keylen ? n : keylen);
    size_t pos;

    if (!nul)
        return -1;
    pos = (size_t)(nul - d);
    memcpy(key, d, pos);
    key[pos] = '\0';
    pos++;
    if (memcmp(type, "iTXt", 4) == 0) {
        /* compression flag, method, language tag\0, translated keyword\0 */
        if (n - pos < 2 || d[pos] != 0)
            return -1;
        pos += 2;
        for (int field = 0; field < 2; field++) {
            const uint8_t *z = memchr(d + pos, 0, n - pos);
            if (!z)
                return -1;
            pos = (size_t)(z - d) + 1;
        }
    } else if (memcmp(type, "tEXt", 4) != 0) {
        return -1;
    }
    if (n - pos >= vallen || memchr(d + pos, 0, n - pos))
        return -1;
    memcpy(val, d + pos, n - pos);
    val[n - pos] = '\0';
    return 0;
}

int ditd_png_metadata_read(const uint8_t *png, size_t len, struct ditd_png_origin *out,
                           char *err, size_t errlen)
{
    static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    size_t pos = 8;
    int seen = 0;

    memset(out, 0, sizeof(*out));
    ditd_params_default(&out->params);
    out->count = 1;
    if (len < 8 || memcmp(png, sig, 8) != 0) {
        snprintf(err, errlen, "not a PNG file (bad signature)");
        return DITD_EINVAL;
    }
    while (pos < len) {
        char key[80], val[256];

        if (len - pos < 12) {
            snprintf(err, errlen, "the PNG is truncated at byte %zu", pos);
            return DITD_EINVAL;
        }
        uint32_t n = be32(png + pos);
        const uint8_t *type = png + pos + 4, *data = png + pos + 8;
        if (n > len - pos - 12) {
            snprintf(err, errlen, "the PNG is truncated: a %.4s chunk at byte %zu claims %u bytes",
                     (const char *)type, pos, n);
            return DITD_EINVAL;
        }
        if (memcmp(type, "IEND", 4) == 0)
            break;
        if (text_chunk(type, data, n, key, sizeof(key), val, sizeof(val)) == 0) {
            int f = take(out, key, val);
            if (f < 0) {
                snprintf(err, errlen, "the PNG's %s text chunk holds \"%.60s\", which is not a "
                         "valid %s", key, val, key);
                return DITD_EINVAL;
            }
            seen |= f;
        }
        pos += 12 + (size_t)n;
    }
    if (seen != F_NEEDED) {
        for (int i = 0; i < 8; i++) {
            if (!(seen & (1 << i))) {
                snprintf(err, errlen, "the PNG has no \"%s\" text chunk; only PNGs written by "
                         "dit generate or ditd (%s or later), with their metadata intact, say "
                         "how they were made", needed_keys[i], DITD_VERSION);
                break;
            }
        }
        return DITD_EINVAL;
    }
    return 0;
}
