/*
 * api.c - routing and the native endpoints (docs/api.md): generation (POST
 * /generate, plain, JSON or as an event stream), jobs (POST /jobs,
 * GET/DELETE /jobs/{id}, events, images), /info, /classes, health and
 * /metrics. The job list is in api_jobs.c, the OpenAI routes in
 * api_openai.c, the web page in web.c. Everything here runs on the loop
 * thread; jobs cross to the workers through sched.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ditd.h"
#include "ditd-build.h"
#include "api.h"
#include "log.h"

_Static_assert(JOB_REQUEST_ID_LEN == HTTP_REQUEST_ID_MAX + 1, "a job keeps its request's id");

static const char *const cancel_names[] = { "client", "disconnect", "deadline", "shutdown" };

/* ---- routing -------------------------------------------------------------- */

static bool path_is(const char *url, const char *path)
{
    return strcmp(url, path) == 0;
}

enum metrics_endpoint api_classify(const char *method, const char *url)
{
    (void)method;
    if (path_is(url, "/generate"))
        return EP_GENERATE;
    if (path_is(url, "/health/live") || path_is(url, "/health/ready") || path_is(url, "/health"))
        return EP_HEALTH;
    if (path_is(url, "/jobs"))
        return EP_JOBS;
    if (strncmp(url, "/jobs/", 6) == 0) {
        const char *rest = strchr(url + 6, '/');

        if (!rest)
            return EP_JOB;
        if (path_is(rest, "/events"))
            return EP_JOB_EVENTS;
        if (strncmp(rest, "/images/", 8) == 0)
            return EP_JOB_IMAGE;
        return EP_OTHER;
    }
    if (path_is(url, "/info"))
        return EP_INFO;
    if (path_is(url, "/classes"))
        return EP_CLASSES;
    if (path_is(url, "/metrics"))
        return EP_METRICS;
    if (path_is(url, "/v1/images/generations"))
        return EP_OPENAI_IMAGES;
    if (path_is(url, "/v1/models") || strncmp(url, "/v1/models/", 11) == 0)
        return EP_OPENAI_MODELS;
    if (path_is(url, "/") || path_is(url, "/favicon.ico") || strncmp(url, "/ui/", 4) == 0)
        return EP_WEB;
    return EP_OTHER;
}

static bool method_is(struct http_req *r, const char *m)
{
    return strcmp(r->method, m) == 0;
}

void api_method_not_allowed(struct http_req *r, const char *allow)
{
    http_add_header(r, "Allow", "%s", allow);
    http_reply_error(r, 405, "invalid_request_error", NULL, "%s is not allowed on %s; use %s",
                     r->method, r->url, allow);
}

/* ---- waiters ---------------------------------------------------------------- */

static void waiter_unlink(struct api_waiter *w)
{
    struct server *s = w->srv;

    if (w->jprev)
        w->jprev->jnext = w->jnext;
    else
        w->job->waiters = w->jnext;
    if (w->jnext)
        w->jnext->jprev = w->jprev;
    if (w->aprev)
        w->aprev->anext = w->anext;
    else
        s->waiters = w->anext;
    if (w->anext)
        w->anext->aprev = w->aprev;
}

static void on_complete(struct http_req *r)
{
    struct api_waiter *w = r->user;

    if (!w)
        return;
    waiter_unlink(w);
    if (w->stream)
        metrics_gauge_add(&metrics.stream_clients, -1);
    /* A generate request whose client went away takes its job with it. */
    if (w->owner)
        sched_cancel(&w->srv->sched, w->job, CANCEL_DISCONNECT);
    job_unref(w->job);
    free(w);
    r->user = NULL;
}

static void on_hangup(struct http_req *r)
{
    struct api_waiter *w = r->user;

    if (w && w->owner)
        sched_cancel(&w->srv->sched, w->job, CANCEL_DISCONNECT);
}

