/*
 * api_jobs.c - the job table and GET /jobs (docs/api.md, "Queue view").
 * Every job is in the table, newest first: POST /jobs jobs (kind ASYNC)
 * with their results until job_ttl, and /generate requests as summaries
 * for the list (their results went to their answers). With API keys a job
 * belongs to the key that created it; a key sees only its own jobs, an
 * admin key sees all. The list never carries images.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "idem.h"

#define LIST_DEFAULT 50
#define LIST_MAX 500

/* ---- the table ------------------------------------------------------------ */

uint64_t api_owner(struct http_req *r)
{
    /* The same hash that scopes Idempotency-Keys. */
    return idem_scope(http_keys_configured(r), http_api_key(r));
}

static bool visible(struct http_req *r, uint64_t owner, const struct job *j)
{
    return !http_keys_configured(r) || r->admin || j->owner == owner;
}

bool api_may_see(struct http_req *r, const struct job *j)
{
    return visible(r, api_owner(r), j);
}

void api_table_add(struct server *s, struct job *j)
{
    j->seq = ++s->job_seq;
    j->tnext = s->jobs;
    s->jobs = j;
    s->njobs++;
}

struct job *api_find_job(struct server *s, struct http_req *r, const char *id, size_t len)
{
    if (len != JOB_ID_LEN - 1)
        return NULL;
    for (struct job *j = s->jobs; j; j = j->tnext)
        if (j->kind == JOB_KIND_ASYNC && memcmp(j->id, id, len) == 0)
            return api_may_see(r, j) ? j : NULL;
    return NULL;
}

void api_jobs_expire(struct server *s, int64_t now)
{
    const int64_t ttl = (int64_t)s->cfg.job_ttl * 1000000000;
    int kept_async = 0, kept_other = 0;
    struct job **pp;

    for (pp = &s->jobs; *pp;) {
        struct job *j = *pp;
        bool async = j->kind == JOB_KIND_ASYNC;
        bool terminal, expired, forget;
        int64_t fin;

        pthread_mutex_lock(&j->mu);
        terminal = job_state_terminal(j->state);
        expired = j->expired;
        fin = j->finished_ns;
        pthread_mutex_unlock(&j->mu);
        if (async) {
            /* Results past their TTL become tombstones (410); tombstones and
             * the oldest results beyond max_jobs are forgotten (404). */
            if (terminal && !expired && now - fin > ttl) {
                job_expire(j);
                expired = true;
            }
            if (terminal && !expired)
                kept_async++;
            forget = (expired && now - fin > 2 * ttl + 3600 * (int64_t)1000000000) ||
                     (terminal && kept_async > s->cfg.max_jobs && !j->waiters);
        } else {
            /* A /generate job's images and events went to its answer: once
             * nobody reads them, only the summary stays, for job_ttl. */
            if (terminal && !expired && !j->waiters)
                job_expire(j);
            if (terminal)
                kept_other++;
            forget = terminal && !j->waiters &&
                     (now - fin > ttl || kept_other > s->cfg.max_jobs);
        }
        if (forget) {
            *pp = j->tnext;
            s->njobs--;
            job_unref(j);
            continue;
        }
        pp = &j->tnext;
    }
}

void api_job_delivered(struct job *j, int k)
{
    int i;

    if (k < 0) {
        j->delivered = true;
        return;
    }
    if (k < j->req.n)
        j->images[k].fetched = true;
    for (i = 0; i < j->req.n && j->images[i].fetched; i++)
        ;
    if (i == j->req.n)
        j->delivered = true;
}

int api_jobs_undelivered(struct server *s)
{
    int n = 0;

    for (struct job *j = s->jobs; j; j = j->tnext) {
        bool waiting;

        if (j->kind != JOB_KIND_ASYNC || j->delivered)
            continue;
        pthread_mutex_lock(&j->mu);
        waiting = job_state_terminal(j->state) && !j->expired;
        pthread_mutex_unlock(&j->mu);
        n += waiting;
    }
    return n;
}

void api_jobs_free(struct server *s)
{
    while (s->jobs) {
        struct job *j = s->jobs;

        s->jobs = j->tnext;
        job_unref(j);
    }
    s->njobs = 0;
}

/* ---- GET /jobs ---------------------------------------------------------- */

static const char *const kind_names[] = { "generate", "stream", "job" };
static const char *const status_names[] = {
    "queued", "running", "cancelling", "completed", "failed", "cancelled"
};
#define NSTATUS (int)(sizeof(status_names) / sizeof(status_names[0]))

/* The status a job shows (job_to_json's rule), as an index of status_names. */
static int status_of(struct job *j)
{
    if (atomic_load(&j->cancel) && !job_state_terminal(j->state))
        return 2;
    switch (j->state) {
    case JOB_QUEUED: return 0;
    case JOB_RUNNING: return 1;
    case JOB_COMPLETED: return 3;
    case JOB_FAILED: return 4;
    default: return 5;
    }
}

