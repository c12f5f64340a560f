/*
 * api_openai.c - the OpenAI-compatible images API (docs/api.md, "OpenAI
 * images API"). POST /v1/images/generations turns OpenAI's request into a
 * native one (the prompt names a class) and checks it with the same rules
 * and messages as POST /generate; the answer is OpenAI's {created, data}.
 * GET /v1/models lists the one model. Errors on these routes come in
 * OpenAI's envelope (http.c adds "param" and "code").
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "ditd.h"

enum { FORMAT_B64, FORMAT_URL };

/* OpenAI's fields this endpoint understands, then ditd's extensions (passed on as they are). */
static const char *const openai_fields[] = { "prompt", "model", "n", "size", "response_format", "user" };
static const char *const extensions[] = { "n", "seed", "cfg", "steps", "sampler" };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool one_of(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, list[i]) == 0)
            return true;
    return false;
}

/* "0 tshirt, 1 trouser, ..." for messages, cut to fit. */
static void class_list(const struct ditd_model_info *mi, char *out, size_t len)
{
    size_t o = 0;

    out[0] = '\0';
    for (int i = 0; i < mi->num_classes && o + 1 < len; i++) {
        const char *name = mi->class_names ? mi->class_names[i] : NULL;
        int n = snprintf(out + o, len - o, "%s%d%s%s", i ? ", " : "", i, name ? " " : "",
                         name ? name : "");

        if (n < 0 || (size_t)n >= len - o) {
            snprintf(out + (len > 5 ? len - 5 : 0), len > 5 ? 5 : len, " ...");
            return;
        }
        o += (size_t)n;
    }
}

