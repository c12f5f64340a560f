/*
 * api.h - what the endpoint files share (private to api.c, api_jobs.c,
 * api_openai.c and web.c): submitting a parsed request, connections that
 * wait on a job, the job table and who may see which job. Everything here
 * runs on the loop thread.
 */
#ifndef DITD_DAEMON_API_H
#define DITD_DAEMON_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"

struct json_t;

/* A connection waiting on a job: a plain answer at the end, or a stream. */
struct api_waiter {
    struct server *srv;
    struct http_req *r;
    struct job *job;            /* a reference */
    struct api_waiter *jprev, *jnext;   /* on the job */
    struct api_waiter *aprev, *anext;   /* on the server */
    bool stream;
    bool owner;                 /* the request created the job: leaving cancels it */
    bool json;                  /* answer JSON rather than a bare PNG */
    bool ping_due;
    uint64_t after_id;
    size_t offset;
    int64_t last_write_ns;
    /* The answer of a completed job when not the /generate one (failures
     * and cancellations get the common answers); NULL = /generate's. */
    void (*done)(struct api_waiter *w);
    int variant;                /* for `done`: a format chosen at submission */
};

/* Check the generation request `body` (the fields of POST /generate), make
 * its job, put it in the job table (which holds the creation reference;
 * the pointer returned is borrowed) and queue it. NULL when the request
 * was answered already (400, 429, 503). The job belongs to the request's
 * API key. */
struct job *api_submit(struct server *s, struct http_req *r, enum job_kind kind,
                       const char *body, size_t len);
/* The job object of j (GET /jobs/{id}), with the estimated start and end
 * of a job that waits (progress.starts_in_ms, progress.eta_ms). */
struct json_t *api_job_json(struct server *s, struct job *j);
/* 503 with Retry-After while loading or draining; true when answered. */
bool api_refuse_unready(struct server *s, struct http_req *r);
void api_method_not_allowed(struct http_req *r, const char *allow);
/* Wait on j: a stream, or the answer once terminal (http suspends the
 * connection meanwhile). NULL when out of memory. */
struct api_waiter *api_waiter_new(struct server *s, struct http_req *r, struct job *j,
                                  bool stream, bool owner);
/* X-Seed and Server-Timing of a completed job. */
void api_timing_headers(struct http_req *r, struct job *j);

/* ---- the job table and who sees what (api_jobs.c) ----------------------- */

/* The owner of a job created by this request: 0 without API keys, else a
 * hash of the key presented. */
uint64_t api_owner(struct http_req *r);
/* Without API keys everyone sees every job; with them a key sees the jobs
 * it created, and an admin key sees all. */
bool api_may_see(struct http_req *r, const struct job *j);
/* Put j first in the table, which takes a reference the caller gave it. */
void api_table_add(struct server *s, struct job *j);
/* The job with this id that the request may see (id of len bytes), or NULL.
 * Only POST /jobs jobs (kind ASYNC) have an address. */
struct job *api_find_job(struct server *s, struct http_req *r, const char *id, size_t len);
/* GET /jobs. */
void api_jobs_list(struct server *s, struct http_req *r);
/* A client has had image k of j (k < 0: the whole outcome: the end of its
 * event stream, a failure or cancellation it was told of, or its DELETE). */
void api_job_delivered(struct job *j, int k);
/* Expire and forget finished jobs (job_ttl, max_jobs). */
void api_jobs_expire(struct server *s, int64_t now_ns);
void api_jobs_free(struct server *s);

/* ---- other endpoint files ------------------------------------------------ */

/* POST /v1/images/generations and GET /v1/models[/{id}] (api_openai.c). */
void api_openai(struct server *s, struct http_req *r);
/* GET / and the page's files (web.c). */
void web_serve(struct server *s, struct http_req *r);

#endif /* DITD_DAEMON_API_H */
