/*
 * http_reply.c - the answers of http.h: responses with the headers every
 * answer carries (request id, CORS), the JSON error envelope (OpenAI's on
 * its routes), chunked streams and the shared static answers. Split from
 * http.c, which keeps the connection side (framing, suspension, the loop).
 */
#include "http.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "log.h"

void http_add_header(struct http_req *r, const char *name, const char *fmt, ...)
{
    va_list ap;

    if (r->nhdr >= HTTP_MAX_HEADERS)
        return;
    r->hdr[r->nhdr].name = name;
    va_start(ap, fmt);
    vsnprintf(r->hdr[r->nhdr].value, sizeof(r->hdr[0].value), fmt, ap);
    va_end(ap);
    r->nhdr++;
}

/* The request's id, generated on first use when the client sent none. */
const char *http_request_id(struct http_req *r)
{
    if (!r->request_id[0])
        snprintf(r->request_id, sizeof(r->request_id), "%016llx",
                 (unsigned long long)job_random_u64());
    return r->request_id;
}

/* 1 to HTTP_REQUEST_ID_MAX characters of [A-Za-z0-9._-]: safe to echo in a
 * header, to log and to put in JSON as it is. */
bool http_request_id_valid(const char *id)
{
    size_t n = id ? strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789._-") : 0;

    return n > 0 && n <= HTTP_REQUEST_ID_MAX && id[n] == '\0';
}

void http_set_request_id(struct http_req *r, const char *id)
{
    if (!r->request_id_client)
        snprintf(r->request_id, sizeof(r->request_id), "%s", id);
}

/* Headers every answer of this request carries. */
static void decorate(struct http_req *r, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Request-Id", http_request_id(r));
    for (int i = 0; i < r->nhdr; i++)
        MHD_add_response_header(resp, r->hdr[i].name, r->hdr[i].value);
    if (r->cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors_origin);
        MHD_add_response_header(resp, "Vary", "Origin");
        MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                "X-Request-Id, X-Seed, Server-Timing, Location, Retry-After, "
                                "Idempotent-Replayed");
    }
}

static void set_response(struct http_req *r, unsigned status, struct MHD_Response *resp,
                         bool shared)
{
    if (r->response) {
        /* Answered twice: a bug in the caller; keep the first answer. */
        log_msg(LOG_LEVEL_WARN, "second answer to %s %s ignored", r->method, r->url);
        if (!shared)
            MHD_destroy_response(resp);
        return;
    }
    r->status = status;
    r->response = resp;
    r->response_static = shared;
}

void http_reply(struct http_req *r, unsigned status, const char *content_type, void *data,
                size_t len, bool take)
{
    struct MHD_Response *resp;

    if (take)
        resp = MHD_create_response_from_buffer_with_free_callback(len, data, free);
    else
        resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        if (take)
            free(data);
        return;     /* no response: the connection is closed, counted as an error */
    }
    if (content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    decorate(r, resp);
    set_response(r, status, resp, false);
    r->bytes = len;
}

void http_reply_static(struct http_req *r, unsigned status, const struct http_static *st)
{
    /* Per-request headers cannot go on a shared response: copy instead.
     * The health answers stay shared (and cheap) unless the client sent an
     * id to echo: a generated one would say nothing to a load balancer. */
    if (r->nhdr || r->cors_origin || r->request_id_client) {
        http_reply(r, status, st->content_type, (void *)st->body, strlen(st->body), false);
    } else {
        set_response(r, status, st->resp, true);
        r->bytes = strlen(st->body);
    }
}

void http_reply_json(struct http_req *r, unsigned status, json_t *body)
{
    size_t len = 0;
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;

    json_decref(body);
    if (!text) {
        static const char oom[] = "{\"error\":{\"type\":\"server_error\",\"message\":\"out of memory\"}}";

        http_reply(r, 500, "application/json", (void *)oom, sizeof(oom) - 1, false);
        return;
    }
    len = strlen(text);
    /* A trailing newline keeps curl output tidy. */
    text[len] = '\0';
    {
        char *p = realloc(text, len + 2);

        if (p) {
            text = p;
            text[len++] = '\n';
            text[len] = '\0';
        }
    }
    http_reply(r, status, "application/json", text, len, true);
}

/* The OpenAI routes answer errors in OpenAI's envelope: the same object
 * with "param" and "code" always present (null when there is none). */
static bool openai_route(const struct http_req *r)
{
    return r->ep == EP_OPENAI_IMAGES || r->ep == EP_OPENAI_MODELS;
}

static const char *openai_code(const struct http_req *r, unsigned status)
{
    switch (status) {
    case 401: return "invalid_api_key";
    case 404: return r->ep == EP_OPENAI_MODELS ? "model_not_found" : NULL;
    case 429: return "rate_limit_exceeded";
    default: return NULL;
    }
}

void http_reply_error(struct http_req *r, unsigned status, const char *type, const char *param,
                      const char *fmt, ...)
{
    char msg[600];
    char field[64];
    va_list ap;
    json_t *e;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    utf8_scrub(msg);
    e = json_pack("{s:s,s:s}", "type", type, "message", msg);
    if (param && *param) {
        snprintf(field, sizeof(field), "%s", param);
        utf8_scrub(field);
        json_object_set_new(e, "param", json_string(field));
    } else if (openai_route(r)) {
        json_object_set_new(e, "param", json_null());
    }
    if (openai_route(r)) {
        const char *code = openai_code(r, status);

        json_object_set_new(e, "code", code ? json_string(code) : json_null());
    }
    http_reply_json(r, status, json_pack("{s:o}", "error", e));
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_req *r = cls;
    ssize_t n;

    (void)pos;
    if (r->hungup)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    n = r->stream_read(r, buf, max);
    if (n > 0) {
        r->bytes += (uint64_t)n;
        return n;
    }
    if (n == HTTP_STREAM_WAIT) {
        /* Returning 0 without suspending would make MHD spin on us. */
        http_suspend(r);
        return 0;
    }
    return n == HTTP_STREAM_END ? MHD_CONTENT_READER_END_OF_STREAM
                                : MHD_CONTENT_READER_END_WITH_ERROR;
}

void http_reply_stream(struct http_req *r, unsigned status, const char *content_type)
{
    struct MHD_Response *resp;

    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, r, NULL);
    if (!resp)
        return;
    MHD_add_response_header(resp, "Content-Type", content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    decorate(r, resp);
    set_response(r, status, resp, false);
}

int http_static_init(struct http_static *st, const char *content_type, const char *body)
{
    st->content_type = content_type;
    st->body = body;
    st->resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!st->resp)
        return -ENOMEM;
    MHD_add_response_header(st->resp, "Content-Type", content_type);
    return 0;
}

void http_static_free(struct http_static *st)
{
    if (st->resp)
        MHD_destroy_response(st->resp);
    st->resp = NULL;
}