static ssize_t stream_read(struct http_req *r, char *buf, size_t max)
{
    struct api_waiter *w = r->user;
    bool ended = false;
    size_t n;

    n = job_read_events(w->job, &w->after_id, &w->offset, buf, max, &ended);
    if (n == 0 && w->ping_due && max >= 8 && w->offset == 0) {
        memcpy(buf, ": ping\n\n", 8);
        n = 8;
    }
    w->ping_due = false;
    if (n > 0) {
        w->last_write_ns = job_now_ns();
        return (ssize_t)n;
    }
    if (ended)
        api_job_delivered(w->job, -1);
    if (ended && w->owner) {
        /* For the access log: the stream's own job waited this long. */
        pthread_mutex_lock(&w->job->mu);
        if (w->job->started_ns)
            r->queue_ms = (double)(w->job->started_ns - w->job->created_ns) / 1e6;
        pthread_mutex_unlock(&w->job->mu);
    }
    return ended ? HTTP_STREAM_END : HTTP_STREAM_WAIT;
}

struct api_waiter *api_waiter_new(struct server *s, struct http_req *r, struct job *j,
                                  bool stream, bool owner)
{
    struct api_waiter *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->srv = s;
    w->r = r;
    w->job = job_ref(j);
    w->stream = stream;
    w->owner = owner;
    w->last_write_ns = job_now_ns();
    w->jnext = j->waiters;
    if (w->jnext)
        w->jnext->jprev = w;
    j->waiters = w;
    w->anext = s->waiters;
    if (w->anext)
        w->anext->aprev = w;
    s->waiters = w;
    r->user = w;
    r->on_complete = on_complete;
    r->on_hangup = on_hangup;
    if (stream) {
        r->stream_read = stream_read;
        metrics_gauge_add(&metrics.stream_clients, 1);
    }
    return w;
}

/* ---- generation ------------------------------------------------------------- */

static int class_lookup(void *arg, const char *name)
{
    return ditd_model_class(arg, name);
}

static bool accepts(struct http_req *r, const char *type)
{
    const char *a = http_header(r, "Accept");

    return a && strstr(a, type);
}

/* Retry-After of a 429: when a job like j would start if it could queue
 * now behind all the work there is (sched_estimate_tail, docs/api.md),
 * rounded up to seconds, 1 s .. 1 h; 1 s before anything was measured. */
static unsigned retry_after(struct server *s, const struct job *j)
{
    int64_t start;

    if (sched_estimate_tail(&s->sched, j, &start) < 0 || start < 1000000000)
        return 1;
    return start >= (int64_t)3600 * 1000000000 ? 3600 : (unsigned)((start + 999999999) / 1000000000);
}

/* The job object, with the estimates of a job that waits (docs/api.md). */
json_t *api_job_json(struct server *s, struct job *j)
{
    json_t *o = job_to_json(j, sched_position(&s->sched, j));
    json_t *prog = json_object_get(o, "progress");
    int64_t start, done;

    if (prog && sched_estimate(&s->sched, j, &start, &done) == 0) {
        json_object_set_new(prog, "starts_in_ms", json_real((double)start / 1e6));
        json_object_set_new(prog, "eta_ms", json_real((double)done / 1e6));
    }
    return o;
}

bool api_refuse_unready(struct server *s, struct http_req *r)
{
    if (s->state == SERVER_READY)
        return false;
    metrics_reject(s->state == SERVER_LOADING ? REJECT_LOADING : REJECT_DRAINING);
    http_add_header(r, "Retry-After", "%u", s->state == SERVER_LOADING ? 5u : 30u);
    http_reply_error(r, 503, "unavailable_error", NULL, "%s",
                     s->state == SERVER_LOADING ? "the model is still loading; retry shortly"
                                                : "the server is shutting down; retry on another instance");
    return true;
}

