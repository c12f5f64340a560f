/*
 * http.c - libmicrohttpd on the libuv loop (see http.h): the connection side
 * (framing checks, keys, suspension and hang-ups, the access log, the loop);
 * the answers are in http_reply.c.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "job.h"
#include "log.h"
#include "net.h"

#define PROBE_MS 100        /* hang-up check of suspended connections */
/* Bytes of an oversized chunked body read and dropped before the 413, in
 * units of max_body; a client that keeps sending past this is cut off. */
#define DISCARD_FACTOR 4
/* libmicrohttpd 0.9.75 answers a header block larger than its per-connection
 * memory pool with its own HTML page, and has no hook to change that page.
 * So its pool is this many times http_memory, and a header block between
 * http_memory and the pool gets ditd's JSON 431 from begin(). */
#define POOL_FACTOR 4
/* Header fields at most (431 above). libmicrohttpd keeps a record of some
 * 56 bytes per field in the same pool, so a flood of tiny fields could fill
 * it before the byte limit; this bound keeps such requests ditd's. */
#define MAX_FIELDS 256

struct http_server {
    uv_loop_t *loop;
    const struct config *cfg;
    struct http_handlers h;
    struct MHD_Daemon *mhd;
    uv_poll_t poll;
    uv_timer_t timer;
    uv_timer_t probe;
    int listen_fd;
    int active;
    struct http_req *suspended;
    struct auth auth;
};

static void run_mhd(struct http_server *s);
static void timer_cb(uv_timer_t *t);

/* ---- suspend / resume / hang-up ------------------------------------------ */

static void unlink_suspended(struct http_req *r)
{
    if (r->sprev)
        r->sprev->snext = r->snext;
    else if (r->srv->suspended == r)
        r->srv->suspended = r->snext;
    if (r->snext)
        r->snext->sprev = r->sprev;
    r->sprev = r->snext = NULL;
}

static void probe_cb(uv_timer_t *t);

void http_suspend(struct http_req *r)
{
    struct http_server *s = r->srv;

    MHD_suspend_connection(r->conn);
    r->suspended = true;
    r->sprev = NULL;
    r->snext = s->suspended;
    if (s->suspended)
        s->suspended->sprev = r;
    s->suspended = r;
    if (!uv_is_active((uv_handle_t *)&s->probe))
        uv_timer_start(&s->probe, probe_cb, PROBE_MS, PROBE_MS);
}

/* True when the peer of a suspended connection has closed its side. */
static bool peer_gone(struct http_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct pollfd pf;

    if (!ci)
        return false;
    pf.fd = ci->connect_fd;
    pf.events = POLLRDHUP;
    pf.revents = 0;
    return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void http_wake(struct http_req *r)
{
    if (!r->suspended)
        return;
    /* A stream whose client left would take two more writes to notice
     * (the first one still succeeds): look before writing, so its job is
     * cancelled one step after the close rather than two. */
    if (r->stream_read && !r->hungup && peer_gone(r)) {
        r->hungup = true;
        if (r->on_hangup)
            r->on_hangup(r);
    }
    r->suspended = false;
    unlink_suspended(r);
    MHD_resume_connection(r->conn);
    /* In external epoll mode MHD 0.9.75 picks resumed connections up only
     * in its next MHD_run(), and nothing guarantees its epoll descriptor
     * becomes readable: run it from the loop right away. */
    uv_timer_start(&r->srv->timer, timer_cb, 0, 0);
}

void http_wake_all(struct http_server *s)
{
    while (s->suspended)
        http_wake(s->suspended);
}

/* MHD does not watch suspended sockets, so a client that leaves while its
 * job waits would go unnoticed: poll them for a hang-up. */
static void probe_cb(uv_timer_t *t)
{
    struct http_server *s = t->data;
    struct pollfd pf[256];
    struct http_req *rs[256];
    struct http_req *r = s->suspended;
    struct http_req *next;

    if (!r) {
        uv_timer_stop(t);
        return;
    }
    while (r) {
        int n = 0;

        for (; r && n < 256; r = r->snext) {
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

            if (!ci)
                continue;
            pf[n].fd = ci->connect_fd;
            pf[n].events = POLLRDHUP;
            pf[n].revents = 0;
            rs[n++] = r;
        }
        next = r;
        if (poll(pf, (nfds_t)n, 0) > 0) {
            for (int i = 0; i < n; i++) {
                if (!(pf[i].revents & (POLLRDHUP | POLLHUP | POLLERR)))
                    continue;
                rs[i]->hungup = true;
                if (rs[i]->on_hangup)
                    rs[i]->on_hangup(rs[i]);
                if (next == rs[i])
                    next = rs[i]->snext;
                http_wake(rs[i]);
            }
        }
        r = next;
    }
}

/* ---- MHD callbacks ------------------------------------------------------- */

struct framing {
    int cl_count;
    const char *cl;
    int te_count;
    const char *te;
    size_t lines;       /* bytes of the header lines, about ("name: value\r\n") */
    int fields;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct framing *f = cls;

    (void)kind;
    f->lines += strlen(key) + (value ? strlen(value) : 0) + 4;
    f->fields++;
    if (strcasecmp(key, "Content-Length") == 0) {
        f->cl_count++;
        f->cl = value;
    } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
        f->te_count++;
        f->te = value;
    }
    return MHD_YES;
}