/* One line of the list: what the queue view needs and no images. */
static json_t *summary(struct server *s, struct job *j, int status)
{
    long total = (long)j->req.n * j->req.steps;
    const char *name = s->info && s->info->class_names ? s->info->class_names[j->req.class_id] : NULL;
    int pos = sched_announced_position(&s->sched, j);
    json_t *o;

    pthread_mutex_lock(&j->mu);
    o = json_pack("{s:s,s:s,s:s,s:f,s:i,s:s?,s:i,s:{s:I,s:I,s:f,s:i}}",
                  "id", j->id, "kind", kind_names[j->kind], "status", status_names[status],
                  "created", j->created_unix, "class", j->req.class_id, "class_name", name,
                  "n", j->req.n, "progress", "step", (json_int_t)j->steps_done,
                  "steps", (json_int_t)total,
                  "fraction", total ? (double)j->steps_done / (double)total : 0.0,
                  "images_done", j->images_done);
    if (o && j->started_ns)
        json_object_set_new(o, "started", json_real(j->started_unix));
    if (o && j->finished_ns)
        json_object_set_new(o, "completed", json_real(j->finished_unix));
    if (o && j->expired && j->kind == JOB_KIND_ASYNC)
        json_object_set_new(o, "expired", json_true());     /* its URL answers 410 */
    pthread_mutex_unlock(&j->mu);
    if (o && status == 0 && pos >= 0)
        json_object_set_new(o, "queue_position", json_integer(pos));
    if (o && j->kind == JOB_KIND_ASYNC) {
        char url[64];

        snprintf(url, sizeof(url), "/jobs/%s", j->id);
        json_object_set_new(o, "url", json_string(url));
    }
    return o;
}

/* ?status=a,b: a bit per status_names entry; -EINVAL for an unknown name. */
static int parse_status(const char *list, unsigned *mask)
{
    const char *p = list;

    *mask = 0;
    while (*p) {
        size_t n = strcspn(p, ",");
        int i;

        for (i = 0; i < NSTATUS; i++)
            if (strlen(status_names[i]) == n && strncmp(p, status_names[i], n) == 0)
                break;
        if (i == NSTATUS)
            return -EINVAL;
        *mask |= 1u << i;
        p += n + (p[n] == ',');
    }
    return *mask ? 0 : -EINVAL;
}

/* A decimal query argument in [lo, hi]; false when present and not one. */
static bool query_int(struct http_req *r, const char *name, long long lo, long long hi,
                      long long *out)
{
    const char *v = http_query(r, name);
    char *end;

    if (!v)
        return true;
    errno = 0;
    *out = strtoll(v, &end, 10);
    return end != v && !*end && !errno && *out >= lo && *out <= hi;
}

void api_jobs_list(struct server *s, struct http_req *r)
{
    const char *st = http_query(r, "status");
    long long limit = LIST_DEFAULT, cursor = -1;
    uint64_t owner = api_owner(r);
    unsigned mask = (1u << NSTATUS) - 1;
    json_t *jobs = json_array();
    struct job *last = NULL;
    long total = 0;
    bool more = false;

    if (!query_int(r, "limit", 1, LIST_MAX, &limit)) {
        json_decref(jobs);
        http_reply_error(r, 400, "invalid_request_error", "limit",
                         "limit must be an integer 1..%d (default %d)", LIST_MAX, LIST_DEFAULT);
        return;
    }
    if (!query_int(r, "cursor", 0, INT64_MAX, &cursor)) {
        json_decref(jobs);
        http_reply_error(r, 400, "invalid_request_error", "cursor",
                         "cursor must be the next_cursor of a previous page");
        return;
    }
    if (st && parse_status(st, &mask) < 0) {
        json_decref(jobs);
        http_reply_error(r, 400, "invalid_request_error", "status",
                         "status must be a comma-separated list of queued, running, cancelling, "
                         "completed, failed, cancelled");
        return;
    }
    /* The table is in creation order, newest first: a page is the next
     * `limit` visible jobs older than the cursor. */
    for (struct job *j = s->jobs; j; j = j->tnext) {
        int status;

        if (!visible(r, owner, j))
            continue;
        pthread_mutex_lock(&j->mu);
        status = status_of(j);
        pthread_mutex_unlock(&j->mu);
        if (!(mask & (1u << status)))
            continue;
        total++;
        if (cursor >= 0 && j->seq >= (uint64_t)cursor)
            continue;
        if ((long long)json_array_size(jobs) == limit) {
            more = true;
            continue;
        }
        json_array_append_new(jobs, summary(s, j, status));
        last = j;
    }
    json_t *o = json_pack("{s:o,s:I,s:b}", "jobs", jobs, "total", (json_int_t)total,
                          "has_more", more);
    if (o) {
        char next[24];

        snprintf(next, sizeof(next), "%llu", last ? (unsigned long long)last->seq : 0ull);
        json_object_set_new(o, "next_cursor", more ? json_string(next) : json_null());
    }
    http_reply_json(r, 200, o);
}