struct job *api_submit(struct server *s, struct http_req *r, enum job_kind kind,
                       const char *body, size_t len)
{
    struct request_limits lim = {
        .num_classes = s->info->num_classes, .max_images = s->cfg.max_images,
        .max_steps = s->cfg.max_steps, .default_steps = s->cfg.default_steps,
        .default_cfg = s->cfg.default_cfg, .max_cfg = s->cfg.max_cfg,
        .default_sampler_name = s->cfg.default_sampler,
        .class_lookup = class_lookup, .class_arg = s->model, .sampler_parse = ditd_sampler_parse,
        .sampler_name = ditd_sampler_name,
    };
    char field[REQUEST_FIELD_LEN];
    char err[DITD_ERR_LEN];
    struct gen_request req;
    struct ditd_params p;
    struct job *j;
    int rc;

    ditd_sampler_parse(s->cfg.default_sampler, &lim.default_sampler);
    lim.default_sampler_name = ditd_sampler_name(lim.default_sampler);
    rc = request_parse(&req, body, len, &lim, field, sizeof(field), err, sizeof(err));
    if (rc == 0 && request_rows(&req) > s->max_batch) {
        snprintf(field, sizeof(field), "cfg");
        snprintf(err, sizeof(err), "cfg %g needs 2 rows per step but max_batch is %d; "
                 "use cfg <= 1 or raise max_batch", req.cfg, s->max_batch);
        rc = -EINVAL;
    }
    if (rc == 0) {
        request_to_params(&req, 0, 0, &p);
        rc = ditd_params_check(s->model, &p, err, sizeof(err));
        field[0] = '\0';
    }
    if (rc < 0) {
        metrics_reject(REJECT_INVALID);
        http_reply_error(r, 400, "invalid_request_error", field, "%s", err);
        return NULL;
    }
    if (kind == JOB_KIND_SYNC && r->ep == EP_GENERATE &&
        (req.stream || accepts(r, "text/event-stream")))
        kind = JOB_KIND_STREAM;
    j = job_new(kind, &req, req.seed >= 0 ? (uint64_t)req.seed : ditd_seed_random(),
                (int64_t)(req.deadline_ms ? req.deadline_ms : s->cfg.request_timeout * 1000) * 1000000);
    if (!j) {
        metrics_reject(REJECT_INVALID);
        http_reply_error(r, 503, "unavailable_error", NULL, "out of memory; retry later");
        return NULL;
    }
    /* Without an id of the client's, the request is known by its job's. */
    http_set_request_id(r, j->id);
    snprintf(j->request_id, sizeof(j->request_id), "%s", r->request_id);
    rc = sched_submit(&s->sched, j);
    if (rc == -EAGAIN) {
        metrics_reject(REJECT_QUEUE_FULL);
        http_add_header(r, "Retry-After", "%u", retry_after(s, j));
        http_reply_error(r, 429, "overloaded", NULL,
                         "the queue is full (%d jobs waiting); retry after a few seconds",
                         s->cfg.max_queue);
    } else if (rc < 0) {
        metrics_reject(REJECT_DRAINING);
        http_add_header(r, "Retry-After", "30");
        http_reply_error(r, 503, "unavailable_error", NULL, "the server is shutting down");
    }
    if (rc < 0) {
        /* Never queued: the job never existed as far as outcomes go. */
        job_unref(j);
        return NULL;
    }
    j->owner = api_owner(r);
    api_table_add(s, j);
    return j;
}

void api_timing_headers(struct http_req *r, struct job *j)
{
    http_add_header(r, "X-Seed", "%llu", (unsigned long long)j->seed);
    pthread_mutex_lock(&j->mu);
    r->queue_ms = (double)(j->started_ns - j->created_ns) / 1e6;
    http_add_header(r, "Server-Timing",
                    "queue;dur=%.1f, sample;dur=%.1f, decode;dur=%.1f, encode;dur=%.1f, total;dur=%.1f",
                    (double)(j->started_ns - j->created_ns) / 1e6,
                    (double)(j->sampled_ns - j->started_ns) / 1e6, (double)j->decode_ns / 1e6,
                    (double)j->encode_ns / 1e6, (double)(j->finished_ns - j->created_ns) / 1e6);
    pthread_mutex_unlock(&j->mu);
}