/* 400 naming the field, counted as a rejected request. */
static void refuse(struct http_req *r, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(struct http_req *r, const char *param, const char *fmt, ...)
{
    char msg[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    metrics_reject(REJECT_INVALID);
    http_reply_error(r, 400, "invalid_request_error", param, "%s", msg);
}

/* The native body of an OpenAI request, or NULL when answered (400). */
static json_t *translate(struct server *s, struct http_req *r, int *format)
{
    const struct ditd_model_info *mi = s->info;
    json_error_t jerr;
    json_t *in = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *out = NULL, *v;
    const char *key;
    char buf[600], size[32];
    int cls;

    *format = FORMAT_B64;
    if (!in || !json_is_object(in)) {
        refuse(r, NULL, "the body must be a JSON object such as {\"prompt\": \"%s\"}%s%s",
               mi->class_names && mi->class_names[0] ? mi->class_names[0] : "0",
               in ? "" : "; it is not valid JSON: ", in ? "" : jerr.text);
        goto out;
    }
    json_object_foreach(in, key, v) {
        if (!one_of(key, openai_fields, COUNT(openai_fields)) &&
            !one_of(key, extensions, COUNT(extensions))) {
            refuse(r, key, "unknown field '%.48s'; this endpoint takes prompt, model, n, size, "
                   "response_format, user and the ditd extensions seed, cfg, steps, sampler", key);
            goto out;
        }
    }
    v = json_object_get(in, "prompt");
    cls = json_is_string(v) ? ditd_model_class(s->model, json_string_value(v)) : -1;
    if (cls < 0 || cls >= mi->num_classes) {
        class_list(mi, buf, sizeof(buf) - 160);
        refuse(r, "prompt", "%s%.64s%s: this model is class-conditional, so the prompt names one "
               "of its classes, by name or id: %s", v ? "prompt '" : "prompt is required",
               json_is_string(v) ? json_string_value(v) : v ? "(not a string)" : "",
               v ? "' is not a class" : "", buf);
        goto out;
    }
    v = json_object_get(in, "model");
    if (v && (!json_is_string(v) || strcmp(json_string_value(v), mi->name) != 0)) {
        refuse(r, "model", "model must be \"%s\", the model this server runs (GET /v1/models)",
               mi->name);
        goto out;
    }
    v = json_object_get(in, "size");
    snprintf(size, sizeof(size), "%dx%d", mi->image_size, mi->image_size);
    if (v && (!json_is_string(v) || (strcmp(json_string_value(v), size) != 0 &&
                                     strcmp(json_string_value(v), "auto") != 0))) {
        snprintf(buf, sizeof(buf), "%.40s", json_is_string(v) ? json_string_value(v) : "not a string");
        refuse(r, "size", "size %s is not available: this model makes %s images only "
               "(send \"size\": \"%s\" or leave it out)", buf, size, size);
        goto out;
    }
    v = json_object_get(in, "response_format");
    if (v && json_is_string(v) && strcmp(json_string_value(v), "url") == 0) {
        *format = FORMAT_URL;
    } else if (v && !(json_is_string(v) && strcmp(json_string_value(v), "b64_json") == 0)) {
        refuse(r, "response_format", "response_format must be \"b64_json\" (the default) or "
               "\"url\"");
        goto out;
    }
    v = json_object_get(in, "user");
    if (v && !json_is_string(v)) {
        refuse(r, "user", "user must be a string");
        goto out;
    }
    out = json_pack("{s:i}", "class", cls);
    for (size_t i = 0; out && i < COUNT(extensions); i++) {
        v = json_object_get(in, extensions[i]);
        if (v)
            json_object_set(out, extensions[i], v);
    }
out:
    json_decref(in);
    return out;
}

/* Where a client can fetch image k: absolute, as OpenAI's URLs are, from
 * the Host the client used. */
static void image_url(struct server *s, struct http_req *r, struct job *j, int k, char *out,
                      size_t len)
{
    const char *host = http_header(r, "Host");
    const char *proto = http_header(r, "X-Forwarded-Proto");
    char fallback[32];

    /* A Host with other characters is not echoed into the answer. */
    if (!host || !*host || strlen(host) > 255 ||
        host[strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]_")]) {
        snprintf(fallback, sizeof(fallback), "127.0.0.1:%d", s->port);
        host = fallback;
    }
    snprintf(out, len, "%s://%s/jobs/%s/images/%d.png",
             proto && strcmp(proto, "https") == 0 ? "https" : "http", host, j->id, k);
}

static void answer(struct api_waiter *w)
{
    struct http_req *r = w->r;
    struct job *j = w->job;
    const struct ditd_model_info *mi = w->srv->info;
    const char *name = mi->class_names ? mi->class_names[j->req.class_id] : NULL;
    json_t *data = json_array();
    char rev[32];

    if (!name) {
        snprintf(rev, sizeof(rev), "%d", j->req.class_id);
        name = rev;
    }
    api_timing_headers(r, j);
    /* Workers no longer touch a completed job's images. */
    for (int k = 0; k < j->req.n; k++) {
        char url[512];
        struct buf b;

        if (w->variant == FORMAT_URL) {
            image_url(w->srv, r, j, k, url, sizeof(url));
            json_array_append_new(data, json_pack("{s:s,s:s}", "url", url, "revised_prompt", name));
            continue;
        }
        buf_init(&b, 0);
        buf_base64(&b, j->images[k].png, j->images[k].png_len);
        json_array_append_new(data, json_pack("{s:s?,s:s}", "b64_json", b.data,
                                              "revised_prompt", name));
        buf_free(&b);
    }
    http_reply_json(r, 200, json_pack("{s:I,s:o}", "created", (json_int_t)j->created_unix,
                                      "data", data));
}

static void generations(struct server *s, struct http_req *r)
{
    struct api_waiter *w;
    struct job *j;
    json_t *body;
    char *text;
    int format;

    metrics_add(&metrics.jobs_received, 1);
    if (api_refuse_unready(s, r))
        return;
    body = translate(s, r, &format);
    if (!body)
        return;
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        metrics_reject(REJECT_INVALID);
        http_reply_error(r, 503, "unavailable_error", NULL, "out of memory; retry later");
        return;
    }
    /* URLs point into the job store, so those jobs are kept like POST /jobs ones. */
    j = api_submit(s, r, format == FORMAT_URL ? JOB_KIND_ASYNC : JOB_KIND_SYNC, text, strlen(text));
    free(text);
    if (!j)
        return;
    w = api_waiter_new(s, r, j, false, true);
    if (!w) {
        sched_cancel(&s->sched, j, CANCEL_DISCONNECT);
        http_reply_error(r, 503, "unavailable_error", NULL, "out of memory; retry later");
        return;
    }
    w->done = answer;
    w->variant = format;
    /* The answer waits: http suspends the connection until the job ends. */
}

static json_t *model_object(struct server *s)
{
    return json_pack("{s:s,s:s,s:I,s:s}", "id", s->info->name, "object", "model",
                     "created", (json_int_t)s->loaded_unix, "owned_by", "ditd");
}

static void models(struct server *s, struct http_req *r)
{
    const char *id = r->url + strlen("/v1/models");

    if (*id == '\0') {
        http_reply_json(r, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model_object(s)));
    } else if (strcmp(id + 1, s->info->name) == 0) {
        http_reply_json(r, 200, model_object(s));
    } else {
        http_reply_error(r, 404, "invalid_request_error", "model",
                         "the model '%.64s' does not exist here; this server runs \"%s\"", id + 1,
                         s->info->name);
    }
}

void api_openai(struct server *s, struct http_req *r)
{
    const char *allow = r->ep == EP_OPENAI_IMAGES ? "POST" : "GET";

    if (strcmp(r->method, allow) != 0) {
        api_method_not_allowed(r, allow);
    } else if (r->ep == EP_OPENAI_IMAGES) {
        generations(s, r);
    } else if (!s->info) {
        http_add_header(r, "Retry-After", "5");
        http_reply_error(r, 503, "unavailable_error", NULL, "the model is still loading");
    } else {
        models(s, r);
    }
}