const char *http_api_key(struct http_req *r)
{
    const char *auth = http_header(r, "Authorization");

    if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
        return auth + 7;
    return http_header(r, "X-Api-Key");
}

bool http_keys_configured(const struct http_req *r)
{
    return auth_enabled(&r->srv->auth);
}

static bool authorized(struct http_req *r)
{
    const char *key;
    int who;

    if (!auth_enabled(&r->srv->auth))
        return true;
    /* The page holds no data: it has to load before its user can type a key. */
    if (r->ep == EP_WEB)
        return true;
    if (r->ep == EP_HEALTH && r->srv->cfg->public_health)
        return true;
    if (r->ep == EP_METRICS && r->srv->cfg->public_metrics)
        return true;
    key = http_api_key(r);
    who = key ? auth_key_ok(&r->srv->auth, key, strlen(key)) : AUTH_NONE;
    r->admin = who == AUTH_ADMIN;
    return who != AUTH_NONE;
}

static bool content_type_ok(const char *ct)
{
    static const char *const ok[] = {
        "application/json", "application/x-www-form-urlencoded", "text/plain"
    };

    if (!ct || !*ct)
        return true;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        size_t n = strlen(ok[i]);

        if (strncasecmp(ct, ok[i], n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
            return true;
    }
    return false;
}

static bool is_generation(const struct http_req *r)
{
    return (r->ep == EP_GENERATE || r->ep == EP_JOBS || r->ep == EP_OPENAI_IMAGES) &&
           strcmp(r->method, "POST") == 0;
}

/* A refusal before the endpoint runs; generation requests count as
 * received and rejected so the job counters still add up. */
static void refuse(struct http_req *r, enum metrics_reject why)
{
    if (is_generation(r)) {
        metrics_add(&metrics.jobs_received, 1);
        metrics_reject(why);
    }
}

/* First call: everything decided from the request line and headers. */
static void begin(struct http_req *r)
{
    struct http_server *s = r->srv;
    struct framing f = { 0, NULL, 0, NULL, 0, 0 };
    const char *origin = http_header(r, "Origin");
    const union MHD_ConnectionInfo *hs =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    size_t limit = (size_t)s->cfg->http_memory;

    if (auth_origin_ok(s->cfg->cors_origins, origin))
        r->cors_origin = origin;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_framing, &f);
    if (hs && hs->header_size > limit) {
        /* What is not header lines is the request line (and the blank line). */
        bool uri = hs->header_size > f.lines && hs->header_size - f.lines > limit;

        refuse(r, REJECT_INVALID);
        http_reply_error(r, uri ? 414 : 431, "invalid_request_error", NULL,
                         "the request %s take%s %zu bytes, over the %zu-byte limit (http_memory); "
                         "%s", uri ? "line" : "line and headers", uri ? "s" : "",
                         uri ? hs->header_size - f.lines : hs->header_size, limit,
                         uri ? "shorten the URL" : "send fewer or shorter headers");
        return;
    }
    if (f.fields > MAX_FIELDS) {
        refuse(r, REJECT_INVALID);
        http_reply_error(r, 431, "invalid_request_error", NULL,
                         "the request has %d header fields; at most %d are accepted", f.fields,
                         MAX_FIELDS);
        return;
    }
    if (f.te_count && f.cl_count) {
        refuse(r, REJECT_INVALID);
        http_reply_error(r, 400, "invalid_request_error", NULL,
                         "send either Content-Length or Transfer-Encoding, not both");
        return;
    }
    if (f.te_count && (f.te_count > 1 || strcasecmp(f.te, "chunked") != 0)) {
        refuse(r, REJECT_INVALID);
        http_reply_error(r, 501, "not_implemented", NULL,
                         "Transfer-Encoding '%.64s' is not supported; use chunked or Content-Length",
                         f.te);
        return;
    }
    if (f.cl_count > 1) {
        refuse(r, REJECT_INVALID);
        http_reply_error(r, 400, "invalid_request_error", NULL,
                         "the request has %d Content-Length headers; send one", f.cl_count);
        return;
    }
    if (f.cl_count && strtoull(f.cl, NULL, 10) > (unsigned long long)s->cfg->max_body) {
        refuse(r, REJECT_TOO_LARGE);
        http_reply_error(r, 413, "payload_too_large", NULL,
                         "the body (%.24s bytes) is over the %d-byte limit (max_body)", f.cl,
                         s->cfg->max_body);
        return;
    }
    if (strcmp(r->method, "OPTIONS") == 0) {
        http_add_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        /* "*" lets browser clients send headers of their own (the OpenAI
         * JavaScript client's X-Stainless-*, whose set changes between
         * versions); it does not cover Authorization, which is named. */
        http_add_header(r, "Access-Control-Allow-Headers",
                        "Authorization, Content-Type, Accept, Last-Event-ID, X-Api-Key, "
                        "Idempotency-Key, X-Request-Id, *");
        http_add_header(r, "Access-Control-Max-Age", "600");
        http_add_header(r, "Allow", "GET, POST, DELETE, OPTIONS");
        http_reply(r, 204, NULL, "", 0, false);
        return;
    }
    if (!authorized(r)) {
        refuse(r, REJECT_UNAUTHORIZED);
        http_add_header(r, "WWW-Authenticate", "Bearer");
        http_reply_error(r, 401, "authentication_error", NULL,
                         "a valid API key is required: send 'Authorization: Bearer <key>'");
        return;
    }
    if (strcmp(r->method, "POST") == 0 &&
        !content_type_ok(http_header(r, "Content-Type"))) {
        refuse(r, REJECT_INVALID);
        http_reply_error(r, 415, "invalid_request_error", NULL,
                         "Content-Type '%.64s' is not accepted; send application/json",
                         http_header(r, "Content-Type"));
        return;
    }
}

