/*
 * http.h - libmicrohttpd driven from the libuv loop: MHD runs in external
 * epoll mode with no thread of its own; a uv_poll_t watches its epoll
 * descriptor and a uv_timer_t honours MHD_get_timeout(). This layer does
 * what is the same for every endpoint: HTTP framing checks MHD 0.9.75 does
 * not do (duplicate Content-Length, Content-Length with Transfer-Encoding,
 * unknown Transfer-Encoding, oversized bodies refused before reading),
 * body collection under a cap, API keys, CORS, suspending connections that
 * wait for work, noticing clients that hang up while suspended, metrics
 * and the access log. Endpoints are the api layer's.
 *
 * Everything here runs on the loop thread.
 */
#ifndef DITD_DAEMON_HTTP_H
#define DITD_DAEMON_HTTP_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "buf.h"
#include "config.h"
#include "metrics.h"

struct json_t;
struct http_server;

#define HTTP_MAX_HEADERS 10
/* A client's X-Request-Id is adopted when it is 1 to this many characters
 * of [A-Za-z0-9._-]; otherwise the request gets a generated one. */
#define HTTP_REQUEST_ID_MAX 64

/* Return values of http_req.stream_read besides a byte count > 0. */
#define HTTP_STREAM_WAIT 0      /* nothing now: suspend until http_wake() */
#define HTTP_STREAM_END (-1)
#define HTTP_STREAM_ERROR (-2)

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method;         /* valid for the request's life (MHD's) */
    const char *url;
    enum metrics_endpoint ep;
    struct buf body;
    int64_t start_ns;
    unsigned status;
    struct MHD_Response *response;  /* to queue on the next handler call */
    bool response_static;       /* shared response: do not destroy */
    bool queued, suspended, hungup, dispatched;
    bool too_large;             /* a chunked body passed max_body: 413 at its end */
    size_t discarded;           /* body bytes dropped since then */
    const char *cors_origin;    /* allowed Origin to echo, or NULL */
    bool admin;                 /* the API key presented is an admin key */
    char request_id[HTTP_REQUEST_ID_MAX + 1];   /* echoed as X-Request-Id, logged */
    bool request_id_client;     /* the client's own X-Request-Id */
    uint64_t bytes;             /* body bytes handed to MHD */
    double queue_ms;            /* the job's wait before its first step; < 0 = none */
    int nhdr;
    struct {
        const char *name;       /* static string */
        char value[160];
    } hdr[HTTP_MAX_HEADERS];

    /* Set by the api layer. */
    void *user;
    ssize_t (*stream_read)(struct http_req *r, char *buf, size_t max);
    void (*on_hangup)(struct http_req *r);          /* client left while suspended */
    void (*on_complete)(struct http_req *r);        /* request over; free user */
    struct http_req *sprev, *snext;                 /* suspended list */
};

struct http_handlers {
    /* Endpoint of a request, for metrics and the public/private rule. */
    enum metrics_endpoint (*classify)(const char *method, const char *url);
    /* Answer (http_reply_*) or leave it for later (then http_wake). */
    void (*dispatch)(struct http_req *r, void *arg);
    void *arg;
};

/* Bind the configured address (port 0 = any) and start MHD on `loop`.
 * *port receives the port bound. err says what failed and how to fix it. */
int http_start(struct http_server **out, uv_loop_t *loop, const struct config *cfg,
               const struct http_handlers *h, int *port, char *err, size_t errlen);
/* Stop accepting connections (the end of a drain): closes the listening
 * socket; connections already open are served on. Idempotent. */
void http_quiesce(struct http_server *s);
/* Requests in progress (received, not yet completed). */
int http_active(const struct http_server *s);
/* Resume every suspended connection (before stopping MHD). */
void http_wake_all(struct http_server *s);
/* Stop MHD and close the loop handles; `done` runs once they are closed. */
void http_stop(struct http_server *s);
/* Re-read API keys and CORS origins after a reload; 0 or -errno. */
int http_reload(struct http_server *s, char *err, size_t errlen);

/* Answers. Each sets the pending response; the api calls exactly one. */
void http_add_header(struct http_req *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void http_reply(struct http_req *r, unsigned status, const char *content_type,
                void *data, size_t len, bool take);
/* A constant answer built once (health endpoints). */
struct http_static {
    struct MHD_Response *resp;
    const char *content_type;
    const char *body;           /* static string */
};
int http_static_init(struct http_static *st, const char *content_type, const char *body);
void http_static_free(struct http_static *st);
void http_reply_static(struct http_req *r, unsigned status, const struct http_static *st);
void http_reply_json(struct http_req *r, unsigned status, struct json_t *body);   /* steals */
void http_reply_error(struct http_req *r, unsigned status, const char *type,
                      const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* An open-ended chunked body pulled from r->stream_read. */
void http_reply_stream(struct http_req *r, unsigned status, const char *content_type);
/* A request that waits (no response yet, or a stream with new data):
 * resume it so MHD calls back. No-op unless suspended. */
void http_wake(struct http_req *r);

/* Make `id` the request's id (a job's id), unless the client gave its own. */
void http_set_request_id(struct http_req *r, const char *id);

/* Request header value, or NULL. */
const char *http_header(struct http_req *r, const char *name);
/* Query argument, or NULL. */
const char *http_query(struct http_req *r, const char *name);
/* The API key presented (Bearer or X-Api-Key), or NULL. */
const char *http_api_key(struct http_req *r);
/* Whether API keys are configured (requests then carry an accepted one). */
bool http_keys_configured(const struct http_req *r);

/* Between http.c and http_reply.c only. */
void http_suspend(struct http_req *r);          /* until http_wake() */
const char *http_request_id(struct http_req *r);   /* generated on first use */
bool http_request_id_valid(const char *id);

#endif /* DITD_DAEMON_HTTP_H */