/* The answer of a plain /generate once its job is over. */
static void answer_sync(struct api_waiter *w)
{
    struct http_req *r = w->r;
    struct job *j = w->job;
    enum job_state st;
    int reason;

    pthread_mutex_lock(&j->mu);
    st = j->state;
    reason = j->cancel_reason;
    pthread_mutex_unlock(&j->mu);
    if (st == JOB_COMPLETED && w->done) {
        w->done(w);
    } else if (st == JOB_COMPLETED) {
        api_timing_headers(r, j);
        if (j->req.n == 1 && !w->json) {
            /* Workers no longer touch a completed job's images. */
            http_reply(r, 200, "image/png", j->images[0].png, j->images[0].png_len, false);
        } else {
            json_t *imgs = json_array();
            struct buf b;

            for (int k = 0; k < j->req.n; k++) {
                buf_init(&b, 0);
                buf_base64(&b, j->images[k].png, j->images[k].png_len);
                json_array_append_new(imgs, json_pack("{s:I,s:I,s:s,s:s?}", "index", job_image_index(j, k),
                                                      "seed", (json_int_t)j->seed, "mime",
                                                      "image/png", "b64", b.data));
                buf_free(&b);
            }
            pthread_mutex_lock(&j->mu);
            http_reply_json(r, 200, json_pack("{s:s,s:s,s:I,s:i,s:o,s:o}", "id", j->id,
                                              "request_id", j->request_id,
                                              "seed", (json_int_t)j->seed, "class", j->req.class_id,
                                              "images", imgs, "timings", job_timings_locked(j)));
            pthread_mutex_unlock(&j->mu);
        }
    } else if (st == JOB_CANCELLED && reason == CANCEL_DEADLINE) {
        http_reply_error(r, 504, "deadline_exceeded", NULL,
                         "the request did not finish within its deadline; raise deadline_ms, "
                         "lower steps or n, or retry when the server is less busy");
    } else if (st == JOB_CANCELLED) {
        http_reply_error(r, 503, "unavailable_error", NULL, "the job was cancelled (%s)",
                         reason >= 0 ? cancel_names[reason] : "client");
    } else {
        http_reply_error(r, strcmp(j->error_type, "invalid_request_error") == 0 ? 400 : 500,
                         j->error_type, NULL, "%s", j->error_msg);
    }
    http_wake(r);
}

static void generate(struct server *s, struct http_req *r)
{
    struct api_waiter *w;
    struct job *j;

    metrics_add(&metrics.jobs_received, 1);
    if (api_refuse_unready(s, r))
        return;
    j = api_submit(s, r, JOB_KIND_SYNC, r->body.data, r->body.len);
    if (!j)
        return;
    w = api_waiter_new(s, r, j, j->kind == JOB_KIND_STREAM, true);
    if (!w) {
        sched_cancel(&s->sched, j, CANCEL_DISCONNECT);
        http_reply_error(r, 503, "unavailable_error", NULL, "out of memory; retry later");
        return;
    }
    w->json = j->req.n > 1 || (accepts(r, "application/json") && !accepts(r, "image/png"));
    if (w->stream) {
        http_add_header(r, "X-Seed", "%llu", (unsigned long long)j->seed);
        http_reply_stream(r, 200, "text/event-stream");
    }
    /* Plain answers wait: http suspends the connection until answer_sync. */
}

void api_job_changed(struct job *j, void *arg)
{
    struct api_waiter *w = j->waiters;
    bool terminal;

    (void)arg;
    pthread_mutex_lock(&j->mu);
    terminal = job_state_terminal(j->state);
    pthread_mutex_unlock(&j->mu);
    while (w) {
        struct api_waiter *next = w->jnext;

        if (w->stream)
            http_wake(w->r);
        else if (terminal && w->r->suspended)
            answer_sync(w);
        w = next;
    }
}

/* ---- jobs ------------------------------------------------------------------ */

static void reply_job_created(struct server *s, struct http_req *r, struct job *j, unsigned status)
{
    http_add_header(r, "Location", "/jobs/%s", j->id);
    http_reply_json(r, status, api_job_json(s, j));
}

/* A POST /jobs with an Idempotency-Key: 1 when answered here (a repeat, or
 * a refusal), 0 to create the job; *scope receives the key's scope. */
static int idempotent_repeat(struct server *s, struct http_req *r, const char *key,
                             uint64_t *scope)
{
    struct job *j;

    *scope = idem_scope(http_keys_configured(r), http_api_key(r));
    j = idem_find(s->jobs, key, *scope);
    if (!j)
        return 0;
    if (!idem_same_body(&j->idem, r->body.data, r->body.len)) {
        metrics_add(&metrics.jobs_received, 1);
        metrics_reject(REJECT_INVALID);
        http_reply_error(r, 422, "invalid_request_error", "Idempotency-Key",
                         "Idempotency-Key '%.64s' was used by job %s for another request body; "
                         "repeat that body exactly, or use a new key for a new request", key, j->id);
        return 1;
    }
    /* Not a new job: it counts as an answer, not as a received job. */
    http_add_header(r, "Idempotent-Replayed", "true");
    reply_job_created(s, r, j, 200);
    return 1;
}