static enum MHD_Result queue_pending(struct http_req *r)
{
    enum MHD_Result ret;

    ret = MHD_queue_response(r->conn, r->status, r->response);
    if (!r->response_static)
        MHD_destroy_response(r->response);
    r->response = NULL;
    r->queued = true;
    return ret;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_req *r = *con_cls;

    (void)version;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->url = url;
        r->method = method;
        r->start_ns = job_now_ns();
        r->ep = s->h.classify(method, url);
        r->queue_ms = -1;
        if (http_request_id_valid(http_header(r, "X-Request-Id"))) {
            snprintf(r->request_id, sizeof(r->request_id), "%s", http_header(r, "X-Request-Id"));
            r->request_id_client = true;
        }
        buf_init(&r->body, (size_t)s->cfg->max_body);
        *con_cls = r;
        s->active++;
        begin(r);
        if (r->response)
            return queue_pending(r);    /* refusals close the connection anyway */
        /* Answer on a later call, once MHD has the whole request: a response
         * queued on the first call makes 0.9.75 close the connection. */
        return MHD_YES;
    }
    if (*upload_size) {
        /* A chunked body has no Content-Length to refuse up front, and
         * libmicrohttpd 0.9.75 cannot queue an answer in the middle of a
         * body (the connection would just close): drop the rest of it and
         * answer 413 once it has arrived, up to a bound. */
        if (!r->too_large && buf_append(&r->body, upload_data, *upload_size) < 0) {
            r->too_large = true;
            buf_free(&r->body);
        }
        if (r->too_large)
            r->discarded += *upload_size;
        *upload_size = 0;
        if (r->discarded > (size_t)DISCARD_FACTOR * (size_t)s->cfg->max_body) {
            refuse(r, REJECT_TOO_LARGE);
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (r->hungup)
        return MHD_NO;
    if (r->too_large) {
        refuse(r, REJECT_TOO_LARGE);
        http_reply_error(r, 413, "payload_too_large", NULL,
                         "the body is over the %d-byte limit (max_body)", s->cfg->max_body);
        return queue_pending(r);
    }
    if (!r->dispatched) {
        r->dispatched = true;
        s->h.dispatch(r, s->h.arg);
    }
    if (r->response)
        return queue_pending(r);
    if (r->queued)
        return MHD_YES;
    http_suspend(r);
    return MHD_YES;
}

/* Copy `in` for a log line: control bytes become \xNN, so a client cannot
 * end the line and forge another (libmicrohttpd has already decoded %0a in
 * the URL). A long value is cut and ends in "..."; len must be >= 8. */
static void loggable(char *out, size_t len, const char *in)
{
    size_t o = 0;

    /* Each pass leaves room for one escape (4 bytes), "..." and the NUL. */
    for (; *in && o + 8 <= len; in++) {
        unsigned char c = (unsigned char)*in;

        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(out + o, len - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    if (*in) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static void log_access(struct http_req *r, enum MHD_RequestTerminationCode toe)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char ip[INET6_ADDRSTRLEN] = "?";
    char method[40];
    char url[512];
    struct log_field f[10];
    size_t n = 0;

    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;

        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
    }
    loggable(method, sizeof(method), r->method);
    loggable(url, sizeof(url), r->url);
    f[n++] = (struct log_field){ "request_id", http_request_id(r), 0 };
    f[n++] = (struct log_field){ "remote", ip, 0 };
    f[n++] = (struct log_field){ "method", method, 0 };
    f[n++] = (struct log_field){ "path", url, 0 };
    f[n++] = (struct log_field){ "route", metrics_endpoint_name(r->ep), 0 };
    f[n++] = (struct log_field){ "status", NULL, r->queued ? r->status : 0 };
    f[n++] = (struct log_field){ "bytes", NULL, (double)r->bytes };
    if (r->queue_ms >= 0)
        f[n++] = (struct log_field){ "queue_ms", NULL, round(r->queue_ms * 10) / 10 };
    f[n++] = (struct log_field){ "total_ms", NULL,
                                 round((double)(job_now_ns() - r->start_ns) / 1e5) / 10 };
    f[n++] = (struct log_field){ "outcome",
                                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "ok" :
                                 toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout" :
                                 toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client_abort" :
                                 "aborted", 0 };
    log_fields(LOG_LEVEL_INFO, "access", f, n);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_req *r = *con_cls;

    (void)conn;
    if (!r)
        return;
    if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
        metrics_add(&metrics.conn_timeouts, 1);
    if (r->queued)
        metrics_http(r->ep, r->status, (uint64_t)(job_now_ns() - r->start_ns));
    if (s->cfg->access_log)
        log_access(r, toe);
    if (r->suspended)
        unlink_suspended(r);
    if (r->on_complete)
        r->on_complete(r);
    if (r->response && !r->response_static)
        MHD_destroy_response(r->response);
    buf_free(&r->body);
    s->active--;
    free(r);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)conn;
    (void)socket_context;
    metrics_gauge_add(&metrics.connections, toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    if (!log_enabled(LOG_LEVEL_DEBUG))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_msg(LOG_LEVEL_DEBUG, "libmicrohttpd: %s", msg);
}

/* ---- the loop side ------------------------------------------------------- */

static void timer_cb(uv_timer_t *t)
{
    run_mhd(t->data);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run_mhd(p->data);
}

/* Let MHD do its work, then arm the timer with the delay MHD asks for. */
static void run_mhd(struct http_server *s)
{
    MHD_UNSIGNED_LONG_LONG ms;

    if (!s->mhd)
        return;
    MHD_run(s->mhd);
    if (MHD_get_timeout(s->mhd, &ms) == MHD_YES)
        uv_timer_start(&s->timer, timer_cb, ms > 3600000 ? 3600000 : (uint64_t)ms, 0);
    else
        uv_timer_stop(&s->timer);
}

int http_reload(struct http_server *s, char *err, size_t errlen)
{
    return auth_load(&s->auth, s->cfg, err, errlen);
}

int http_start(struct http_server **out, uv_loop_t *loop, const struct config *cfg,
               const struct http_handlers *h, int *port, char *err, size_t errlen)
{
    struct http_server *s = calloc(1, sizeof(*s));
    const union MHD_DaemonInfo *di;
    int rc;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->loop = loop;
    s->cfg = cfg;
    s->h = *h;
    rc = http_reload(s, err, errlen);
    if (rc < 0)
        goto out_free;
    s->listen_fd = net_listen(cfg->listen, port, err, errlen);
    if (s->listen_fd < 0) {
        rc = s->listen_fd;
        goto out_free;
    }
    s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
                              on_access, s,
                              MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->connection_limit,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->per_ip_limit,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                              (size_t)cfg->http_memory * POOL_FACTOR,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s,
                              MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, errlen, "libmicrohttpd did not start on %s", cfg->listen);
        rc = -EIO;
        goto out_close;
    }
    di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di) {
        snprintf(err, errlen, "libmicrohttpd has no epoll descriptor");
        rc = -EIO;
        goto out_stop;
    }
    uv_timer_init(loop, &s->timer);
    uv_timer_init(loop, &s->probe);
    s->timer.data = s;
    s->probe.data = s;
    rc = uv_poll_init(loop, &s->poll, di->epoll_fd);
    if (rc < 0) {
        snprintf(err, errlen, "cannot watch libmicrohttpd's epoll descriptor: %s", uv_strerror(rc));
        goto out_stop;
    }
    s->poll.data = s;
    uv_poll_start(&s->poll, UV_READABLE, poll_cb);
    run_mhd(s);
    *out = s;
    return 0;

