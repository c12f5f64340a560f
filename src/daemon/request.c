/*
 * request.c - JSON -> struct gen_request. Duplicate keys, unknown keys,
 * wrong types, non-integral numbers where integers are due and values out
 * of range are each refused with a message naming the field. jansson
 * already refuses NaN and Infinity literals and integers beyond int64.
 */
#include "request.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const known_fields[] = {
    "class", "cfg", "steps", "sampler", "spacing", "eta", "seed", "n", "index",
    "stream", "preview", "deadline_ms"
};

static int fail(char *field, size_t fieldlen, const char *name, char *err, size_t errlen,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int fail(char *field, size_t fieldlen, const char *name, char *err, size_t errlen,
                const char *fmt, ...)
{
    va_list ap;

    snprintf(field, fieldlen, "%s", name);
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* An integer field: a JSON integer, or a real with an integral value.
 * 0, 1 when absent, or -EINVAL (wrong type or fractional). */
static int get_int(json_t *obj, const char *name, long long *out)
{
    json_t *v = json_object_get(obj, name);
    double d;

    if (!v)
        return 1;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_real(v))
        return -EINVAL;
    d = json_real_value(v);
    if (d != floor(d) || fabs(d) > 9.0e15)
        return -EINVAL;
    *out = (long long)d;
    return 0;
}

static int get_number(json_t *obj, const char *name, double *out)
{
    json_t *v = json_object_get(obj, name);

    if (!v)
        return 1;
    if (!json_is_number(v))
        return -EINVAL;
    *out = json_number_value(v);
    return isfinite(*out) ? 0 : -EINVAL;
}

static const char *type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a fractional number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static int parse_class(struct gen_request *r, json_t *obj, const struct request_limits *lim,
                       char *field, size_t fl, char *err, size_t el)
{
    json_t *v = json_object_get(obj, "class");
    long long id;

    if (!v)
        return fail(field, fl, "class", err, el,
                    "class is required: a class id 0..%d or a class name (GET /classes lists them)",
                    lim->num_classes - 1);
    if (json_is_string(v)) {
        int c = lim->class_lookup ? lim->class_lookup(lim->class_arg, json_string_value(v)) : -1;

        if (c < 0 || c >= lim->num_classes)
            return fail(field, fl, "class", err, el,
                        "class: unknown class name '%.64s' (GET /classes lists the names)",
                        json_string_value(v));
        r->class_id = c;
        return 0;
    }
    if (get_int(obj, "class", &id) != 0)
        return fail(field, fl, "class", err, el,
                    "class must be an integer id 0..%d or a class name, not %s",
                    lim->num_classes - 1, type_name(v));
    if (id < 0 || id >= lim->num_classes)
        return fail(field, fl, "class", err, el, "class %lld is outside 0..%d", id,
                    lim->num_classes - 1);
    r->class_id = (int)id;
    return 0;
}

/* One integer field in [lo, hi]; leaves *out alone when absent. */
static int parse_int_field(json_t *obj, const char *name, long long lo, long long hi, int *out,
                           char *field, size_t fl, char *err, size_t el)
{
    long long v;
    int rc = get_int(obj, name, &v);

    if (rc == 1)
        return 0;
    if (rc < 0)
        return fail(field, fl, name, err, el, "%s must be an integer, not %s", name,
                    type_name(json_object_get(obj, name)));
    if (v < lo || v > hi)
        return fail(field, fl, name, err, el, "%s %lld is outside %lld..%lld", name, v, lo, hi);
    *out = (int)v;
    return 0;
}

static int parse_bool_field(json_t *obj, const char *name, bool *out,
                            char *field, size_t fl, char *err, size_t el)
{
    json_t *v = json_object_get(obj, name);

    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return fail(field, fl, name, err, el, "%s must be true or false, not %s", name,
                    type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int parse_fields(struct gen_request *r, json_t *obj, const struct request_limits *lim,
                        char *field, size_t fl, char *err, size_t el)
{
    json_t *v;
    long long seed, index;
    int rc;

    rc = parse_class(r, obj, lim, field, fl, err, el);
    if (rc)
        return rc;

    rc = get_number(obj, "cfg", &r->cfg);
    if (rc < 0)
        return fail(field, fl, "cfg", err, el, "cfg must be a finite number 0..%g", lim->max_cfg);
    if (r->cfg < 0 || r->cfg > lim->max_cfg)
        return fail(field, fl, "cfg", err, el, "cfg %g is outside 0..%g (1 or less turns guidance off)",
                    r->cfg, lim->max_cfg);

    rc = parse_int_field(obj, "steps", 1, lim->max_steps, &r->steps, field, fl, err, el);
    if (rc)
        return rc;

    v = json_object_get(obj, "sampler");
    if (v) {
        if (!json_is_string(v) || strlen(json_string_value(v)) >= sizeof(r->sampler_name) ||
            lim->sampler_parse(json_string_value(v), &r->sampler) < 0)
            return fail(field, fl, "sampler", err, el,
                        "sampler must be one of \"ddpm\", \"ddim\", \"dpm++2m\"");
        /* The canonical spelling: names are case-insensitive. */
        snprintf(r->sampler_name, sizeof(r->sampler_name), "%s",
                 lim->sampler_name ? lim->sampler_name(r->sampler) : json_string_value(v));
    }
    v = json_object_get(obj, "spacing");
    if (v) {
        if (json_is_string(v) && strcasecmp(json_string_value(v), "uniform") == 0)
            r->ddim_spacing = false;
        else if (json_is_string(v) && strcasecmp(json_string_value(v), "ddim") == 0)
            r->ddim_spacing = true;
        else
            return fail(field, fl, "spacing", err, el, "spacing must be \"uniform\" or \"ddim\"");
    }

    rc = get_number(obj, "eta", &r->eta);
    if (rc < 0 || r->eta < 0 || r->eta > 1)
        return fail(field, fl, "eta", err, el, "eta must be a number 0..1 (used by the ddim sampler)");

    rc = get_int(obj, "seed", &seed);
    if (rc < 0)
        return fail(field, fl, "seed", err, el,
                    "seed must be an integer 0..9223372036854775807, or -1 for a random one");
    if (rc == 0) {
        if (seed < -1)
            return fail(field, fl, "seed", err, el,
                        "seed %lld is negative; use 0..9223372036854775807, or -1 for a random one",
                        seed);
        r->seed = seed;
    }

    rc = parse_int_field(obj, "n", 1, lim->max_images, &r->n, field, fl, err, el);
    if (rc)
        return rc;
    rc = get_int(obj, "index", &index);
    if (rc < 0)
        return fail(field, fl, "index", err, el, "index must be an integer, not %s",
                    type_name(json_object_get(obj, "index")));
    if (rc == 0) {
        if (index < 0 || index + r->n - 1 > (long long)UINT32_MAX)
            return fail(field, fl, "index", err, el,
                        "index %lld is outside 0..%lld (the images of a request are numbered "
                        "index .. index + n - 1, at most %u)", index,
                        (long long)UINT32_MAX - r->n + 1, UINT32_MAX);
        r->index = (uint32_t)index;
    }
    rc = parse_bool_field(obj, "stream", &r->stream, field, fl, err, el);
    if (rc)
        return rc;
    rc = parse_int_field(obj, "preview", 0, lim->max_steps, &r->preview, field, fl, err, el);
    if (rc)
        return rc;
    return parse_int_field(obj, "deadline_ms", 1, 86400000, &r->deadline_ms, field, fl, err, el);
}

int request_parse(struct gen_request *r, const char *body, size_t len,
                  const struct request_limits *lim, char *field, size_t fieldlen,
                  char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *obj;
    const char *key;
    json_t *val;
    int rc;

    memset(r, 0, sizeof(*r));
    r->cfg = lim->default_cfg;
    r->steps = lim->default_steps;
    r->sampler = lim->default_sampler;
    snprintf(r->sampler_name, sizeof(r->sampler_name), "%s", lim->default_sampler_name);
    r->seed = -1;
    r->n = 1;
    field[0] = '\0';

    if (len == 0)
        return fail(field, fieldlen, "", err, errlen,
                    "the request body is empty; send a JSON object such as {\"class\":1,\"cfg\":4.0}");
    obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        return fail(field, fieldlen, "", err, errlen,
                    "the body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                    jerr.column);
    if (!json_is_object(obj)) {
        rc = fail(field, fieldlen, "", err, errlen,
                  "the body must be a JSON object such as {\"class\":1}, not %s", type_name(obj));
        goto out;
    }
    json_object_foreach(obj, key, val) {
        bool known = false;

        for (size_t i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]); i++)
            known = known || strcmp(key, known_fields[i]) == 0;
        if (!known) {
            rc = fail(field, fieldlen, key, err, errlen,
                      "unknown field '%.48s'; the fields are class, cfg, steps, sampler, spacing, "
                      "eta, seed, n, index, stream, preview, deadline_ms", key);
            goto out;
        }
    }
    rc = parse_fields(r, obj, lim, field, fieldlen, err, errlen);
    if (rc == 0 && r->preview > r->steps) {
        rc = fail(field, fieldlen, "preview", err, errlen,
                  "preview %d is more than steps (%d); give a preview interval 1..steps or 0",
                  r->preview, r->steps);
    }
out:
    json_decref(obj);
    return rc;
}

void request_to_params(const struct gen_request *r, uint64_t seed, int k, struct ditd_params *p)
{
    /* Every field is set here, so ditd_params_default() is not needed and
     * this file does not link against the engine (unit tests use it alone). */
    memset(p, 0, sizeof(*p));
    p->class_id = r->class_id;
    p->cfg = (float)r->cfg;
    p->steps = r->steps;
    p->ddim_spacing = r->ddim_spacing;
    p->sampler = r->sampler;
    p->eta = (float)r->eta;
    p->seed = seed;
    p->index = r->index + (uint32_t)k;
}