static void post_job(struct server *s, struct http_req *r)
{
    const char *hdr = http_header(r, "Idempotency-Key");
    char key[IDEM_KEY_MAX + 1];
    char err[160];
    uint64_t scope = 0;
    struct job *j;

    if (hdr && idem_key_parse(hdr, key, err, sizeof(err)) < 0) {
        metrics_add(&metrics.jobs_received, 1);
        metrics_reject(REJECT_INVALID);
        http_reply_error(r, 400, "invalid_request_error", "Idempotency-Key", "%s", err);
        return;
    }
    if (hdr && idempotent_repeat(s, r, key, &scope))
        return;
    metrics_add(&metrics.jobs_received, 1);
    if (api_refuse_unready(s, r))
        return;
    j = api_submit(s, r, JOB_KIND_ASYNC, r->body.data, r->body.len);
    if (!j)
        return;
    if (hdr && idem_bind(&j->idem, key, scope, r->body.data, r->body.len) < 0)
        log_msg(LOG_LEVEL_WARN, "job %s: out of memory keeping its Idempotency-Key; "
                "a repeat will create another job", j->id);
    reply_job_created(s, r, j, 202);
}

static bool gone(struct job *j)
{
    bool expired;

    pthread_mutex_lock(&j->mu);
    expired = j->expired;
    pthread_mutex_unlock(&j->mu);
    return expired;
}

static void job_endpoint(struct server *s, struct http_req *r)
{
    const char *id = r->url + 6;
    const char *rest = strchr(id, '/');
    size_t idlen = rest ? (size_t)(rest - id) : strlen(id);
    struct job *j = api_find_job(s, r, id, idlen);

    if (!j) {
        http_reply_error(r, 404, "not_found_error", NULL,
                         "no job %.*s (ids come from POST /jobs; finished jobs are kept job_ttl "
                         "seconds; with API keys a key sees only its own jobs)",
                         (int)(idlen > 32 ? 32 : idlen), id);
        return;
    }
    if (gone(j)) {
        http_reply_error(r, 410, "gone", NULL,
                         "job %s finished more than job_ttl (%d s) ago and its results were dropped",
                         j->id, s->cfg.job_ttl);
        return;
    }
    if (r->ep == EP_JOB) {
        if (method_is(r, "GET")) {
            pthread_mutex_lock(&j->mu);
            if (j->state == JOB_FAILED || j->state == JOB_CANCELLED)
                api_job_delivered(j, -1);   /* no images to come */
            pthread_mutex_unlock(&j->mu);
            http_reply_json(r, 200, api_job_json(s, j));
        } else if (method_is(r, "DELETE")) {
            api_job_delivered(j, -1);
            if (sched_cancel(&s->sched, j, CANCEL_CLIENT) == -EALREADY) {
                http_reply_error(r, 409, "conflict", NULL, "job %s is already %s", j->id,
                                 job_state_name(j->state));
                return;
            }
            http_reply_json(r, 200, job_to_json(j, -1));
        } else {
            api_method_not_allowed(r, "GET, DELETE");
        }
        return;
    }
    if (!method_is(r, "GET")) {
        api_method_not_allowed(r, "GET");
        return;
    }
    if (r->ep == EP_JOB_EVENTS) {
        const char *last = http_header(r, "Last-Event-ID");
        struct api_waiter *w;

        if (!last)
            last = http_query(r, "last_event_id");
        w = api_waiter_new(s, r, j, true, false);
        if (!w) {
            http_reply_error(r, 503, "unavailable_error", NULL, "out of memory; retry later");
            return;
        }
        w->after_id = last ? strtoull(last, NULL, 10) : 0;
        http_reply_stream(r, 200, "text/event-stream");
        return;
    }
    if (r->ep == EP_JOB_IMAGE) {
        char *end;
        long k = strtol(rest + 8, &end, 10);

        if (end == rest + 8 || strcmp(end, ".png") != 0 || k < 0 || k >= j->req.n) {
            http_reply_error(r, 404, "not_found_error", NULL,
                             "images of job %s are /jobs/%s/images/0.png .. %d.png", j->id, j->id,
                             j->req.n - 1);
            return;
        }
        pthread_mutex_lock(&j->mu);
        if (j->images[k].png) {
            http_add_header(r, "X-Seed", "%llu", (unsigned long long)j->seed);
            http_reply(r, 200, "image/png", j->images[k].png, j->images[k].png_len, false);
            api_job_delivered(j, (int)k);
        } else {
            http_reply_error(r, 404, "not_found_error", NULL, "image %ld of job %s is not ready (%s)",
                             k, j->id, job_state_name(j->state));
        }
        pthread_mutex_unlock(&j->mu);
        return;
    }
    http_reply_error(r, 404, "not_found_error", NULL, "no such resource %s", r->url);
}

