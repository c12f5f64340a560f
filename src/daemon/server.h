/*
 * server.h - the daemon's state, owned by the loop thread: configuration,
 * model, scheduler, worker pool, HTTP server, the table of /jobs results,
 * and the lifecycle (loading -> ready -> draining). server.c runs the
 * lifecycle (load, signals, watchdog, drain, reload); api.c answers
 * requests from this state.
 */
#ifndef DITD_DAEMON_SERVER_H
#define DITD_DAEMON_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "http.h"
#include "pool.h"
#include "scheduler.h"

enum server_state {
    SERVER_LOADING,
    SERVER_READY,
    SERVER_DRAINING,
    SERVER_STOPPED
};

struct api_waiter;

struct server {
    uv_loop_t *loop;
    struct config cfg;
    int argc;
    char **argv;
    const char *config_path;
    char model_dir[4096];
    enum server_state state;
    int exit_code;

    struct ditd_model *model;
    const struct ditd_model_info *info;
    struct sched sched;
    bool sched_ready;
    struct pool pool;
    struct http_server *http;
    int port;
    int workers;
    int threads;
    int max_batch;                  /* rows per forward: cfg.max_batch, or the model's
                                     * default for its precision when that is 0 */

    /* api.c */
    struct job *jobs;               /* every job, newest first (api_jobs.c) */
    int njobs;
    uint64_t job_seq;               /* the last job's seq */
    double loaded_unix;             /* when the model became ready (GET /v1/models) */
    struct api_waiter *waiters;     /* connections waiting on jobs */
    struct http_static live, ready, not_ready;
    char *classes_json;             /* GET /classes, built at load */

    /* server.c */
    uv_work_t load_req;
    int load_rc;
    char load_err[512];
    int64_t load_ns;
    uv_timer_t house;
    uv_timer_t watchdog;
    uv_timer_t drain;
    uv_signal_t sigterm, sigint, sighup;
    int64_t drain_deadline_ns;
    int64_t drain_cancelled_ns;
    bool aborting;              /* a second stop signal arrived */
    uint64_t watchdog_usec;
    unsigned ticks;
};

/* Start everything and run the loop until the daemon stops; returns the
 * process exit code. */
int server_run(struct server *s);

/* api.c */
enum metrics_endpoint api_classify(const char *method, const char *url);
void api_dispatch(struct http_req *r, void *arg);
void api_job_changed(struct job *j, void *arg);
int api_init(struct server *s);
/* Build what depends on the model (class list); after it loaded. */
int api_model_ready(struct server *s);
/* Pings for idle streams, deadlines of queued jobs, expiry of results. */
void api_housekeeping(struct server *s, bool expire);
/* POST /jobs jobs that ended but whose outcome no client has had yet (a
 * drain keeps the process up for them, within drain_timeout). */
int api_jobs_undelivered(struct server *s);
void api_free(struct server *s);

#endif /* DITD_DAEMON_SERVER_H */