out_stop:
    MHD_stop_daemon(s->mhd);    /* closes the listening socket too */
    goto out_free;
out_close:
    close(s->listen_fd);
out_free:
    auth_free(&s->auth);
    free(s);
    return rc;
}

void http_quiesce(struct http_server *s)
{
    int fd;

    if (!s || s->listen_fd < 0)
        return;
    fd = MHD_quiesce_daemon(s->mhd);
    if (fd >= 0)
        close(fd);
    s->listen_fd = -1;
}

int http_active(const struct http_server *s)
{
    return s ? s->active : 0;
}

static void free_server(uv_handle_t *h)
{
    struct http_server *s = h->data;

    auth_free(&s->auth);
    free(s);
}

static void close_timer(uv_handle_t *h)
{
    struct http_server *s = h->data;

    uv_close((uv_handle_t *)&s->probe, free_server);
}

static void close_poll(uv_handle_t *h)
{
    struct http_server *s = h->data;

    uv_close((uv_handle_t *)&s->timer, close_timer);
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    http_wake_all(s);       /* MHD_stop_daemon with suspended connections is undefined */
    uv_poll_stop(&s->poll);
    /* MHD closes the listening socket it was given, unless quiesce
     * handed it back (then http_quiesce closed it). */
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    s->listen_fd = -1;
    uv_close((uv_handle_t *)&s->poll, close_poll);
}

const char *http_header(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}