/* ---- information ------------------------------------------------------------ */

static const char *const layout_names[] = { "original", "diffusers" };
static const char *const block_names[] = { "adaln_zero", "adaln", "cross_attention", "in_context" };

static json_t *info_json(struct server *s)
{
    const struct ditd_model_info *mi = s->info;
    enum ditd_sampler ds = DITD_SAMPLER_DDPM;

    ditd_sampler_parse(s->cfg.default_sampler, &ds);    /* checked by config_validate */

    return json_pack("{s:{s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:s,s:s,s:i,s:i,s:i,s:i,s:b,s:I,s:f,s:I,s:f,s:I,s:s}"
                     ",s:{s:i,s:f,s:s,s:s,s:f},s:[sss],s:[ss]"
                     ",s:{s:i,s:i,s:f,s:i,s:i,s:i,s:i,s:i}"
                     ",s:{s:i,s:i,s:s,s:f,s:s,s:s,s:s},s:{s:s}}",
        "model", "name", mi->name, "id", mi->id, "path", mi->path, "image_size", mi->image_size,
        "latent_size", mi->latent_size, "latent_channels", mi->latent_channels,
        "num_classes", mi->num_classes, "null_class", mi->num_classes,
        "layout", layout_names[mi->layout], "block", block_names[mi->block],
        "patch", mi->patch, "depth", mi->depth, "hidden", mi->hidden, "heads", mi->heads,
        "learn_sigma", mi->learn_sigma != 0, "dit_params", (json_int_t)mi->dit_params,
        "dit_gmacs", mi->dit_gmacs, "vae_params", (json_int_t)mi->vae_params,
        "vae_gmacs", mi->vae_gmacs, "weight_bytes", (json_int_t)mi->weight_bytes,
        "preview", mi->preview,
        "defaults", "steps", s->cfg.default_steps, "cfg", s->cfg.default_cfg,
        "sampler", ditd_sampler_name(ds), "spacing", "uniform", "eta", 0.0,
        "samplers", "ddpm", "ddim", "dpm++2m", "spacings", "uniform", "ddim",
        "limits", "max_images", s->cfg.max_images, "max_steps", s->cfg.max_steps,
        "max_cfg", s->cfg.max_cfg, "max_queue", s->cfg.max_queue,
        "max_batch_rows", s->max_batch, "max_body", s->cfg.max_body,
        "request_timeout_s", s->cfg.request_timeout, "job_ttl_s", s->cfg.job_ttl,
        "compute", "workers", s->workers, "threads", s->threads, "blas", ditd_blas_core(),
        "gmacs_per_step_guided", 2 * mi->dit_gmacs, "precision", mi->precision, "isa", mi->isa,
        "precision_note", mi->precision_note,
        "build", "version", DITD_VERSION);
}

static void health(struct server *s, struct http_req *r)
{
    static const char loading[] = "{\"status\":\"loading\"}\n";
    static const char draining[] = "{\"status\":\"draining\"}\n";

    if (path_is(r->url, "/health/live")) {
        http_reply_static(r, 200, &s->live);
    } else if (s->state == SERVER_READY) {
        http_reply_static(r, 200, &s->ready);
    } else {
        const char *body = s->state == SERVER_LOADING ? loading : draining;

        http_add_header(r, "Retry-After", "%u", s->state == SERVER_LOADING ? 5u : 30u);
        http_reply(r, 503, "application/json", (void *)body, strlen(body), false);
    }
}

static void metrics_page(struct http_req *r)
{
    struct buf b;
    size_t len;
    char *text;

    buf_init(&b, 0);
    if (metrics_render(&b) < 0) {
        buf_free(&b);
        http_reply_error(r, 500, "server_error", NULL, "out of memory rendering metrics");
        return;
    }
    text = buf_steal(&b, &len);
    http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, true);
}

void api_dispatch(struct http_req *r, void *arg)
{
    struct server *s = arg;
    const char *allow = r->ep == EP_GENERATE || r->ep == EP_JOBS ? "POST" : "GET";

    if (r->ep == EP_OTHER) {
        http_reply_error(r, 404, "not_found_error", NULL,
                         "no endpoint %s %s; see docs/api.md (POST /generate, POST /jobs, GET /jobs, "
                         "GET /info, GET /classes, GET /health/live, GET /health/ready, GET /metrics, "
                         "POST /v1/images/generations, GET /v1/models, GET / for the web page)",
                         r->method, r->url);
    } else if (r->ep == EP_WEB) {
        web_serve(s, r);
    } else if (r->ep == EP_OPENAI_IMAGES || r->ep == EP_OPENAI_MODELS) {
        api_openai(s, r);
    } else if (r->ep == EP_JOB || r->ep == EP_JOB_EVENTS || r->ep == EP_JOB_IMAGE) {
        job_endpoint(s, r);
    } else if (r->ep == EP_JOBS && method_is(r, "GET")) {
        api_jobs_list(s, r);
    } else if (!method_is(r, allow) && !(r->ep == EP_HEALTH && method_is(r, "HEAD"))) {
        api_method_not_allowed(r, r->ep == EP_JOBS ? "GET, POST" : allow);
    } else if (r->ep == EP_HEALTH) {
        health(s, r);
    } else if (r->ep == EP_METRICS) {
        metrics_page(r);
    } else if (r->ep == EP_GENERATE) {
        generate(s, r);
    } else if (r->ep == EP_JOBS) {
        post_job(s, r);
    } else if (!s->info) {
        http_add_header(r, "Retry-After", "5");
        http_reply_error(r, 503, "unavailable_error", NULL, "the model is still loading");
    } else if (r->ep == EP_INFO) {
        http_reply_json(r, 200, info_json(s));
    } else {
        http_reply(r, 200, "application/json", s->classes_json, strlen(s->classes_json), false);
    }
}

/* ---- lifecycle -------------------------------------------------------------- */

int api_init(struct server *s)
{
    if (http_static_init(&s->live, "application/json", "{\"status\":\"ok\"}\n") < 0 ||
        http_static_init(&s->ready, "application/json", "{\"status\":\"ready\"}\n") < 0)
        return -ENOMEM;
    return 0;
}

int api_model_ready(struct server *s)
{
    json_t *a = json_array();
    json_t *o;

    for (int i = 0; i < s->info->num_classes; i++) {
        const char *name = s->info->class_names ? s->info->class_names[i] : NULL;
        const char *label = s->info->class_labels ? s->info->class_labels[i] : NULL;
        json_t *names = json_array();

        /* Every synonym the engine accepts, split and trimmed as it does. */
        while (label && *label) {
            size_t len = strcspn(label, ",");
            size_t b = 0, e = len;

            while (b < e && isspace((unsigned char)label[b]))
                b++;
            while (e > b && isspace((unsigned char)label[e - 1]))
                e--;
            if (e > b)
                json_array_append_new(names, json_stringn(label + b, e - b));
            label = label[len] ? label + len + 1 : NULL;
        }
        json_array_append_new(a, json_pack("{s:i,s:s?,s:o}", "id", i, "name", name,
                                           "names", names));
    }
    o = json_pack("{s:o}", "classes", a);
    s->classes_json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    s->loaded_unix = job_unix_now();
    json_decref(o);
    return s->classes_json ? 0 : -ENOMEM;
}

void api_housekeeping(struct server *s, bool expire)
{
    int64_t now = job_now_ns();
    int64_t ping = (int64_t)s->cfg.sse_ping * 1000000000;

    if (s->sched_ready)
        sched_expire_queued(&s->sched, now);
    for (struct api_waiter *w = s->waiters; w; w = w->anext) {
        if (w->stream && w->r->suspended && now - w->last_write_ns > ping) {
            w->ping_due = true;
            http_wake(w->r);
        }
    }
    if (expire)
        api_jobs_expire(s, now);
}

void api_free(struct server *s)
{
    api_jobs_free(s);
    http_static_free(&s->live);
    http_static_free(&s->ready);
    free(s->classes_json);
}
